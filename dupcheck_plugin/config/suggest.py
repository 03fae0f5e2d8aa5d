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
