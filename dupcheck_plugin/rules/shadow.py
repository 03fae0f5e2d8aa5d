"""Rows of a rules table that can never decide (pure).

The first row that matches decides, so a row is dead when an earlier row
matches every answer it matches: a copy of a row left below it, a catch-all
``exists`` above the rows that read the same key, an HTTP-status row above
rows that read only those statuses. Only what the match rules prove is
reported (README, "How a row matches"): rows on different keys are never
compared, since what a CRM puts under two keys is the CRM's business.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from .decide import RulesRow

_DEFAULT_STATUSES = frozenset(range(200, 300))  # a row without http_status reads 2xx answers only


def _statuses(row: RulesRow) -> frozenset[int]:
    return row.http_status if row.http_status is not None else _DEFAULT_STATUSES


def _same(a: Any, b: Any) -> bool:
    # as written, types included: 3 and 3.0 or "3" may match alike, but saying so is not needed here
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def covers(earlier: RulesRow, later: RulesRow) -> str | None:
    """Why ``earlier`` matches every answer ``later`` matches; None when it may not."""
    if not _statuses(later) <= _statuses(earlier):
        return None
    if earlier.key is None:
        return "it reads no key, only the HTTP status"
    if later.key != earlier.key:
        return None
    key = ".".join(earlier.key)
    if earlier.op == "exists" and later.op != "missing":  # every other match needs a value there
        return f"it matches whenever {key} has a value, and this row needs one"
    if earlier.op == later.op and _same(earlier.value, later.value):
        return "the same key, match and value"
    return None


def dead_rows(rows: Sequence[RulesRow]) -> list[tuple[RulesRow, RulesRow, str]]:
    """(row that can never decide, the earlier row that takes its answers, why), in table order."""
    out = []
    for i, later in enumerate(rows):
        for earlier in rows[:i]:
            why = covers(earlier, later)
            if why is not None:
                out.append((later, earlier, why))
                break
    return out
