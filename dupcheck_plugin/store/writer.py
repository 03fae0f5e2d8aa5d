"""One writer thread, batched: many leads in flight, one transaction per batch.

A commit per row costs far more than ~7 us per row batched, so callers
hand commits over and await a future; the writer drains whatever is queued
into one ``store.apply`` (group commit). The hand-over is batched too: the
commits of one event-loop iteration go to the thread as one list, and the
thread answers each loop once per batch (one wake-up of the loop, not one
per row). A batch that fails is retried row by row so one bad record cannot
take its neighbours down with it; not one whose outcome the store cannot
learn (:class:`StoreOutcomeUnknown`: it may have landed), which fails whole.

A batch job may also let a small batch wait a moment for more commits
(:meth:`StoreWriter.gather`): at a CRM's pace the leads finish a few at a
time, and a transaction has a cost of its own whatever it carries (about
0.3 ms of CPU: its locks, and the WAL frames of each table's and index's last
page, rewritten by every commit), so one of one or two leads costs several
times as much per lead as one of twenty. The commits wait in the event loop,
which hands them over when the batch is big enough or its wait is over (one
timer a batch): the writer thread is woken once a batch, not once for every
loop iteration's few commits. An interactive caller (``serve``) leaves it
off: its answer waits for the commit.

An idle ``serve`` stores its inserts where they are: when the hand-over is
a few commits (:data:`IN_PLACE_MAX`), nothing is queued or being written,
and the store can write them at once (:meth:`Store.apply_now`: SQLite's
file when no other writer holds its lock; never a network database), the
event loop's thread writes them. The thread hand-over and the way back
each wake a thread on an idle core (a paced ``serve``'s commit took 0.53 ms
p50, 1.5 ms p99 from hand-over to answer, its write 0.35 ms of it); written
in place, nothing is woken. A batch job's gathered batches are written in
place too (up to ``max_batch`` commits): the thread's write overlapped the
loop's work only while SQLite ran without the GIL, and each statement's
return waited for the GIL the busy loop held (a forced switch: a futex and
two context switches), which cost more CPU than the overlap saved. ``run``'s
CPU a lead, A/B x5 against the thread: 0.90x and 0.92x at 0 ms and 64 in
flight, 0.86x at 0 ms and 256, 0.93-0.97x at 50 ms and 256 (its rate 1-11%
higher); but 1.03-1.07x at 50 ms and 64, where the loop idles between the
CRM's answers and the thread wrote beside it uncontended. A busy ``serve``'s
hand-overs (9 or more) still go to the thread: its loop answers other
callers meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .contract import Commit, Store, StoredRecord, StoreOutcomeUnknown, applier, in_place_applier

if TYPE_CHECKING:
    from ..types import DecisionRecord

log = logging.getLogger(__name__)

_STOP = object()
# what a small batch waits at most, and the commits that make a batch big enough not to wait.
# At 50 ms a CRM answer and 64 leads in flight (~1,100 leads/s), 3 ms and 8 gathered ~10 commits a
# transaction; 10 ms and 32 gather ~22: the SQLite writer's CPU 931-1,132 -> 836-889 ms over 20,000
# leads (whole processes read 0.89x-1.0x the CPU a lead in A/Bs on a loaded machine), for ~9% of the
# rate at that setting (each lead holds its place in flight up to 10 ms longer, against a 50 ms round
# trip). At 0 ms batches fill without waiting. The loop gathers (not the writer thread, woken by each
# hand-over to wait again): at 50 ms/64 0.93-0.94x the CPU a lead in three A/Bs (x5, 20,000 leads), the rate +1-2%.
GATHER_WAIT_S = 0.010
GATHER_UPTO = 32
# the most commits an idle loop writes in place. Paced serve's requests often finish in pairs (two
# clients' schedules in step: the CRM answers both in one loop iteration); a pair sent to the thread
# paid both wake-ups (250 of 560 hand-overs in two of three runs). A busy serve hands over 9 or more.
IN_PLACE_MAX = 4


class _Write(asyncio.Future):
    """The future of one handed-over commit. It cannot be cancelled: the write
    happens whatever its caller does, so a caller cancelled meanwhile is
    woken once it is done (then raises CancelledError), never before: a
    lead's phone lock is released only once the lead is stored. (What
    ``asyncio.shield`` gave, without its second future and loop hop.)"""

    def cancel(self, msg: Any = None) -> bool:
        return False


class StoreWriter:
    def __init__(self, store: Store, max_batch: int = 512):
        self.store = store
        self._apply = applier(store)  # the records' JSON text too, where the store gives it
        self.max_batch = max_batch
        self._q: queue.SimpleQueue = queue.SimpleQueue()  # lists of (commit, future, loop), or _STOP
        # per event loop, the commits of its current iteration (a writer may serve loops of several threads)
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[Commit, asyncio.Future, Any]]] = {}
        self._pending_lock = threading.Lock()
        self._gathering: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}  # a loop's wait for more
        self._now = in_place_applier(store)  # None: every batch goes to the thread
        self._writing = threading.Lock()  # held by whoever writes: the thread, or a loop writing in place
        self._thread = threading.Thread(target=self._loop, name="dupcheck-store-writer", daemon=True)
        self._thread.start()
        self._closed = False
        self._gather_upto = 0  # a loop's commits wait up to GATHER_WAIT_S for this many (0: never)

    def gather(self, in_flight: int) -> int:
        """Let a batch of fewer than ``min(in_flight, GATHER_UPTO)`` commits wait
        up to ``GATHER_WAIT_S`` for more before it is written: for a batch job
        with ``in_flight`` leads at once (0 turns it off; a job of one lead at a
        time would only wait). Each lead's commit may take that much longer.
        Returns the previous setting."""
        previous, self._gather_upto = self._gather_upto, min(max(in_flight, 0), GATHER_UPTO)
        return previous

    async def submit(self, commit: Commit) -> str | None:
        """Store one commit; returns its new lead id (or None) once committed."""
        return (await self.enqueue(commit))["lead_id"]

    async def store_record(self, commit: Commit) -> DecisionRecord:
        """Store one commit; returns the record as stored: ``lead_id`` set, and
        ``dnc_added`` false when the phone was on the DNC list already."""
        return await self.enqueue(commit)

    def enqueue(self, commit: Commit) -> asyncio.Future:
        """Hand one commit over (no task, no thread wake-up of its own); the
        future gets the record as stored (see :meth:`store_record`). Call from
        a running event loop; the commits of one loop iteration reach the
        writer thread together."""
        loop = asyncio.get_running_loop()
        fut = _Write(loop=loop)
        with self._pending_lock:
            # tested under the lock close() takes: a commit is either in close()'s last batch
            # or refused here, never queued behind the writer's stop (and never answered)
            if self._closed:
                raise RuntimeError("store writer is closed")
            pending = self._pending.get(loop)
            upto = self._gather_upto
            if pending is None:
                pending = self._pending[loop] = []
                if upto:  # handed over when enough have come, or at the latest after the wait
                    self._gathering[loop] = loop.call_later(GATHER_WAIT_S, self._hand_over, loop)
                else:  # at the end of this loop iteration
                    loop.call_soon(self._hand_over, loop)
            pending.append((commit, fut, loop))
            if upto and len(pending) == upto:  # enough: with the rest of this iteration's commits
                loop.call_soon(self._hand_over, loop)
        return fut

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        here = False
        with self._pending_lock:
            batch = self._pending.pop(loop, None)
            waiting = self._gathering.pop(loop, None)
            if batch:
                # under the lock close() takes: a batch is queued before close()'s stop, or written here
                here = self._in_place(batch)
                if not here:
                    self._q.put(batch)
        if waiting is not None:  # handed over before its wait was over (in the loop's thread, as timers are)
            waiting.cancel()
        if here:
            try:
                outcomes = self._write_now(batch)
                if outcomes is None:  # it would have to wait: the thread writes it, waiting as it may
                    with self._pending_lock:
                        closing = self._closed
                        if not closing:
                            self._q.put(batch)
                    if closing:  # close()'s stop is queued already; it waits for this write
                        outcomes = self._write(batch)
            finally:
                self._writing.release()
            if outcomes is not None:
                _resolve([(fut, stored, exc) for fut, _, stored, exc in outcomes])

    def _in_place(self, batch: list) -> bool:
        """Whether this loop's thread writes ``batch`` itself (then it holds the write lock):
        a batch job's gathered batch, or a few commits (:data:`IN_PLACE_MAX`) of an interactive
        caller; no other write queued or under way, a store that can write at once."""
        size = len(batch)
        return ((size <= self.max_batch if self._gather_upto else size <= IN_PLACE_MAX) and self._now is not None
                and self._q.empty()
                and self._writing.acquire(blocking=False))

    def _dnc_once(self, commits: list[Commit]) -> list[Commit]:
        """A DNC entry is added once per phone and campaign: a commit whose entry
        is there already (stored, or earlier in this batch) adds none and says so
        (``dnc_added`` false). One writer thread per store: no two batches race."""
        seen: set[tuple[str, str]] = set()
        out = []
        for commit in commits:
            if commit.dnc is not None:
                key = (commit.dnc.phone_e164, str(commit.dnc.campaign_id))
                if key in seen or self.store.dnc_contains(*key):
                    commit = replace(commit, dnc=None, record={**commit.record, "dnc_added": False})
                seen.add(key)
            out.append(commit)
        return out

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item is _STOP:
                return
            batch = item  # the thread's own list now: drained lists join it
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.extend(nxt)
            for start in range(0, len(batch), self.max_batch):
                with self._writing:
                    outcomes = self._write(batch[start:start + self.max_batch])
                _answer(outcomes)
            if stop:
                return

    def _write_now(self, batch: list) -> list | None:
        """:meth:`_write` through the store's ``apply_now``; None when nothing was written (the
        store would have to wait, or failed: the thread writes it, and isolates and reports a failure)."""
        try:
            commits = self._dnc_once([commit for commit, _, _ in batch])
            stored = self._now(commits)  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - written (or refused, and said why) by the thread
            return None
        return None if stored is None else _outcomes(commits, batch, stored)

    def _write(self, batch: list) -> list[tuple[asyncio.Future, Any, StoredRecord | None, BaseException | None]]:
        """Store ``batch`` (the caller holds the write lock); each commit's (future, loop, stored, error)."""
        try:
            commits = self._dnc_once([commit for commit, _, _ in batch])
        except Exception as exc:  # noqa: BLE001 - the store cannot be read: nothing is written
            log.error("store read failed: %s", exc)
            return [(fut, loop, None, exc) for _, fut, loop in batch]
        try:
            outcomes = _outcomes(commits, batch, self._apply(commits))
        except StoreOutcomeUnknown as exc:  # the batch may have landed: written again, it could land twice
            log.error("store write of %d commits: %s", len(batch), exc)
            return [(fut, loop, None, exc) for _, fut, loop in batch]
        except Exception:
            outcomes = []
            failed: dict[str, int] = {}  # one log line per distinct error, not one per commit (a full disk)
            for commit, (_, fut, loop) in zip(commits, batch):  # isolate the bad commit(s)
                try:
                    [one] = self._apply([commit])
                    outcomes.append((fut, loop, StoredRecord.of(commit.record, one), None))
                except Exception as exc:  # noqa: BLE001 - reported to the awaiting caller
                    failed[str(exc)] = failed.get(str(exc), 0) + 1
                    outcomes.append((fut, loop, None, exc))
            for message, n in failed.items():
                log.error("store write failed (%d of %d commits): %s", n, len(batch), message)
        return outcomes

    def close(self) -> None:
        """Finish every queued write (also commits handed over in a loop
        iteration that never ended), then stop the thread."""
        with self._pending_lock:
            if self._closed:
                return
            self._closed = True
            left, self._pending = list(self._pending.values()), {}
            for batch in left:
                self._q.put(batch)
            self._q.put(_STOP)
        self._thread.join()
        with self._writing:  # a loop's write in place finishes before the store may close
            pass


def _outcomes(commits: list[Commit], batch: list, stored: list) -> list:
    """(future, loop, the record as stored, None) of each commit of a written batch."""
    return [(fut, loop, StoredRecord.of(commit.record, one), None)
            for commit, (_, fut, loop), one in zip(commits, batch, stored)]


def _answer(outcomes: list) -> None:
    """Wake each event loop once for its share of a batch."""
    by_loop: dict[Any, list] = {}
    for fut, loop, stored, exc in outcomes:
        by_loop.setdefault(loop, []).append((fut, stored, exc))
    for loop, results in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, results)
        except RuntimeError:  # the loop is closed: no one awaits these outcomes any more
            pass


def _resolve(results: list[tuple[asyncio.Future, dict[str, Any] | None, BaseException | None]]) -> None:
    for fut, stored, exc in results:
        if fut.cancelled():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(stored)
