"""Failed admin logins, counted per client address: guessing tokens is slowed to a crawl.

At most ``limit`` failures in any ``window`` seconds from one address; then
every login from it (a good token too: an attacker must learn nothing) is
refused with 429 and Retry-After until the oldest of those failures is
``window`` seconds old. A good login clears the address's count. Pure logic
on an injected clock; cachetools bounds the memory and forgets idle addresses.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from cachetools import TTLCache

LIMIT = 5
WINDOW_S = 60.0
MAX_CLIENTS = 10_000  # addresses remembered at once (the least recently seen go first)


class LoginThrottle:
    def __init__(self, limit: int = LIMIT, window: float = WINDOW_S, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = MAX_CLIENTS):
        if limit < 1 or window <= 0:
            raise ValueError("a login throttle needs limit >= 1 and window > 0")
        self.limit, self.window, self.clock = limit, window, clock
        # an address whose last failure is a window old has nothing left to count
        self._failures: TTLCache[str, tuple[float, ...]] = TTLCache(maxsize=max_clients, ttl=window, timer=clock)

    def _recent(self, client: str, now: float) -> tuple[float, ...]:
        return tuple(t for t in self._failures.get(client, ()) if t > now - self.window)

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try again, or None when it may now."""
        now = self.clock()
        recent = self._recent(client, now)
        if len(recent) < self.limit:
            return None
        return max(1, math.ceil(recent[-self.limit] + self.window - now))

    def failed(self, client: str) -> None:
        now = self.clock()
        self._failures[client] = (self._recent(client, now) + (now,))[-self.limit:]

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
