"""One phone at a time across processes: a lock per phone that every process
writing one store shares.

A host holds a phone's lock (:class:`~dupcheck_plugin.engine.locks.KeyedLocks`)
over the local check, the CRM call and the create, so two leads with one
phone cannot both pass. That lock is the process's own: two ``serve``
processes on one store (a restart overlapping the old one, several behind a
load balancer), or a ``run`` beside a ``serve``, each took the phone of a
lead posted to both at once, and both created it. The store's guard is the
same lock between processes; a host takes it after its own, for every lead
whose local checks (``check_dup``, ``check_dnc``) read the store: without them
no decision reads what another process stored.

Phones map to one of 2^31 slots (a hash): two phones sharing a slot wait
for each other across processes, which is rare and only slower. Within a
process a slot is counted, not locked twice (PostgreSQL's server counts a
session's): the host's own lock already orders leads with one phone.
Contended slots are polled (2 ms doubling to 50 ms): the wait lasts as long
as the other process's CRM call, and is rare.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import zlib
from abc import ABC, abstractmethod
from typing import Awaitable, Callable

from .contract import StoreError

_TRY_WRITE_LOCK = fcntl.LOCK_EX | fcntl.LOCK_NB
POLL_FIRST_S = 0.002
POLL_MAX_S = 0.05


def slot_of(phone: str) -> int:
    """The phone's slot, 0 .. 2^31 - 1 (an int4 for PostgreSQL, a byte offset for a lock file):
    the same in every process (CRC-32: str's own hash is salted per process; blake2b took
    1.4 us a phone, CRC-32 a tenth of that)."""
    return zlib.crc32(phone.encode("utf-8", "surrogatepass")) & 0x7FFF_FFFF


async def poll(take: Callable[[], bool | Awaitable[bool]]) -> None:
    """Call ``take`` until it says True, waiting longer between tries (to :data:`POLL_MAX_S`)."""
    delay = POLL_FIRST_S
    while True:
        got = take()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, POLL_MAX_S)


class PhoneGuard(ABC):
    """A store's lock per phone between processes (see the module's docstring). Held in
    two steps, as the host's own locks are (the usual phone is free, and then no
    coroutine is made for it): :meth:`take`, and :meth:`wait` when it says None."""

    def take(self, phone: str) -> int | None:
        """The phone's slot, held now; None: :meth:`wait` for it."""
        return None

    @abstractmethod
    async def wait(self, phone: str) -> int:
        """Hold ``phone`` against other processes once they let it go; returns its slot."""

    @abstractmethod
    def release(self, slot: int) -> None:
        """Let other processes have the slot (once this process has released it as often as it took it)."""

    @abstractmethod
    def close(self) -> None:
        """Let go of every phone; calling it again does nothing."""

    async def aclose(self) -> None:
        """:meth:`close`, in the event loop that used the guard: a socket that loop watches is
        closed there, not from the thread that closes the store (uvloop aborts the process)."""
        self.close()


class FilePhoneGuard(PhoneGuard):
    """The guard of a store in one file (SQLite): a write lock (``lockf``) on one byte of a
    lock file next to it, at the phone's slot. The kernel lets a process's locks go when
    it ends, however it ends. Such locks belong to the process, not to a file descriptor,
    and closing any descriptor of the file drops them all: so each process opens a lock
    file once, and its guards share that descriptor and its counts."""

    _files: dict[str, "_LockFile"] = {}  # real path -> this process's descriptor and counts
    _files_lock = threading.Lock()

    def __init__(self, path: str) -> None:
        key = os.path.realpath(path)
        with self._files_lock:
            self._file = self._files.get(key)
            if self._file is None:
                self._file = self._files[key] = _LockFile(path)
            self._file.users += 1
        self._key = key
        self._closed = False

    def take(self, phone: str) -> int | None:
        slot = slot_of(phone)
        return slot if self._file.take(slot) else None

    async def wait(self, phone: str) -> int:
        slot = slot_of(phone)
        await poll(lambda: self._file.take(slot))
        return slot

    def release(self, slot: int) -> None:
        self._file.give(slot)

    def close(self) -> None:
        with self._files_lock:
            if self._closed:
                return
            self._closed = True
            self._file.users -= 1
            if not self._file.users:
                del self._files[self._key]
                self._file.close()


class _LockFile:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        self.held: dict[int, int] = {}  # slot -> how many times this process holds it
        self.users = 0
        self.closed = False
        self._lock = threading.Lock()  # hosts of several threads' event loops may share the file

    def close(self) -> None:
        """Every lock goes with the descriptor. A lead that still holds one (its write landed
        as the host closed) gives it back to nothing: ``give`` then does nothing, rather
        than unlock a byte of whatever file reuses the descriptor's number."""
        with self._lock:
            self.closed = True
            self.held.clear()
            os.close(self.fd)

    def take(self, slot: int) -> bool:
        with self._lock:
            if self.closed:
                raise StoreError("the store's phone locks are closed")
            n = self.held.get(slot)
            if n:
                self.held[slot] = n + 1
                return True
            try:
                fcntl.lockf(self.fd, _TRY_WRITE_LOCK, 1, slot)
            except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: another process holds it
                return False
            self.held[slot] = 1
            return True

    def give(self, slot: int) -> None:
        with self._lock:
            if self.closed:
                return
            n = self.held[slot] - 1
            if n:
                self.held[slot] = n
                return
            del self.held[slot]
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, slot)
