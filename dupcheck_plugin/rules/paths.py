"""Key paths into a CRM answer: ``results.0.properties.lifecyclestage``."""

from __future__ import annotations

from typing import Any

MISSING = object()


def split_path(path: str) -> tuple[str, ...]:
    return tuple(path.split(".")) if path else ()


def lookup(data: Any, parts: tuple[str, ...]) -> Any:
    """The value at ``parts``, or :data:`MISSING`. Numeric segments index
    lists (negative counts from the end); on a dict they are plain keys."""
    cur = data
    for part in parts:
        if isinstance(cur, dict):
            if part in cur:
                cur = cur[part]
                continue
            return MISSING
        if isinstance(cur, list):
            try:
                index = int(part)
            except ValueError:
                return MISSING
            # tested, not caught: "results.0" on an empty list is the usual answer (no record found)
            if -len(cur) <= index < len(cur):
                cur = cur[index]
                continue
        return MISSING
    return cur
