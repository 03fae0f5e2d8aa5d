"""A config problem: where it is and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..errors import DupcheckError


def format_path(path: Sequence[str | int]) -> str:
    """``("rules", 2, "key")`` -> ``rules[2].key``; the root is ``$``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "$"


@dataclass(frozen=True)
class Problem:
    """One finding. ``code`` is a stable machine-readable kind."""

    file: str
    path: tuple[str | int, ...]
    message: str
    code: str = "invalid"
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}::{format_path(self.path)}: {self.message}"

    def as_json(self) -> dict:
        d = {"file": self.file, "path": format_path(self.path), "message": self.message, "code": self.code}
        if self.line is not None:
            d["line"] = self.line
            d["column"] = self.column
        return d


@dataclass
class ConfigError(DupcheckError):
    """A config file could not be loaded; carries every problem found."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
