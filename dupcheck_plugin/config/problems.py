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
    """One finding. ``code`` is a stable machine-readable kind.

    ``line``/``column`` (1-based) point at the offending key or value once the
    checker has placed the problem in its file; ``suggestion`` is the known
    name closest to a likely typo. ``token`` is the offending word inside a
    value (a template variable, a filter) for the checker to put the caret
    on; ``at_key`` says the key is wrong, not its value; ``secret``: the
    value may be a credential, masked where the file's line is shown.
    """

    file: str
    path: tuple[str | int, ...]
    message: str
    code: str = "invalid"
    line: int | None = None
    column: int | None = None
    suggestion: str | None = None
    token: str | None = field(default=None, compare=False)
    at_key: bool = field(default=False, compare=False)
    width: int = field(default=1, compare=False)  # characters to underline from the column
    secret: bool = field(default=False, compare=False)

    @property
    def full_message(self) -> str:
        """The message with its suggestion."""
        return f"{self.message} (did you mean {self.suggestion!r}?)" if self.suggestion else self.message

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line is not None else self.file
        return f"{where}::{format_path(self.path)}: {self.full_message}"

    def as_json(self) -> dict:
        return {"file": self.file, "path": format_path(self.path), "message": self.full_message, "code": self.code,
                "line": self.line, "column": self.column, "suggestion": self.suggestion}


@dataclass
class ConfigError(DupcheckError):
    """A config file could not be loaded; carries every problem found."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
