"""Vendors' quotas as the simulator enforces them: a scaled clock, windows, a concurrency cap, the knobs.

Time in the simulator is simulated: ``time_scale`` simulated seconds pass per
real second (60: an hour in a minute), so a 24 h budget or a one-hour token
runs out in minutes. ``time_scale = 0`` stops the clock: only
``POST /_sim/clock {"advance": seconds}`` moves it, so a test counts requests
and never waits for a window. Every duration a client is told (``expires_in``,
reset headers) is in real seconds, so a client needs no idea of the scale.

The windows are a few lines each rather than a limiter library: the libraries
read the real clock, and the simulator must read its own.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from .vendors import SimRequest, SimResponse

DAY = 86_400.0
EPSILON = 1e-6  # simulated seconds: a clock advanced by 3599 then 1 reads t + 3600 give or take a rounding


class Clock:
    """Simulated seconds since the simulator started."""

    def __init__(self, time_scale: float = 1.0):
        self.time_scale = time_scale
        self._t0 = time.monotonic()
        self._base = 0.0

    def now(self) -> float:
        return self._base + (time.monotonic() - self._t0) * self.time_scale

    def advance(self, seconds: float) -> float:
        self._base += seconds
        return self.now()

    def set_scale(self, time_scale: float) -> None:
        self._base, self._t0, self.time_scale = self.now(), time.monotonic(), time_scale

    def real(self, sim_seconds: float) -> float:
        """How long ``sim_seconds`` last in real time (a stopped clock: as long as said)."""
        return sim_seconds / self.time_scale if self.time_scale > 0 else sim_seconds


class RollingWindow:
    """At most ``limit`` units in any ``period`` seconds: a log of what was admitted, and when."""

    def __init__(self, limit: int, period: float):
        self.limit, self.period = limit, period
        self._log: deque[tuple[float, int]] = deque()
        self._used = 0

    def _expire(self, now: float) -> None:
        while self._log and self._log[0][0] <= now - self.period + EPSILON:
            self._used -= self._log.popleft()[1]

    def used(self, now: float) -> int:
        self._expire(now)
        return self._used

    def fits(self, now: float, cost: int = 1) -> bool:
        return self.used(now) + cost <= self.limit

    def take(self, now: float, cost: int = 1) -> None:
        self._log.append((now, cost))
        self._used += cost

    def reset_in(self, now: float) -> float:
        """Seconds until the oldest admitted unit leaves the window (0: nothing in it)."""
        self._expire(now)
        return self._log[0][0] + self.period - now if self._log else 0.0


class DailyWindow:
    """At most ``limit`` units per simulated calendar day (day 0 starts when the simulator does)."""

    period = DAY

    def __init__(self, limit: int):
        self.limit = limit
        self._day, self._used = 0, 0

    def used(self, now: float) -> int:
        day = int(now // DAY)
        if day != self._day:
            self._day, self._used = day, 0
        return self._used

    def fits(self, now: float, cost: int = 1) -> bool:
        return self.used(now) + cost <= self.limit

    def take(self, now: float, cost: int = 1) -> None:
        self.used(now)
        self._used += cost

    def reset_in(self, now: float) -> float:
        return (int(now // DAY) + 1) * DAY - now


class Keyed:
    """One window per key (a token, a location), made on first use."""

    def __init__(self, make):
        self._make, self._by_key = make, {}

    def __call__(self, key: str):
        if key not in self._by_key:
            self._by_key[key] = self._make()
        return self._by_key[key]

    def keys(self) -> int:
        return len(self._by_key)


Window = RollingWindow | DailyWindow


@dataclass
class Refusal:
    """An over-limit answer and the policy that gave it (``SECONDLY``, ``DAILY``, ``CONCURRENCY`` ...)."""

    policy: str
    response: "SimResponse"


def take_all(now: float, windows: Iterable[tuple[str, Window | None, int]]) -> str | None:
    """Take ``cost`` from every window, or from none: the policy of the first one that is full."""
    wanted = [(policy, w, cost) for policy, w, cost in windows if w is not None]
    for policy, w, cost in wanted:
        if not w.fits(now, cost):
            return policy
    for _, w, cost in wanted:
        w.take(now, cost)
    return None


class Quota:
    """One vendor's limits inside one simulator. Vendors subclass it; the default limits nothing."""

    def __init__(self, limits: "Limits", clock: Clock):
        self.limits, self.clock = limits, clock

    def admit(self, req: "SimRequest", now: float) -> Refusal | None:
        """None: go ahead (the request now counts); otherwise the vendor's over-limit answer."""
        return None

    def finish(self, req: "SimRequest") -> None:
        """The answer to an admitted request is out."""

    def headers(self, req: "SimRequest", now: float) -> dict[str, str]:
        """Quota headers the vendor sends on this answer (refusals included)."""
        return {}

    def snapshot(self, now: float) -> dict[str, Any]:
        """What is used of each limit, for /_sim/stats."""
        return {}


def real_seconds(clock: Clock, sim_seconds: float) -> int:
    """A duration as a client is told it: whole real seconds, rounded up, at least 1."""
    return max(1, math.ceil(clock.real(sim_seconds) - 1e-9))


def expires_in(clock: Clock, sim_seconds: float) -> int:
    """A token lifetime as a client is told it: rounded down (never promise more), at least 1."""
    return max(1, int(clock.real(sim_seconds) + 1e-9))


_OFF = "off"


@dataclass(frozen=True)
class Limits:
    """Every limit the simulator enforces; ``None`` switches one off.

    The defaults are the vendors' documented limits (docs/crms.md, "Limits in
    the simulator"); ``Limits.off()`` switches every limit off (the Python
    API's default, which existing tests rely on).
    """

    time_scale: float = 1.0  # simulated seconds per real second; 0: stopped (POST /_sim/clock moves it)
    # HubSpot: search 4/s per token; every call 100 per rolling 10 s and 250,000 per day per portal
    hubspot_search_per_second: int | None = 4
    hubspot_ten_secondly: int | None = 100
    hubspot_daily: int | None = 250_000
    hubspot_token_lifetime: float | None = 1800.0  # public apps' OAuth access tokens
    # Salesforce: API requests per org per rolling 24 h; session (access token) lifetime
    salesforce_daily: int | None = 100_000
    salesforce_session_lifetime: float | None = 7200.0
    salesforce_rotate_refresh_tokens: bool = False  # each refresh answers a new refresh token, the old one dies
    # Zoho: calls in flight per org; API credits per rolling 24 h; access token lifetime
    zoho_concurrency: int | None = 10
    zoho_daily_credits: int | None = 50_000
    zoho_token_lifetime: float | None = 3600.0
    # GoHighLevel: per location, 100 per rolling 10 s and 200,000 per day
    gohighlevel_burst: int | None = 100
    gohighlevel_daily: int | None = 200_000
    gohighlevel_token_lifetime: float | None = 86_399.0  # OAuth access tokens (refresh tokens are single-use)
    # Pipedrive: requests per rolling 2 s per token; a daily budget of tokens (a search costs search_cost)
    pipedrive_burst: int | None = 20
    pipedrive_daily_tokens: int | None = 30_000
    pipedrive_search_cost: int = 40

    def __post_init__(self) -> None:
        if not (isinstance(self.time_scale, (int, float)) and self.time_scale >= 0):
            raise ValueError(f"time_scale must be a number >= 0, got {self.time_scale!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "time_scale" or isinstance(value, bool) or value is None:
                continue
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{f.name} must be a positive number or off, got {value!r}")

    @classmethod
    def real(cls, **changes: Any) -> "Limits":
        """The vendors' documented limits, with ``changes``."""
        return cls().replace(**changes)

    @classmethod
    def off(cls, **changes: Any) -> "Limits":
        """No limit at all (tokens never expire), with ``changes``."""
        nothing = {f.name: None for f in dataclasses.fields(cls) if f.type.endswith("| None")}
        return cls(**nothing).replace(**changes)

    def replace(self, **changes: Any) -> "Limits":
        """A copy with ``changes``; text is coerced ("500", "0.5", "off", "true")."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = set(changes) - set(fields)
        if unknown:
            raise ValueError(f"unknown limit(s) {sorted(unknown)}; known: {sorted(fields)}")
        return dataclasses.replace(self, **{name: _coerce(fields[name], v) for name, v in changes.items()})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    kind = f.type
    text = str(value).strip().lower() if isinstance(value, str) else None
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if value is None or text in (_OFF, "none", ""):
            if "None" not in kind:
                raise ValueError
            return None
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if kind.startswith("int"):
            if number != int(number):
                raise ValueError
            return int(number)
        return number
    except (TypeError, ValueError):
        raise ValueError(f"bad value for {f.name}: {value!r}") from None


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["salesforce_daily=500", "zoho_concurrency=off"]`` -> a dict (the CLI's ``--limit``)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected NAME=VALUE, got {item!r}; names: {', '.join(Limits.names())}")
        out[name.strip()] = value.strip()
    return out
