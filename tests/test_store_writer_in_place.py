"""An idle ``serve``'s commits (up to a few at once) and a batch job's
gathered batches are written in the event loop's own thread (no hand-over
to the writer thread and back); everything else still goes to the writer
thread. Real SQLite files; the thread that
wrote each transaction is recorded around the store's own ``apply_stored``
(the writer thread's way) and ``apply_now`` (the way in place)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dupcheck_plugin.store.contract import Store, in_place_applier
from dupcheck_plugin.store.sqlite import SqliteStore
from dupcheck_plugin.store.writer import IN_PLACE_MAX, StoreWriter
from dupcheck_plugin.testing import MemoryStore

from test_store import record


def _phone(i: int) -> str:
    return f"+1555123{i:04d}"


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "dupcheck.db")
    yield s
    s.close()


def _recording(store: SqliteStore) -> list[tuple[int, int]]:
    """(thread ident, commits) of each transaction ``store`` writes from now on,
    through ``apply_stored`` (the writer thread) or ``apply_now`` (in place)."""
    writes: list[tuple[int, int]] = []

    def recorded(write):
        def wrapper(commits):
            stored = write(commits)
            if stored is not None:
                writes.append((threading.get_ident(), len(commits)))
            return stored
        return wrapper

    # the instance's: the class still gives apply_now, so the writer uses it
    store.apply_stored = recorded(store.apply_stored)
    store.apply_now = recorded(store.apply_now)
    return writes


def test_an_idle_loop_s_lone_commit_is_written_in_its_own_thread(store):
    writes = _recording(store)
    writer = StoreWriter(store)

    async def one(i):
        return await writer.store_record(record("created", _phone(i)))

    stored = [asyncio.run(one(i)) for i in range(3)]
    writer.close()
    me = threading.get_ident()
    assert writes == [(me, 1)] * 3  # the loop ran in this thread: no writer-thread transaction
    for i, rec in enumerate(stored):  # each stored with its new lead, found by phone
        assert rec["lead_id"] is not None
        [lead] = store.find_leads(_phone(i))
        assert lead["id"] == rec["lead_id"]
        assert [d["lead_id"] for d in store.decisions(_phone(i))] == [rec["lead_id"]]


def _stored_together(writer: StoreWriter, n: int) -> list[str]:
    """The lead ids of ``n`` commits handed over in one loop iteration."""
    async def together():
        return await asyncio.gather(*(writer.store_record(record("created", _phone(i))) for i in range(n)))

    return [r["lead_id"] for r in asyncio.run(together())]


def test_a_few_commits_of_one_loop_iteration_are_written_in_place_together(store):
    # paced serve: two clients' requests in step finish in one loop iteration
    writes = _recording(store)
    writer = StoreWriter(store)
    assert _stored_together(writer, IN_PLACE_MAX) == [str(i + 1) for i in range(IN_PLACE_MAX)]
    writer.close()
    assert writes == [(threading.get_ident(), IN_PLACE_MAX)]  # one transaction, in this thread


def test_more_commits_of_one_loop_iteration_go_to_the_writer_thread(store):
    writes = _recording(store)
    writer = StoreWriter(store)
    n = IN_PLACE_MAX + 1
    assert _stored_together(writer, n) == [str(i + 1) for i in range(n)]
    writer.close()
    assert len(writes) == 1 and writes[0][1] == n and writes[0][0] != threading.get_ident()


def test_a_commit_meeting_a_write_under_way_is_queued_for_the_writer_thread(store):
    writes = _recording(store)
    writer = StoreWriter(store)

    async def go():
        writer._writing.acquire()  # the writer thread's write under way
        written = writer.store_record(record("created", _phone(1)))
        task = asyncio.ensure_future(written)
        await asyncio.sleep(0.05)  # handed over meanwhile: not written here, not answered yet
        assert not task.done() and writes == []
        writer._writing.release()
        return await asyncio.wait_for(task, 30)

    assert asyncio.run(go())["lead_id"] == "1"
    writer.close()
    assert len(writes) == 1 and writes[0][0] != threading.get_ident()


def test_a_batch_job_s_gathered_batch_is_written_in_place_whatever_its_size(store):
    """``run``'s batches (gathered, 32 or more commits) are written by the loop's thread too: the
    writer thread's every SQLite call waited for the GIL the busy loop held, which cost more CPU
    than the overlap saved. Before: each went to the writer thread."""
    writes = _recording(store)
    writer = StoreWriter(store)
    writer.gather(64)  # `run` with 64 leads in flight: batches of up to 32, or what 10 ms gathers

    async def many(n):
        return await asyncio.gather(*(writer.store_record(record("created", _phone(i))) for i in range(n)))

    stored = asyncio.run(many(40))
    writer.close()
    me = threading.get_ident()
    assert {ident for ident, _ in writes} == {me} and sum(n for _, n in writes) == 40
    assert max(n for _, n in writes) > IN_PLACE_MAX  # a batch, not a serve's few
    assert sorted(int(r["lead_id"]) for r in stored) == list(range(1, 41))


def test_a_batch_job_s_batch_meeting_a_write_under_way_goes_to_the_thread(store):
    writes = _recording(store)
    writer = StoreWriter(store)
    writer.gather(1)

    async def go():
        writer._writing.acquire()  # another loop's write in place, say
        task = asyncio.ensure_future(writer.store_record(record("created", _phone(1))))
        await asyncio.sleep(0.05)
        assert not task.done() and writes == []
        writer._writing.release()
        return await asyncio.wait_for(task, 30)

    assert asyncio.run(go())["lead_id"] == "1"
    writer.close()
    assert len(writes) == 1 and writes[0][0] != threading.get_ident()


def test_a_commit_meeting_another_writer_s_lock_does_not_stop_the_loop(store, tmp_path):
    """Another process's transaction (or a RESTART checkpoint) holds the file's write lock:
    the loop does not wait for it (the busy timeout is 5 s); the writer thread does."""
    import sqlite3

    writes = _recording(store)
    writer = StoreWriter(store)
    other = sqlite3.connect(tmp_path / "dupcheck.db", isolation_level=None)

    async def go():
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        task = asyncio.ensure_future(writer.store_record(record("created", _phone(1))))
        started = time.monotonic()
        await asyncio.sleep(0.3)  # the loop runs meanwhile: this sleep ends on time
        on_time = time.monotonic() - started < 1.0
        waiting = not task.done()
        other.execute("COMMIT")
        return on_time, waiting, await asyncio.wait_for(task, 30)

    try:
        on_time, waiting, stored = asyncio.run(go())
    finally:
        other.close()
    writer.close()
    assert on_time and waiting and stored["lead_id"] == "1"
    assert len(writes) == 1 and writes[0][0] != threading.get_ident()
    assert [lead["id"] for lead in store.find_leads(_phone(1))] == ["1"]
    # this thread's connection (the loop's) waits for a lock again for anything else it does
    assert store._conn().execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_closing_the_writer_waits_for_a_write_in_place(store):
    began = threading.Event()
    apply_now = store.apply_now

    def slow(commits):  # the loop's write in place, long enough for close() to come meanwhile
        began.set()
        time.sleep(0.3)
        return apply_now(commits)

    store.apply_now = slow
    writer = StoreWriter(store)
    seen: dict[str, bool] = {}

    def close_meanwhile():
        assert began.wait(30)
        writer.close()
        seen["stored when close returned"] = bool(store.find_leads(_phone(1)))

    closer = threading.Thread(target=close_meanwhile)
    closer.start()

    async def one():
        return await writer.store_record(record("created", _phone(1)))

    assert asyncio.run(one())["lead_id"] == "1"
    closer.join(30)
    assert seen == {"stored when close returned": True}


class _WrapsApply(SqliteStore):
    def apply(self, commits):  # a plugin's store: each batch goes somewhere else too
        return super().apply(commits)


class _WrapsApplyStored(SqliteStore):
    def apply_stored(self, commits):
        return super().apply_stored(commits)


class _SaysNothingNew(SqliteStore):
    pass


def test_only_a_store_whose_own_writes_are_quick_is_written_in_place(tmp_path):
    for cls, quick in ((SqliteStore, True), (_SaysNothingNew, True), (_WrapsApply, False),
                       (_WrapsApplyStored, False)):
        s = cls(tmp_path / f"{cls.__name__}.db")
        try:
            assert (in_place_applier(s) is not None) is quick, cls.__name__
        finally:
            s.close()
    assert in_place_applier(MemoryStore()) is None  # the contract's default: never
    from dupcheck_plugin.store.postgres import PostgresStore

    assert "apply_now" not in vars(PostgresStore) and PostgresStore.apply_now is Store.apply_now


def test_a_wrapped_store_s_lone_commit_goes_through_its_wrapper_on_the_writer_thread(tmp_path):
    s = _WrapsApply(tmp_path / "wrapped.db")
    threads: list[int] = []
    apply = s.apply

    def recorded(commits):
        threads.append(threading.get_ident())
        return apply(commits)

    s.apply = recorded
    writer = StoreWriter(s)

    async def one():
        return await writer.store_record(record("created", _phone(1)))

    assert asyncio.run(one())["lead_id"] == "1"
    writer.close()
    s.close()
    assert len(threads) == 1 and threads[0] != threading.get_ident()
