"""SQLite WAL checkpoints in a thread of their own, off the commit path.

SQLite's automatic checkpoint runs inside the commit that takes the WAL past
1,000 pages: that commit copies the WAL into the database file and fsyncs
both, in the store writer's thread, and every lead queued behind it waits for
its answer meanwhile (10-40 ms per checkpoint on a shared VM's disk; an fsync
alone takes 4-10 ms there). ``bench_serve``'s paced run showed it as the
largest part of the p99 serve adds. Here the store's connections do not
checkpoint (``wal_autocheckpoint=0``); this thread does, shortly after
commits, as a PASSIVE checkpoint: it never blocks a writer or a reader.

A PASSIVE checkpoint running beside the writer's commits seldom leaves the
WAL fully copied at a moment no commit follows, and only then does the next
commit start the WAL from its beginning again: under a steady stream of
commits the file grows. When it passes :data:`WAL_BOUND_BYTES` the thread
checkpoints in RESTART mode instead, which waits for the writer's current
transaction and holds the next one back while it copies (the stall the
automatic checkpoint made at every 1,000 pages, now once per 64 MiB of WAL);
the next commit then writes the WAL from its beginning again. RESTART, not
TRUNCATE: the file keeps its size, so those commits overwrite pages the
kernel has cached and blocks the file system has allocated, rather than
growing an emptied file page by page, and no truncation drops the file's
cached pages (``dupcheck run`` writes ~13 KB of WAL a lead: the file passed
the bound about once a second, and truncating it cost ~2 us of CPU a lead).

Durability is what it was: a decision is answered once its transaction is
committed to the WAL (``synchronous=NORMAL``), and it survives a power loss
from the next checkpoint on, now within about :data:`PAUSE_S` of the commit
instead of at the 1,000th page.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from typing import Callable

log = logging.getLogger(__name__)

WAL_BOUND_BYTES = 64 << 20
PAUSE_S = 1.0  # at most one checkpoint a second: each costs two fsyncs, and a commit meeting one may wait for it


class Checkpointer:
    """Checkpoints the WAL after :meth:`wrote`; started on the first write."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], wal_path: str | os.PathLike,
                 pause_s: float = PAUSE_S, wal_bound_bytes: int = WAL_BOUND_BYTES):
        self._connect = connect  # called in the checkpoint thread: the store's connection for that thread
        self._wal_path = wal_path
        self._pause_s = pause_s
        self._wal_bound_bytes = wal_bound_bytes
        # set by the first commit after a checkpoint began; the commits after it only read it (a
        # commit must not wake the thread: a notify per commit cost the writer ~50 us per batch)
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Condition()  # notified after each checkpoint (wait_checkpointed)
        self._busy = False
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None

    def wrote(self) -> None:
        """A transaction was committed: checkpoint soon."""
        if not self._dirty.is_set():
            self._dirty.set()
        if self._thread is None:
            with self._start:
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(target=self._run, name="dupcheck-sqlite-checkpoint",
                                                    daemon=True)
                    self._thread.start()

    def wait_checkpointed(self, timeout: float | None = None) -> bool:
        """Wait until every commit reported so far has been through a
        checkpoint (or the thread stopped); False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(
                lambda: not (self._dirty.is_set() or self._busy) or self._stopping.is_set(), timeout)

    def close(self) -> None:
        """Stop the thread (closing the store's connections then checkpoints what is left)."""
        with self._start:
            self._stopping.set()
            thread = self._thread
        self._dirty.set()  # wakes the thread to see it stop
        if thread is not None:
            thread.join()
        with self._idle:
            self._idle.notify_all()

    def _mode(self) -> str:
        try:
            big = os.path.getsize(self._wal_path) > self._wal_bound_bytes
        except OSError:  # no WAL file (yet): nothing to bound
            big = False
        return "RESTART" if big else "PASSIVE"

    def _run(self) -> None:
        conn = None
        while True:
            self._dirty.wait()
            if self._stopping.is_set():
                return
            with self._idle:
                self._dirty.clear()  # a commit from now on asks for the next checkpoint
                self._busy = True
            try:
                conn = conn or self._connect()
                conn.execute(f"PRAGMA wal_checkpoint({self._mode()})").fetchall()
            except Exception as exc:  # noqa: BLE001 - the next commit tries again; the commits are safe in the WAL
                log.warning("WAL checkpoint failed: %s", exc)
            with self._idle:
                self._busy = False
                self._idle.notify_all()
            if self._stopping.wait(self._pause_s):  # commits meanwhile wait for the next checkpoint
                return
