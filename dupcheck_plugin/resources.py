"""Where the shipped configs are, for a source checkout and an installed wheel alike."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def shipped_dir(kind: str) -> Path:
    """``kind`` is one of schemas, adaptors, workflows, examples."""
    installed = _PKG / "_shipped" / kind
    if installed.is_dir():
        return installed
    return _PKG.parent / kind


def find_named(kind: str, name_or_path: str, suffix: str = ".toml") -> Path | None:
    """A path as given if it exists, else a shipped file by name (with or without suffix)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    base = shipped_dir(kind)
    for candidate in (base / name_or_path, base / f"{name_or_path}{suffix}"):
        if candidate.is_file():
            return candidate
    return None
