"""SQLite WAL checkpoints in a thread of their own, off the commit path.

SQLite's automatic checkpoint runs inside the commit that takes the WAL past
1,000 pages: that commit copies the WAL into the database file and fsyncs
both, in the store writer's thread, and every lead queued behind it waits for
its answer meanwhile (10-40 ms per checkpoint on a shared VM's disk; an fsync
alone takes 4-10 ms there). ``bench_serve``'s paced run showed it as the
largest part of the p99 serve adds. Here the store's connections do not
checkpoint (``wal_autocheckpoint=0``); this thread does, shortly after
commits, as a PASSIVE checkpoint: it never blocks a writer or a reader.

Durability is what it was: a decision is answered once its transaction is
committed to the WAL (``synchronous=NORMAL``), and it survives a power loss
from the next checkpoint on, now within about :data:`PAUSE_S` of the commit
instead of at the 1,000th page.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Callable

log = logging.getLogger(__name__)

PAUSE_S = 1.0  # at most one checkpoint a second: each costs two fsyncs, and a commit meeting one may wait for it


class Checkpointer:
    """Checkpoints the WAL after :meth:`wrote`; started on the first write."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], pause_s: float = PAUSE_S):
        self._connect = connect  # called in the checkpoint thread: the store's connection for that thread
        self._pause_s = pause_s
        self._cond = threading.Condition()
        self._dirty = False  # commits since the last checkpoint began
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def wrote(self) -> None:
        """A transaction was committed: checkpoint soon."""
        with self._cond:
            if self._stopping:
                return
            self._dirty = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dupcheck-sqlite-checkpoint", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait_checkpointed(self, timeout: float | None = None) -> bool:
        """Wait until every commit reported so far has been through a
        checkpoint; False if ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._dirty or self._busy) or self._stopping, timeout)

    def close(self) -> None:
        """Stop the thread (closing the store's connections then checkpoints what is left)."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        conn = None
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._dirty or self._stopping)
                if self._stopping:
                    self._cond.notify_all()
                    return
                self._dirty, self._busy = False, True
            try:
                conn = conn or self._connect()
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except Exception as exc:  # noqa: BLE001 - the next commit tries again; the commits are safe in the WAL
                log.warning("WAL checkpoint failed: %s", exc)
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._stopping, self._pause_s)  # commits meanwhile wait for the next one
