"""Per-key asyncio locks (one per E.164 phone, one per Idempotency-Key).

An entry lives only while someone holds or waits for it, so the dict stays
as small as the number of keys in flight, however many keys pass through.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class KeyedLocks:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:  # FIFO: requests for one phone are answered in arrival order
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]
