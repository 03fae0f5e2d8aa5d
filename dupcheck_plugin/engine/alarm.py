"""The "everything is a duplicate" alarm: a mistyped row that marks every
lead a duplicate is the costliest silent failure of a duplicate check, so
the engine watches the decisions it makes.

Over a rolling window of the last ``window`` leads the CRM answered, it
raises the alarm (a warning log line, and the state in ``/healthz`` and
``/metrics``) when

- a row that skips leads (``create_lead = false``) or puts them on the DNC
  list matched **every** answer of the window; or
- the share of duplicates, or of one row, is ``jump`` above its usual level
  and at least ``factor`` times it. The usual level is a slow moving average
  of the leads that left the window; it needs a full window of history.

The alarm clears once a full window has passed without either. Pure logic
and a logger: no I/O.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Mapping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlarmSettings:
    window: int = 200
    factor: float = 3.0
    jump: float = 0.3
    memory: int = 10  # the usual level forgets over this many windows

    def __post_init__(self) -> None:
        if self.window < 10 or self.factor < 1 or not 0 < self.jump <= 1 or self.memory < 1:
            raise ValueError("alarm needs window >= 10, factor >= 1, 0 < jump <= 1, memory >= 1")


DUPLICATES = "duplicates"  # the key of the overall share among the per-row ones


class DuplicateAlarm:
    def __init__(self, workflow: str, settings: AlarmSettings = AlarmSettings()):
        self.workflow = workflow
        self.s = settings
        self._size = settings.window  # the settings' figures read for every lead: kept at hand
        self._alpha_floor = 1.0 / (settings.window * settings.memory)
        self._window: deque[tuple[int | None, bool, bool]] = deque()  # (row, duplicate, row skips/DNCs)
        self._counts: Counter = Counter()  # DUPLICATES and row index -> count in the window
        self._usual: dict[Any, float] = {}  # the same keys -> usual share
        self._skipping = 0  # entries in the window whose row skipped or DNCed the lead
        self._left = 0  # leads that left the window (the usual level's history)
        self._quiet = 0  # leads since a condition last held
        self.active = False
        self.reason: str | None = None
        self.times_raised = 0

    def follow(self, workflow: str, settings: AlarmSettings, row_map: Mapping[int, int]) -> "DuplicateAlarm":
        """The alarm for a reloaded workflow: it carries the workflow's (maybe
        new) name; new settings start a new alarm. ``row_map``: old row number
        -> new row number of the same row; a row's history follows it, and
        the history of a row that is gone or was edited is forgotten."""
        if settings != self.s:
            return DuplicateAlarm(workflow, settings)
        self.workflow = workflow

        def moved(key: Any) -> Any:
            return key if key == DUPLICATES else row_map.get(key)

        self._window = deque((moved(row) if row is not None else None, dup, skips) for row, dup, skips in self._window)
        self._counts = Counter({moved(k): v for k, v in self._counts.items() if moved(k) is not None})
        self._usual = {moved(k): v for k, v in self._usual.items() if moved(k) is not None}
        return self

    def observe(self, record: Mapping[str, Any]) -> None:
        """One stored decision record. Only leads whose CRM answer the rules read count."""
        if not record.get("checked"):
            return
        row = record.get("rules_row")
        duplicate = record.get("action") == "duplicate"
        skips = duplicate or bool(record.get("dnc_added"))
        window = self._window
        window.append((row, duplicate, skips))
        # counted as it comes (and uncounted as it leaves, in _leave): written out, not a call,
        # as this runs for every lead
        if skips:
            self._skipping += 1
        if duplicate:
            self._counts[DUPLICATES] += 1
        if row is not None:
            self._counts[row] += 1
        n = len(window)
        if n > self._size:
            self._leave(window.popleft())
            n -= 1
        if n == self._size:
            if self.active or self._skipping == n or (self._left >= n and self._jumped(n)):
                self._check(n)
            else:  # what _check does when _finding finds nothing, the usual lead, without its two calls
                self._quiet += 1

    def _leave(self, entry: tuple[int | None, bool, bool]) -> None:
        row, duplicate, skips = entry
        if skips:
            self._skipping -= 1
        if duplicate:
            self._counts[DUPLICATES] -= 1
        if row is not None:
            self._counts[row] -= 1
        self._left += 1
        # the mean of every lead that left, until there are memory windows of them; then a moving average
        alpha = max(1.0 / self._left, self._alpha_floor)
        levels = self._usual
        if DUPLICATES not in levels:
            levels[DUPLICATES] = 0.0
        if row is not None and row not in levels:
            levels[row] = 0.0
        for key, usual in levels.items():  # every level moves, each towards 1 or 0 (values only: no key added)
            x = 1.0 if (duplicate if key == DUPLICATES else key == row) else 0.0
            levels[key] = usual + alpha * (x - usual)

    def share(self, key: Any) -> float:
        return self._counts.get(key, 0) / max(1, len(self._window))

    def _finding(self, n: int) -> str | None:
        """What is wrong with the full window of ``n`` leads, or None."""
        # counted as leads come and go, not by a walk over the window per lead
        row = self._window[0][0]
        if row is not None and self._skipping == n and self._counts[row] == n:
            return f"row {row} matched every one of the last {n} CRM answers"
        if self._left >= self._size and self._jumped(n):  # a usual level to compare with
            for key in [DUPLICATES] + sorted(k for k in self._counts if k != DUPLICATES):
                now, usual = self.share(key), self._usual.get(key, 0.0)
                if now >= usual + self.s.jump and now >= usual * self.s.factor:
                    what = "duplicates" if key == DUPLICATES else f"leads matched by row {key}"
                    return f"{what}: {now:.0%} of the last {n} CRM answers, usually {usual:.0%}"
        return None

    def _jumped(self, n: int) -> bool:
        """Whether any share is up from its usual level (the same test as
        :meth:`_finding`'s, without ordering the keys: the usual case is no)."""
        jump, factor, levels = self.s.jump, self.s.factor, self._usual
        for key, count in self._counts.items():  # a key not counted has share 0: never up by jump > 0
            now, usual = count / n, levels.get(key, 0.0)
            if now >= usual + jump and now >= usual * factor:
                return True
        return False

    def _check(self, n: int) -> None:
        finding = self._finding(n)
        if finding is not None:
            self._quiet = 0
            if not self.active:
                self.active, self.reason = True, finding
                self.times_raised += 1
                log.warning("duplicate alarm for workflow %s: %s; check the rules table", self.workflow, finding)
            return
        self._quiet += 1
        if self.active and self._quiet >= self.s.window:
            log.warning("duplicate alarm for workflow %s cleared: the last %d CRM answers look usual",
                        self.workflow, self.s.window)
            self.active, self.reason = False, None

    def status(self) -> dict[str, Any]:
        """For /healthz, /metrics and run's summary."""
        return {"active": self.active, "reason": self.reason, "times_raised": self.times_raised,
                "window": len(self._window), "duplicate_share": round(self.share(DUPLICATES), 4),
                "usual_duplicate_share": round(self._usual[DUPLICATES], 4) if self._left >= self.s.window else None}
