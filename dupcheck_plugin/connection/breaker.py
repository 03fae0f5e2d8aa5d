"""A circuit breaker per connection: a CRM that is down is not asked again
and again, lead after lead.

closed -> (``failures`` failures in a row: connection errors, timeouts, 5xx)
-> open: every call is refused at once (the lead goes to ``on_error`` with
``crm.error = "circuit_open"``) -> after ``cool_down`` seconds the next call
goes out as the one probe (half-open; the calls that come meanwhile wait for
its outcome) -> its outcome closes the breaker, or opens it for another
cool-down and the waiting calls are refused.

It starts half-open too: one call at a time until the CRM has answered
once (or ``failures`` calls in a row have failed, which opens it), so a CRM
that is down when a run starts costs ``failures`` calls, not one per lead in
flight, and one failed call at start-up is not yet an outage.

Written here rather than taken from a library: the ones on PyPI let every
call through when half-open (we want exactly one probe) or count raised
exceptions (we count classified outcomes, a 5xx is an answer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
CALL, PROBE = "call", "probe"  # what admit() lets out
# the outcomes that say the CRM is unwell; a rate limit or a 4xx says it is up
FAILURES = frozenset({"connection", "timeout", "http_status"})


class CircuitBreaker:
    def __init__(self, name: str, *, failures: int = 5, cool_down: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        if failures < 1 or cool_down < 0:
            raise ValueError("failures must be >= 1 and cool_down >= 0")
        self.name = name
        self.failures = failures
        self.cool_down = cool_down
        self._clock = clock
        self.state = HALF_OPEN
        self.failed_in_a_row = 0
        self.opened_at: float | None = None
        self.times_opened = 0
        self.refused = 0  # calls refused while open
        self.last_failure: str | None = None
        self._probing = False
        self._verdict: asyncio.Event | None = None  # set when the probe out ends

    def admitted(self) -> str | None:
        """CALL when the breaker is closed (what :meth:`admit` would say at once, without a
        coroutine); None: ask :meth:`admit`."""
        return CALL if self.state == CLOSED else None

    async def admit(self) -> str | None:
        """May a call go out now? None: refused. Else a pass (CALL or PROBE)
        that the caller hands back to exactly one of :meth:`record` or
        :meth:`release`. While a probe is out, waits for its outcome."""
        while True:
            if self.state == CLOSED:
                return CALL
            if self.state == OPEN:
                if self._clock() - (self.opened_at or 0.0) < self.cool_down:
                    self.refused += 1
                    return None
                self.state = HALF_OPEN
            if not self._probing:
                self._probing = True
                return PROBE
            if self._verdict is None:
                self._verdict = asyncio.Event()
            await self._verdict.wait()

    def _probe_ended(self) -> None:
        self._probing = False
        if self._verdict is not None:
            self._verdict.set()
            self._verdict = None

    def record(self, ticket: str, error: str | None, detail: str | None = None) -> None:
        """The outcome of an admitted call (``error`` None: the CRM answered)."""
        if error not in FAILURES:
            if self.state != CLOSED and self.times_opened:
                log.warning("circuit breaker %s closed: the CRM answered again", self.name)
            self.state, self.failed_in_a_row, self.opened_at = CLOSED, 0, None
            if ticket == PROBE:
                self._probe_ended()
            return
        self.failed_in_a_row += 1
        self.last_failure = f"{error}: {detail}" if detail else error
        if self.state == HALF_OPEN and ticket == PROBE:
            if self.opened_at is not None or self.failed_in_a_row >= self.failures:
                self._open(error)  # still down after a cool-down, or down from the start
        elif self.state == CLOSED and self.failed_in_a_row >= self.failures:
            self._open(error)
        if ticket == PROBE:
            self._probe_ended()

    def _open(self, error: str) -> None:
        if self.opened_at is None:  # a new outage, not a failed probe of the same one
            self.times_opened += 1
            log.warning("circuit breaker %s opened after %d failed call(s) in a row (last: %s); calls stop for %gs",
                        self.name, self.failed_in_a_row, error, self.cool_down)
        self.state, self.opened_at = OPEN, self._clock()

    def release(self, ticket: str) -> None:
        """An admitted call ended without an outcome (cancelled): a probe
        slot is given back so the next call can probe."""
        if ticket == PROBE:
            self._probe_ended()

    def why(self) -> str:
        wait = max(0.0, self.cool_down - (self._clock() - (self.opened_at or 0.0)))
        return (f"circuit breaker open after {self.failed_in_a_row} failures in a row "
                f"(last: {self.last_failure}); next probe in {wait:.1f}s")

    def snapshot(self) -> dict[str, Any]:
        """For /healthz and /metrics."""
        return {"state": self.state, "failures_in_a_row": self.failed_in_a_row,
                "times_opened": self.times_opened, "calls_refused": self.refused,
                "last_failure": self.last_failure}
