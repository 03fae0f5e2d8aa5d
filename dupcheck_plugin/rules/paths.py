"""Key paths into a CRM answer: ``results.0.properties.lifecyclestage``."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ..config.suggest import did_you_mean

MISSING = object()


@lru_cache(maxsize=1024)  # a config's few paths, read for every answer
def split_path(path: str) -> tuple[str, ...]:
    return tuple(path.split(".")) if path else ()


def odd_segment(path: object) -> str | None:
    """What looks mistyped in a dotted path: an empty segment, spaces around one,
    JSONPath's ``$.`` start or a bracket index (``results[0]``: written ``results.0`` here)."""
    if not isinstance(path, str) or not path:
        return None
    if path == "$" or path.startswith(("$.", "$[")):
        return "JSONPath's '$' start (a path here starts at the answer's top: leave it out)"
    for part in split_path(path):
        if not part:
            return "an empty part (two dots, or a dot at an end)"
        if part != part.strip():
            return f"spaces around {part.strip()!r}"
        bracket = _BRACKET.search(part)
        if bracket is not None:
            index = bracket.group(1).strip("'\"")
            written = f"{part[:bracket.start()]}.{index}" if bracket.start() else index
            return f"a bracket index ({part!r}: an index or a key is one more dotted part here, {written})"
    return None


_BRACKET = re.compile(r"\[([^\]]*)\]")


def list_index(part: str) -> int | None:
    """``part`` as a list index: ASCII digits, or ``-`` and ASCII digits
    counting from the end (``-1`` is the last). Anything else ``int()`` would
    take (``+0``, ``0_0``, `` 0``, Arabic-Indic digits) and ``-0`` is no index."""
    negative = part[:1] == "-"
    digits = part[1:] if negative else part
    if not (digits.isascii() and digits.isdigit()):
        return None
    index = int(part)
    return None if negative and index == 0 else index


def lookup(data: Any, parts: tuple[str, ...]) -> Any:
    """The value at ``parts``, or :data:`MISSING`. Index segments
    (:func:`list_index`) index lists; on a dict every segment is a plain key."""
    cur = data
    for part in parts:
        if isinstance(cur, dict):
            if part in cur:
                cur = cur[part]
                continue
            return MISSING
        if isinstance(cur, list):
            if not cur:  # "results.0" on no results, the usual answer: no index is in it
                return MISSING
            index = list_index(part)
            # tested, not caught: an index past the end is an ordinary answer (fewer records than asked for)
            if index is not None and -len(cur) <= index < len(cur):
                cur = cur[index]
                continue
        return MISSING
    return cur


def _affixed(part: str, keys: Any) -> str | None:
    """The one key that is ``part`` with a word before or after it (``archived`` for
    ``is_archived``, ``email`` for ``email_address``), any case; None if none or several."""
    word = part.lower()

    def fits(key: str) -> bool:
        key = key.lower()
        return any(key.endswith(sep + word) or key.startswith(word + sep) for sep in "_-.")

    found = [k for k in keys if isinstance(k, str) and fits(k)]
    return found[0] if len(found) == 1 else None


def closest(data: Any, parts: tuple[str, ...]) -> tuple[str, ...] | None:
    """For a key path that is not in ``data``: the path it was likely meant to
    be (a misspelt or miscased key: ``results.0.properties.lifecylestage`` on
    an answer with ``lifecyclestage``), when that path is in ``data``; else
    None. Only a key of an object is corrected, never a list index: past the
    end of a list is the usual "no record found", not a mistake."""
    for i, part in enumerate(parts):  # a short path, read for explain: lookups from the top are cheap
        parent = lookup(data, parts[:i])
        if lookup(parent, (part,)) is not MISSING:
            continue
        if not isinstance(parent, dict):  # a list index past the end, or a value without keys
            return None
        guess = did_you_mean(part, parent) or _affixed(part, parent)  # a few edits, any case; or a prefix
        if guess is None:
            return None
        fixed = (*parts[:i], guess, *parts[i + 1:])
        return fixed if lookup(data, fixed) is not MISSING else None
    return None
