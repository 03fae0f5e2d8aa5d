"""Type-aware comparison of a rules-table row's value with the value found in the answer.

How (documented in the README, "How a row matches"):

- booleans compare as booleans; the strings ``"true"``/``"false"`` (any
  case) count as booleans, so XML and text answers can match;
- numbers compare numerically; a string holding a plain decimal number
  (ASCII digits, an optional leading ``-``, an optional fraction) counts as
  that number when the other side is a number (``"3"`` equals ``3``,
  ``"3.0"`` equals ``3``); NaN and infinities match no numeric comparison;
- otherwise strings compare exactly (case and spaces matter);
- ``null`` and lists/objects equal nothing; use ``exists``/``missing``,
  ``contains`` (list element or substring) or ``in``;
- ``regex`` runs on RE2 (linear time): a CRM answer cannot make a row
  backtrack for ever. RE2 has no backreferences or lookaround; ``check``
  refuses a pattern it cannot run.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any, Callable

import re2

from ..errors import DupcheckError
from .paths import MISSING

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is reported by check, not printed to stderr by RE2


class RegexError(DupcheckError, ValueError):
    """A pattern RE2 cannot run (backreferences, lookaround, bad syntax)."""


def compile_regex(pattern: str):
    """The compiled RE2 pattern; raises RegexError with RE2's reason."""
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise RegexError(reason) from None

# a string counts as a number only as plain decimal text: ASCII digits, a leading "-", a
# fraction; float() would also take " 12 ", "+12", "1_000", "1e3", "inf", "nan" and "١٢"
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_INT_MAX_DIGITS = 4300  # int() of longer text raises (CPython's limit); float() reads it


def _as_number(v: Any) -> int | float | None:
    """The number in ``v``, or None: a JSON number or plain decimal text, never NaN or an
    infinity. Integers stay ints: Python compares an int with a float exactly, so a
    400-digit JSON integer (``float()`` of it raises) or a 20-digit id compares right."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, str) and _PLAIN_DECIMAL.fullmatch(v):
        if "." not in v and len(v) <= _INT_MAX_DIGITS:
            return int(v)
        f = float(v)
        return f if math.isfinite(f) else None
    return None


def _as_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        low = v.strip().lower()
        if low == "true":
            return True
        if low == "false":
            return False
    return None


def equal(found: Any, expected: Any) -> bool:
    if found is None or found is MISSING or isinstance(found, (list, dict)):
        return False
    if isinstance(expected, bool) or isinstance(found, bool):
        a, b = _as_bool(found), _as_bool(expected)
        return a is not None and a == b
    if isinstance(expected, (int, float)) or isinstance(found, (int, float)):
        a, b = _as_number(found), _as_number(expected)
        return a is not None and b is not None and a == b
    return isinstance(found, str) and isinstance(expected, str) and found == expected


def _ordered(op: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    def compare(found: Any, expected: Any) -> bool:
        a, b = _as_number(found), _as_number(expected)
        return a is not None and b is not None and op(a, b)
    return compare


@lru_cache(maxsize=256)
def _regex(pattern: str):
    return compile_regex(pattern)


def _regex_match(found: Any, expected: Any) -> bool:
    if found is None or isinstance(found, (list, dict)):
        return False
    text = ("true" if found else "false") if isinstance(found, bool) else str(found)
    return _regex(str(expected)).search(text) is not None


def _contains(found: Any, expected: Any) -> bool:
    if isinstance(found, list):
        return any(equal(item, expected) for item in found)
    if isinstance(found, str):
        return str(expected) in found
    if isinstance(found, dict):
        return isinstance(expected, str) and expected in found
    return False


_PRESENT_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": equal,
    "not_equals": lambda f, e: f is not None and not isinstance(f, (list, dict)) and not equal(f, e),
    "exists": lambda f, e: f is not None,
    "missing": lambda f, e: f is None,
    "regex": _regex_match,
    "in": lambda f, e: any(equal(f, x) for x in e),
    "contains": _contains,
    "gt": _ordered(lambda a, b: a > b),
    "gte": _ordered(lambda a, b: a >= b),
    "lt": _ordered(lambda a, b: a < b),
    "lte": _ordered(lambda a, b: a <= b),
}


OPERATORS = tuple(_PRESENT_OPS)  # the schema's `match` enum; a test keeps the two equal


def matches(op: str, found: Any, expected: Any) -> bool:
    """Does ``found`` (possibly :data:`MISSING`) satisfy ``op expected``?
    A missing key matches nothing but ``missing``; ``null`` counts as missing
    for ``exists``/``missing``."""
    if found is MISSING:
        return op == "missing"
    return _PRESENT_OPS[op](found, expected)
