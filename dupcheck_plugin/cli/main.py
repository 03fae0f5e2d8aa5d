"""``dupcheck``: the command line. Each subcommand is a module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys

from .. import __version__
from ..errors import DupcheckError
from .common import EXIT_INTERRUPTED, EXIT_USAGE, fail

TEMPORAL_BRIDGE = "temporalio.bridge.temporal_sdk_bridge"  # loaded once a command used Temporal

# module names under dupcheck_plugin.cli, in the order --help lists them
COMMANDS = ("demo", "run", "explain", "check", "render", "new", "schemas", "crm_sim", "serve", "worker", "plugins")



def _command_of(argv: list[str]) -> str | None:
    """The module of the command ``argv`` names (its first word that is not an option), or None."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            name = word.replace("-", "_")
            return name if name in COMMANDS else None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv`` naming a command, only that command's module
    is imported (``dupcheck check`` must not pay for the server, httpx...)."""
    parser = argparse.ArgumentParser(
        prog="dupcheck",
        description="API Duplicate Lead Check: ask the client's CRM before a lead is created; a rules table decides.",
    )
    parser.add_argument("--version", action="version", version=f"dupcheck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    command = _command_of(argv) if argv is not None else None
    for name in (command,) if command else COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def start_up(argv: list[str]) -> argparse.ArgumentParser:
    """:func:`build_parser`, which imports the command's modules, with garbage collection
    off: what imports make lives as long as the process, so collecting while it grows
    only walks it again and again. It is then frozen out of later collections' way.

    httpx's package imports its own command-line client, which imports click, rich and
    pygments where they are installed (40-90 ms of a short run's start-up); dupcheck
    never runs that client, so its module is marked absent (httpx then defines a stub
    ``httpx.main`` that says the CLI's dependencies are missing)."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None: "not importable"
    gc.disable()
    try:
        return build_parser(argv)
    finally:
        gc.freeze()
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    own_command_line = argv is None  # the console script, not a caller in this process
    if argv is None:
        argv = sys.argv[1:]
    parser = start_up(argv) if own_command_line else build_parser(argv)
    args = parser.parse_args(argv)  # argparse exits 2 on usage errors
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code = int(args.func(args) or 0)
    except DupcheckError as exc:  # a deliberate error no command caught (a plugin that does not fit the
        code = fail(str(exc))     # hook specs fails whichever command loads the plugins): no traceback
    except KeyboardInterrupt:
        hint = " (decisions stored so far are kept; run again with --resume to finish the file)" \
            if args.command == "run" else ""
        print(f"interrupted{hint}", file=sys.stderr)
        code = EXIT_INTERRUPTED
    if own_command_line:
        if TEMPORAL_BRIDGE in sys.modules:
            leave_now(code)
        # the process ends now: its last garbage collections need not walk every object
        # it made (a tenth of a cold `dupcheck check`); atexit, threads and flushing stay
        gc.freeze()
    return code


def leave_now(code: int) -> None:
    """Exit without the interpreter's shutdown. temporalio's Rust runtime can
    abort that shutdown (SIGABRT, "PyGILState_Release: thread state must be
    current", temporalio/sdk-python#300), turning a clean exit or a clear
    error into a crash. The command has closed its stores by now; flush what
    it printed and logged, and go."""
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
