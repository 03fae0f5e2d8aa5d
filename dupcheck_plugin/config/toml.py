"""TOML loading with the line and column of a syntax error."""

from __future__ import annotations

import re
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
            name, (), f"TOML syntax error at line {line}, column {col}: {_plain(msg)}{_hint(msg, text, line, col)}",
            code="toml_syntax", line=line, column=col,
        )]) from None


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NOT_TOML = {"none": "TOML has no null: leave the key out", "null": "TOML has no null: leave the key out",
             "nil": "TOML has no null: leave the key out", "yes": "write true", "no": "write false",
             "on": "write true", "off": "write false"}


def _hint(msg: str, text: str, line: int | None, col: int | None) -> str:
    """What the admin likely wrote, where tomli says only "Invalid value" or "Unclosed ..."."""
    if msg == "Unclosed array":  # its items, or an inline table's keys, want a comma between them
        return " (a comma or the closing ] missing before this?)"
    if msg == "Unclosed inline table":
        return " (a comma or the closing } missing before this?)"
    if msg != "Invalid value" or not line or not col:
        return ""
    lines = text.splitlines()
    word = _WORD.match(lines[line - 1], col - 1) if line <= len(lines) else None
    if word is None:
        return ""
    word = word[0]
    if word.lower() in ("true", "false"):
        return f" ({word}: TOML writes {word.lower()}, in lower case)"
    if word.lower() in _NOT_TOML:
        return f" ({word}: {_NOT_TOML[word.lower()]})"
    return f" ({word}: text is written in quotes, \"{word}\")"


# tomli's wording for a key or table given twice, which names no key or speaks of namespaces:
# what an admin who pasted a setting twice needs to read instead
_TWICE = (
    (re.compile(r"^Cannot overwrite a value$"),
     lambda m: "a key on this line already has a value (a key is set once per table: remove one of the two)"),
    (re.compile(r"^Cannot mutate immutable namespace \((.*?),?\)$"),
     lambda m: f"'{_key(m[1])}' is an inline table ({{ ... }}) already: it is set once, with all its keys "
               "inside its braces (remove the second one, or move its keys in)"),
    (re.compile(r"^Cannot declare \((.*?),?\) twice$"),
     lambda m: f"table [{_key(m[1])}] is declared twice: put its keys under one [{_key(m[1])}]"),
)


def _plain(msg: str) -> str:
    for pattern, say in _TWICE:
        m = pattern.match(msg)
        if m:
            return say(m)
    return msg


def _key(names: str) -> str:
    """``'nodes', 'config'`` (tomli's key tuple as it prints, less its parentheses) as ``nodes.config``."""
    return ".".join(part.strip().strip("'\"") for part in names.split(","))
