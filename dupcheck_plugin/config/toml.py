"""TOML loading with the line and column of a syntax error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli

from .problems import ConfigError, Problem


# Adaptors and workflows are a few KiB; a multi-MB file is a mistake (or an attack on check's time)
MAX_CONFIG_BYTES = 256 * 1024


def load_toml(path: Path, display: str | None = None) -> dict[str, Any]:
    name = display or str(path)
    return parse_toml(read_config_text(path, name), name)


def read_config_text(path: Path, name: str) -> str:
    """The file's text; raises ConfigError when it is unreadable or too large (checked before reading)."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError([too_large(name, size)])
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(name, (), f"cannot read file: {exc}", code="unreadable", line=1, column=1)]) from None


def too_large(name: str, size: int) -> Problem:
    return Problem(name, (), f"the file is {size} bytes; a config file may be at most "
                             f"{MAX_CONFIG_BYTES} bytes ({MAX_CONFIG_BYTES // 1024} KiB)",
                   code="too_large", line=1, column=1)


def parse_toml(text: str, name: str) -> dict[str, Any]:
    """``text`` as TOML; raises ConfigError with the syntax error's line and column."""
    try:
        return tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        # tomli >= 2.1 sets msg/lineno/colno
        msg = getattr(exc, "msg", str(exc))
        line, col = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        raise ConfigError([Problem(
            name, (), f"TOML syntax error at line {line}, column {col}: {msg}",
            code="toml_syntax", line=line, column=col,
        )]) from None
