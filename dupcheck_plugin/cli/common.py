"""Helpers shared by the subcommands: errors without tracebacks, JSON out."""

from __future__ import annotations

import sys
from typing import Any

from ..config.problems import ConfigError

# exit codes, for every command: 0 done, 1 invalid input or a failure the message
# explains, 2 a usage error (argparse's own), 130 interrupted (Ctrl-C)
EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def report_config_error(exc: ConfigError) -> int:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    return EXIT_INVALID


def origin_url(value: str) -> str:
    """argparse type for --crm-url: an http(s) URL whose scheme, host and port are used."""
    import argparse
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{value!r} is not an http(s)://host[:port] URL")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} has an invalid port") from None
    return value


def __getattr__(name: str) -> Any:
    # ``dumps`` (orjson) is loaded by the commands that print records, not by every command
    if name == "dumps":
        from ..jsontext import dumps

        return dumps
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fail(message: str, code: int = EXIT_INVALID) -> int:
    print(f"dupcheck: {message}", file=sys.stderr)
    return code
