"""One limiter per CRM connection: requests per window, concurrent calls, a budget.

Every node, ``run`` worker and ``serve`` request that uses the same CRM
credentials shares one :class:`ConnectionLimiter` (see :mod:`.registry`), so
the CRM sees one well-behaved client however many callers there are.

- Rate: at most ``requests`` in *any* window of ``per_seconds`` (a moving
  window from the ``limits`` library: unlike a token bucket it never lets a
  refilled burst exceed the CRM's own window), with a small safety margin for
  the network's jitter.
- Concurrency: at most ``concurrency`` calls in flight (Zoho's cap).
- Budget: at most ``budget`` requests per rolling ``budget_seconds`` (a day).
  When it is spent -- or the CRM says so in a way that does not clear in
  seconds (Salesforce's 403 REQUEST_LIMIT_EXCEEDED), or its remaining-quota
  headers reach zero -- the ``when_spent`` policy applies: ``wait`` until the
  window reopens, or ``on_error`` at once.
- In ``serve`` (``interactive``) a lead waits at most ``max_wait`` seconds
  for its slot, then goes to ``on_error``; ``run`` waits as long as it takes.

A slot is taken per HTTP attempt, retries included, and only for a request
that can be sent: the client's check of its headers comes first (a slot of
the moving window cannot be given back).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Mapping

from ..http.call import Interpreted, Refused
from .quota import read_quota

if TYPE_CHECKING:
    from limits import RateLimitItem

log = logging.getLogger(__name__)

# The window the limiter keeps is this much longer than the CRM's: two requests
# sent one window apart may arrive a little closer together.
WINDOW_MARGIN = 0.05
POLICIES = ("wait", "on_error")


# ``limits`` (~20 ms to import) is loaded by the first connection that has limits, not by every run
@lru_cache(maxsize=1)
def _per_millisecond() -> type[RateLimitItem]:
    from limits import RateLimitItem
    from limits.limits import Granularity

    class PerMillisecond(RateLimitItem):
        """``limits`` counts windows in whole seconds; time-scaled tests and the
        benchmark need windows of a few milliseconds."""

        GRANULARITY = Granularity(0.001, "millisecond")  # type: ignore[arg-type]

    return PerMillisecond


def window(amount: int, seconds: float) -> RateLimitItem:
    return _per_millisecond()(amount, max(1, round(seconds * 1000)))


def _moving_window():
    from limits.aio.storage import MemoryStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    return MovingWindowRateLimiter(MemoryStorage())


@dataclass(frozen=True)
class Limits:
    """A connection's limits (adaptor defaults, overridden per workflow connection)."""

    requests: int | None = None  # per window of per_seconds
    per_seconds: float = 1.0
    concurrency: int | None = None
    budget: int | None = None  # requests per budget_seconds
    budget_seconds: float = 86400.0
    when_spent: str = "wait"  # wait | on_error
    max_wait: float = 30.0  # serve: seconds a lead may wait for a slot before on_error
    stop_seconds: float = 3600.0  # no call for this long after an over-limit answer that does not clear
    warn_at: float = 0.8  # share of the budget that logs a warning

    @classmethod
    def merged(cls, *tables: Mapping[str, Any] | None) -> "Limits":
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for table in tables:
            values.update({k: v for k, v in (table or {}).items() if k in known})
        return cls(**values)


class _Slot:
    """What ``async with limiter.slot()`` enters: a class, not an ``asynccontextmanager``
    (its generator and wrapper cost more per call than the call through an unlimited gate)."""

    __slots__ = ("limiter",)

    def __init__(self, limiter: "ConnectionLimiter"):
        self.limiter = limiter

    async def __aenter__(self) -> None:
        if not self.limiter.free_now():
            await self.limiter.acquire()

    async def __aexit__(self, *exc: Any) -> None:
        self.limiter.release()


class ConnectionLimiter:
    """The gate of one connection (see the module docstring)."""

    def __init__(self, name: str, limits: Limits, *, interactive: bool = False, quota_headers: bool = True):
        self.name = name
        self.limits = limits
        self.interactive = interactive
        self.quota_headers = quota_headers  # False: the connection's limits are off (limits = false)
        self._rate = window(limits.requests, limits.per_seconds * (1 + WINDOW_MARGIN)) if limits.requests else None
        self._budget = window(limits.budget, limits.budget_seconds) if limits.budget else None
        # the moving window counts for those two only: a connection with neither never loads ``limits``
        self._limiter = _moving_window() if self._rate is not None or self._budget is not None else None
        self._calls = asyncio.Semaphore(limits.concurrency) if limits.concurrency else None
        self._unlimited = self._calls is None and self._limiter is None  # limits = false, or none declared
        self._turn = asyncio.Lock()  # FIFO: leads take their slots in arrival order
        self.paused_until = 0.0  # the CRM's headers say its current window is spent
        self.stopped_until = 0.0  # the budget is spent (the CRM said so, or its headers)
        self.stop_reason = ""
        self.budget_used = 0
        self.crm_used: int | None = None
        self.crm_limit: int | None = None
        self.requests = 0
        self.over_limit = 0
        self.refused = 0
        self.waiting = 0  # leads waiting for a slot now
        self.waiting_for = ""  # why, for progress bars
        self.warned = False
        self._slot = _Slot(self)  # holds no state of its own: one for every caller

    # -- the gate ---------------------------------------------------------

    async def acquire(self) -> None:
        """Wait for a slot (raises Refused); the caller calls :meth:`release` after its call."""
        if self.free_now():
            return  # what _take would find
        deadline = time.monotonic() + self.limits.max_wait if self.interactive else None
        self.waiting += 1
        try:
            if self._calls is not None:
                await self._within(deadline, self._calls.acquire(), "throttled", "concurrent calls")
            try:
                await self._within(deadline, self._take(deadline), "throttled", "its rate limit")
            except BaseException:
                if self._calls is not None:
                    self._calls.release()
                raise
        except Refused:
            self.refused += 1
            raise
        finally:
            self.waiting -= 1
            if not self.waiting:
                self.waiting_for = ""

    def release(self) -> None:
        if self._calls is not None:
            self._calls.release()

    def slot(self) -> "_Slot":
        """``async with limiter.slot():`` holds one slot (acquire, then release however it ends)."""
        return self._slot

    def free_now(self) -> bool:
        """Whether :meth:`acquire` would return at once without counting anything: no limit
        to count, none stopped or paused, nobody ahead (the common unlimited case, checked
        without a coroutine)."""
        if self._unlimited and not self._turn.locked():
            now = time.time()
            return self.stopped_until <= now and self.paused_until <= now
        return False

    async def _within(self, deadline: float | None, aw: Any, error: str, what: str) -> Any:
        if deadline is None:
            return await aw
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await aw
        except TimeoutError:
            if self.stopped_until > time.time() or self.waiting_for.startswith("budget"):
                error, what = "budget_spent", "budget to reopen"
            raise Refused(error, f"waited {self.limits.max_wait:g}s for the connection's {what}") from None

    async def _take(self, deadline: float | None) -> None:
        async with self._turn:
            while True:
                now = time.time()
                if self.stopped_until > now:
                    await self._spent(self.stopped_until - now, self.stop_reason)
                    continue
                if self.paused_until > now:
                    self.waiting_for = "the CRM's rate window"
                    await asyncio.sleep(self.paused_until - now)
                    continue
                if self._budget is not None and not await self._limiter.test(self._budget, self.name):
                    stats = await self._limiter.get_window_stats(self._budget, self.name)
                    await self._spent(stats.reset_time - now,
                                      f"budget of {self.limits.budget} requests per {self.limits.budget_seconds:g}s spent")
                    continue
                if self._rate is not None and not await self._limiter.hit(self._rate, self.name):
                    stats = await self._limiter.get_window_stats(self._rate, self.name)
                    self.waiting_for = "the rate limit"
                    await asyncio.sleep(max(0.001, stats.reset_time - time.time()))
                    continue
                if self._budget is not None:
                    await self._limiter.hit(self._budget, self.name)
                    stats = await self._limiter.get_window_stats(self._budget, self.name)
                    self.budget_used = self.limits.budget - stats.remaining
                    self._check_warning()
                return

    async def _spent(self, reopens_in: float, reason: str) -> None:
        if self.limits.when_spent == "on_error":
            raise Refused("budget_spent", reason)
        self.waiting_for = f"budget spent, reopens in {max(0.0, reopens_in):.0f}s"
        await asyncio.sleep(max(0.001, reopens_in))

    def observe(self, status: int | None, headers: Any, it: Interpreted | None) -> None:
        """Learn from an answer: count it, read the quota headers, stop on a lasting over-limit."""
        self.requests += 1
        now = time.time()
        if it is not None and it.error == "rate_limited":
            self.over_limit += 1
            if it.stops:
                self._stop(now, f"the CRM answered HTTP {status}, over a limit that does not clear in seconds")
        if not self.quota_headers:
            return
        quota = read_quota(headers)
        if quota.window_remaining is not None and quota.window_remaining <= 0 and quota.window_resets_in:
            self.paused_until = max(self.paused_until, now + quota.window_resets_in)
        if quota.daily_limit:
            self.crm_used, self.crm_limit = quota.daily_used, quota.daily_limit
            self._check_warning()
            if quota.daily_used >= quota.daily_limit:
                self._stop(now, f"the CRM's daily quota is spent ({quota.daily_used}/{quota.daily_limit})")

    def _stop(self, now: float, reason: str) -> None:
        if self.stopped_until <= now:
            log.warning("connection %s: %s; no call for %gs (when_spent=%s)", self.name, reason,
                        self.limits.stop_seconds, self.limits.when_spent)
        self.stopped_until = now + self.limits.stop_seconds
        self.stop_reason = reason

    # -- the budget warning -------------------------------------------------

    @property
    def budget_share(self) -> float:
        """The larger of our own count and the CRM's, as a share of the budget (0 when none)."""
        shares = [0.0]
        if self.limits.budget:
            shares.append(self.budget_used / self.limits.budget)
        if self.crm_limit and self.crm_used is not None:
            shares.append(self.crm_used / self.crm_limit)
        return max(shares)

    def _check_warning(self) -> None:
        share = self.budget_share
        if share >= self.limits.warn_at and not self.warned:
            self.warned = True
            log.warning("connection %s has used %.0f%% of its daily request budget", self.name, share * 100)
        elif share < self.limits.warn_at:
            self.warned = False

    def state(self) -> dict[str, Any]:
        """For /metrics, /healthz and progress bars."""
        return {"connection": self.name, "requests": self.requests, "over_limit": self.over_limit,
                "refused": self.refused, "waiting": self.waiting, "waiting_for": self.waiting_for,
                "budget_share": round(self.budget_share, 4), "budget_warning": self.warned,
                "stopped": self.stopped_until > time.time()}
