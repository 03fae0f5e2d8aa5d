"""WAL checkpoints in their own thread (not in the writer's commit): what
was committed reaches the database file itself, not only the WAL, without
closing the store."""

from __future__ import annotations

import shutil
import sqlite3

from dupcheck_plugin.store.sqlite import SqliteStore
from test_store import OTHER, PHONE, record


def rows_in_file_alone(path, tmp_path) -> int:
    """Decisions in the database file read without its WAL (a copy of the file only)."""
    copy = tmp_path / "file-alone.db"
    shutil.copyfile(path, copy)
    conn = sqlite3.connect(copy)
    try:
        return conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    finally:
        conn.close()


def test_commits_reach_the_database_file_while_the_store_is_open(tmp_path):
    path = tmp_path / "d.db"
    store = SqliteStore(path)
    try:
        store.apply([record("created"), record("duplicate", OTHER, rules_row=2)])
        assert store.checkpointer.wait_checkpointed(timeout=60)
        assert rows_in_file_alone(path, tmp_path) == 2
        store.apply([record("created", PHONE, list_id="200")])
        assert store.checkpointer.wait_checkpointed(timeout=60)
        assert rows_in_file_alone(path, tmp_path) == 3
    finally:
        store.close()


def test_close_stops_the_checkpoint_thread_and_keeps_everything(tmp_path):
    path = tmp_path / "d.db"
    store = SqliteStore(path)
    store.apply([record("created")])
    store.close()
    assert store.checkpointer.wait_checkpointed(timeout=0)  # stopped: nothing left to wait for
    with SqliteStore(path) as again:
        assert again.counts()["decisions"] == 1


def test_a_wal_past_its_bound_starts_over(tmp_path):
    """Commits beside a running checkpoint can keep the WAL from starting over;
    past the bound the checkpoint copies all of it and the next commit writes
    it from its beginning: the file does not grow (here a bound of one byte)."""
    from dupcheck_plugin.store.checkpoint import Checkpointer

    path = tmp_path / "d.db"
    store = SqliteStore(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # used in the thread
    try:
        store.apply([record("created"), record("created", OTHER)])
        wal = tmp_path / "d.db-wal"
        assert wal.stat().st_size > 0
        assert store.checkpointer.wait_checkpointed(timeout=60)  # one checkpointer at a time: the other gets busy
        bounded = Checkpointer(lambda: conn, wal, pause_s=0, wal_bound_bytes=1)
        bounded.wrote()
        assert bounded.wait_checkpointed(timeout=60)
        bounded.close()
        assert rows_in_file_alone(path, tmp_path) == 2
        size = wal.stat().st_size
        store.apply([record("created", PHONE, list_id="200")])  # fewer pages than the first commit wrote
        assert wal.stat().st_size == size
    finally:
        conn.close()
        store.close()


def test_a_failure_after_the_commit_neither_undoes_nor_repeats_it(tmp_path, caplog):
    """Once COMMIT is through, the batch is stored: a checkpoint that cannot be scheduled
    (no thread to start) is logged, not raised (the writer would store the batch again)."""
    import asyncio

    from dupcheck_plugin.store.writer import StoreWriter

    store = SqliteStore(tmp_path / "d.db")

    def no_thread():
        raise RuntimeError("can't start new thread")

    store.checkpointer.wrote = no_thread
    writer = StoreWriter(store)

    async def one():
        return await writer.store_record(record("created"))

    try:
        assert asyncio.run(one())["lead_id"] == "1"
        writer.close()
        assert store.counts()["decisions"] == 1 and [lead["id"] for lead in store.find_leads(PHONE)] == ["1"]
        assert "WAL checkpoint not scheduled: can't start new thread" in caplog.text
    finally:
        store.close()
