"""Per-key asyncio locks (one per E.164 phone, one per Idempotency-Key).

An entry lives only while someone holds or waits for it, so the dict stays
as small as the number of keys in flight, however many keys pass through.

Almost every key is uncontended (one lead per phone in flight): taking it is
then one dict insert, with no lock object, no future and no suspension;
only a second holder of the same key gets a future to wait on. Waiters are
served first come, first served.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Hashable


class KeyedLocks:
    def __init__(self) -> None:
        # key -> its waiters, oldest first (None: held, nobody waiting)
        self._entries: dict[Hashable, deque[asyncio.Future] | None] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, key: Hashable) -> asyncio.Future | None:
        """Hold ``key``: None when it is held now, else a future to await with
        :meth:`wait`; the key is held once it is done. Either way,
        :meth:`release` it afterwards."""
        entries = self._entries
        if key not in entries:
            entries[key] = None
            return None
        waiters = entries[key]
        if waiters is None:
            waiters = entries[key] = deque()
        turn = asyncio.get_running_loop().create_future()
        waiters.append(turn)
        return turn

    async def wait(self, key: Hashable, turn: asyncio.Future) -> None:
        """Wait for ``turn`` (from :meth:`take`). A waiter cancelled before its
        turn gives the turn up; one cancelled once given it passes the key on."""
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release(key)
            raise

    async def acquire(self, key: Hashable) -> None:
        turn = self.take(key)
        if turn is not None:
            await self.wait(key, turn)

    def release(self, key: Hashable) -> None:
        """Hand ``key`` to the next waiter still waiting, or forget it."""
        waiters = self._entries[key]
        while waiters:
            turn = waiters.popleft()
            if not turn.done():  # a cancelled waiter gave its turn up
                turn.set_result(None)  # held by that waiter from now on
                return
        del self._entries[key]

    def hold(self, key: Hashable) -> "_Held":
        """``async with locks.hold(key):`` -- the key held for the block."""
        return _Held(self, key)


class _Held:
    __slots__ = ("locks", "key")

    def __init__(self, locks: KeyedLocks, key: Hashable) -> None:
        self.locks, self.key = locks, key

    async def __aenter__(self) -> None:
        await self.locks.acquire(self.key)

    async def __aexit__(self, *exc: object) -> None:
        self.locks.release(self.key)
