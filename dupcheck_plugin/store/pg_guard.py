"""The PostgreSQL store's phone guard: session advisory locks, one per phone's slot.

``pg_try_advisory_lock(NAMESPACE, slot)`` on a connection of the guard's own
(autocommit, in the event loop): the server lets them go when that session
ends, however the process ends. The asks and releases of one event-loop
iteration go as one statement each (``unnest`` of their slots): one round
trip for many leads, not one a lead. A session's advisory lock is counted:
taken again by the same session (two phones of one slot, or a slot asked
again before its release went out) it must be released as often, which the
guard does, once per take.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from .contract import StoreError
from .phone_guard import PhoneGuard, poll, slot_of

NAMESPACE = 0x6470_686E  # "dphn": the first key of every phone lock (the second is the slot)
CONNECT_TIMEOUT_S = 10
_ASK = ("SELECT pg_try_advisory_lock(%s, t.s) FROM unnest(%s::int4[]) WITH ORDINALITY AS t(s, i) ORDER BY t.i")
_RELEASE = "SELECT pg_advisory_unlock(%s, t.s) FROM unnest(%s::int4[]) AS t(s)"


class PgPhoneGuard(PhoneGuard):
    def __init__(self, url: str, display: str) -> None:
        self.url, self.display = url, display
        self._conn: psycopg.AsyncConnection | None = None
        self._asks: list[tuple[int, asyncio.Future]] = []
        self._releases: list[int] = []
        self._flushing: asyncio.Task | None = None
        self._closed = False

    async def wait(self, phone: str) -> int:
        slot = slot_of(phone)
        await poll(lambda: self._ask(slot))
        return slot

    def release(self, slot: int) -> None:
        self._releases.append(slot)
        self._kick()

    def _ask(self, slot: int) -> asyncio.Future:
        if self._closed:
            raise StoreError(f"store {self.display} is closed")
        asked = asyncio.get_running_loop().create_future()
        self._asks.append((slot, asked))
        self._kick()
        return asked

    def _kick(self) -> None:
        if self._flushing is None and not self._closed:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._asks or self._releases:
                await asyncio.sleep(0)  # what the rest of this loop iteration asks goes too
                if self._closed:  # the session is gone, and its locks with it
                    for _, asked in self._asks:
                        if not asked.done():
                            asked.set_exception(StoreError(f"store {self.display} is closed"))
                    self._asks, self._releases = [], []
                    return
                releases, self._releases = self._releases, []
                asks, self._asks = self._asks, []
                got: list[bool] = []
                try:
                    conn = await self._connection()
                    if releases:  # before the asks: a slot given back and asked again goes in that order
                        await conn.execute(_RELEASE, (NAMESPACE, releases))
                    if asks:
                        cur = await conn.execute(_ASK, (NAMESPACE, [slot for slot, _ in asks]))
                        got = [row[0] for row in await cur.fetchall()]
                except psycopg.Error as exc:  # the session's locks went with it, if it went
                    from .postgres import _first_line  # postgres imports this module

                    await self._drop()
                    error = StoreError(f"cannot lock a phone in PostgreSQL at {self.display}: {_first_line(exc)}")
                    for _, asked in asks:
                        if not asked.done():
                            asked.set_exception(error)
                    continue
                for (slot, asked), taken in zip(asks, got):
                    if asked.done():  # its lead was cancelled meanwhile: give a lock taken for it back
                        if taken:
                            self._releases.append(slot)
                    else:
                        asked.set_result(taken)
        finally:
            self._flushing = None

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                application_name="dupcheck phone locks")
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                pass

    async def aclose(self) -> None:
        """The session ends in the event loop that ran it (uvloop watches its socket: closed
        from the store's closing thread, it aborted 2 batched runs in 24 with --check-dup)."""
        self._closed = True
        if self._flushing is not None:  # a round trip under way: let it end, its asks are refused
            await asyncio.wait([self._flushing])
        await self._drop()

    def close(self) -> None:
        """The session ends, and the server lets its locks go (from any thread, with the event
        loop gone: the connection's socket is closed, not awaited)."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            _finish(conn)


def _finish(conn: Any) -> None:
    try:
        conn.pgconn.finish()
    except Exception:  # noqa: BLE001 - closing what may be gone already
        pass
