""""Did you mean ...?": the closest known name to a likely typo.

Typos are a letter missed, added, changed or two swapped (``phnoe``,
``methd``, ``add_to_dcn``): the optimal-string-alignment distance counts
each as one edit. difflib's ratio scores a swap poorly and finds
``phone_code`` close to ``zip_code``.
"""

from __future__ import annotations

from typing import Iterable


def did_you_mean(word: object, candidates: Iterable[object]) -> str | None:
    """The known name within a few edits of ``word`` (case-insensitive), or None."""
    if not isinstance(word, str) or not word:
        return None
    budget = max(1, min(3, len(word) // 3))
    best: tuple[int, str] | None = None
    for name in sorted({c for c in candidates if isinstance(c, str) and c and c != word}):
        d = edits(word.lower(), name.lower(), budget)
        if d <= budget and (best is None or d < best[0]):
            best = (d, name)
    return best[1] if best else None


# a value written as another tool or language spells it (a rules row's `match = ">="`, or
# "greater"), a typo of nothing: the option it stands for, where that is an option
SPELLED_OTHERWISE = {
    "=": "equals", "==": "equals", "eq": "equals", "equal": "equals", "is": "equals",
    "!=": "not_equals", "<>": "not_equals", "ne": "not_equals", "neq": "not_equals", "not_equal": "not_equals",
    ">": "gt", "greater": "gt", "greater_than": "gt", "more_than": "gt",
    ">=": "gte", "ge": "gte", "greater_or_equal": "gte", "at_least": "gte",
    "<": "lt", "less": "lt", "less_than": "lt", "<=": "lte", "le": "lte", "less_or_equal": "lte", "at_most": "lte",
    "exist": "exists", "present": "exists", "is_set": "exists", "absent": "missing", "not_exists": "missing",
    "matches": "regex", "regexp": "regex", "re": "regex", "one_of": "in", "any_of": "in", "includes": "contains",
    "has": "contains",
}


def did_you_mean_option(word: object, options: Iterable[object]) -> str | None:
    """:func:`did_you_mean` for a value of a fixed set, or the option it is another spelling of."""
    options = list(options)
    meant = did_you_mean(word, options)
    if meant is None and isinstance(word, str):
        other = SPELLED_OTHERWISE.get(word.strip().lower().replace(" ", "_").replace("-", "_"))
        meant = other if other in options else None
    return meant


def edits(a: str, b: str, limit: int) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours from ``a`` to ``b``
    (optimal string alignment); anything over ``limit`` is reported as ``limit + 1``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], before[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        before, prev = prev, cur
    return min(prev[-1], limit + 1)
