"""What ``dupcheck check`` (and the console) warn about a rules table (pure):
rows that can never decide, settings no row reads.

The first row that matches decides, so a row is dead when an earlier row
matches every answer it matches: a copy of a row left below it, a catch-all
``exists`` above the rows that read the same key, an HTTP-status row above
rows that read only those statuses, a number range above a narrower one
(``gte 0`` above ``gt 10``), an ``in`` above an ``equals`` of one of its
values. Only what the match rules prove is reported (README, "How a row
matches"): rows on different keys are never compared, since what a CRM puts
under two keys is the CRM's business.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

from ..config.suggest import did_you_mean
from .decide import RulesRow
from .paths import odd_segment, split_path

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
    if earlier.op in _RANGES and _number(earlier.value) is not None:
        theirs = _values(later)
        if theirs and all(_within(earlier.op, earlier.value, op, v) for op, v in theirs):
            return f"every {key} this row matches is {_RANGES[earlier.op]} {json.dumps(earlier.value)}"
    if earlier.op in ("equals", "in") and later.op in ("equals", "in"):
        ours, theirs = [v for _, v in _values(earlier)], [v for _, v in _values(later)]
        if theirs and all(any(_same(v, w) for w in ours) for v in theirs):
            return f"every value of {key} this row matches, it matches too"
    return None


_RANGES = {"gt": "over", "gte": "at least", "lt": "under", "lte": "at most"}


def _number(v: Any) -> int | float | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _values(row: RulesRow) -> list[tuple[str, Any]]:
    """A row's match as (op, value) pairs that each must hold for one of its values: an
    ``in`` is an ``equals`` of each item; [] for a match this module does not reason about."""
    if row.op == "in" and isinstance(row.value, list):
        return [("equals", v) for v in row.value]
    if row.op in ("equals", *_RANGES):
        return [(row.op, row.value)]
    return []


def _within(range_op: str, bound: int | float, op: str, value: Any) -> bool:
    """Whether every number that satisfies ``op value`` satisfies ``range_op bound`` (the
    match compares numbers as numbers: ``_as_number`` on both sides)."""
    v = _number(value)
    if v is None:  # text, a boolean: its matches may be values no range reads
        return False
    if range_op in ("gt", "gte"):
        if op == "gt":
            return v >= bound
        if op in ("gte", "equals"):
            return v > bound if range_op == "gt" else v >= bound
        return False
    if op == "lt":
        return v <= bound
    if op in ("lte", "equals"):
        return v < bound if range_op == "lt" else v <= bound
    return False


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


def rule_warnings(config: Mapping[str, Any]) -> list[tuple[tuple, str, str]]:
    """Warnings of ``dupcheck check`` for a valid node's rules, each at its place:
    [(path in config, message, code)]. Warnings, not problems: none of them
    changes a decision, but each is surely not what its author meant."""
    rules = config.get("rules", [])
    parsed = [RulesRow.from_config(i, r) for i, r in enumerate(rules)]
    dead = {row.index: (earlier, why) for row, earlier, why in dead_rows(parsed)}
    out: list[tuple[tuple, str, str]] = []
    for i, row in enumerate(rules):  # in table order, as a reader goes through it
        if i in dead:
            earlier, why = dead[i]
            out.append((("rules", i), f"{_label(parsed[i])} can never decide: {_label(earlier)} comes first and "
                                      f"matches every answer it matches ({why}); remove it, or move it above "
                                      f"{_label(earlier)}", "dead_row"))
        odd = odd_segment(row.get("key"))
        if odd is not None:
            out.append((("rules", i, "key"), f"{odd} in this key: a CRM's answer hardly has such a key, so the row "
                                             "reads one that is not there (write the answer's keys as they are, "
                                             "dot-separated)", "odd_key"))
        if "value" in row and row.get("match") in ("exists", "missing"):
            out.append((("rules", i, "value"), f"match = \"{row['match']}\" does not read a value: this one is ignored",
                        "unused_value"))
        if row.get("status") and not row.get("create_lead"):
            out.append((("rules", i, "status"), "this status is never used: the row does not create the lead "
                                                "(status is the created lead's; create_lead = true to post it)",
                        "unused_status"))
        for key in ("code", "text"):
            if key in row and row.get("success"):
                out.append((("rules", i, key), f"this failure {key} is never used: the row answers success "
                                               "(success = false to answer failure with it)", "unused_code"))
    return out


def on_error_warnings(config: Mapping[str, Any]) -> list[tuple[tuple, str, str]]:
    """An ``on_error`` setting its action never reads: [(path in config, message, code)].
    reject answers a retryable failure and creates nothing; create answers success unless
    ``success = false``, and only then with ``code`` and ``text``."""
    policy = config.get("on_error") or {}
    action = policy.get("action", "create")
    if action == "reject":
        unused = [(key, "action = \"reject\" creates no lead and answers failure") for key in ("status", "success")]
    elif policy.get("success", True):
        unused = [(key, "action = \"create\" answers success here (success = false to answer failure with it)")
                  for key in ("code", "text")]
    else:
        unused = []
    return [(("on_error", key), f"this {key} is never used: {why}", "unused_setting")
            for key, why in unused if key in policy]


def answer_key_warnings(config: Mapping[str, Any], known: frozenset[str],
                        adaptor: str) -> list[tuple[tuple, str, str, str]]:
    """A rules key whose first part is a typo away from an answer key the connection's adaptor
    names (``known``: its [batch] records and set, its record_id): ``totalSiz`` for
    ``totalSize``. [(path in config, message, code, the key meant)]. The rest of an answer
    is the CRM's to say (``explain`` reads a real one)."""
    out = []
    for j, row in enumerate(config.get("rules") or []):
        first = split_path(row.get("key") or "")[:1]
        if not first or first[0] in known or odd_segment(row.get("key")) is not None:
            continue  # an odd key has its own warning (rule_warnings)
        meant = did_you_mean(first[0], known)
        if meant is not None:
            out.append((("rules", j, "key"), f"{first[0]!r} is not one of the answer keys {adaptor} names "
                                            f"({', '.join(sorted(known))}): this row would read a key the "
                                            "answer lacks", "unknown_answer_key", meant))
    return out


def _label(row: RulesRow) -> str:
    return f"rules[{row.index}]" + (f" ({row.name})" if row.name else "")
