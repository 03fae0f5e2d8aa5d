"""The embedded SQLite store, on a real file. Records go through the
engine's :func:`plan_commit`, as the host stores them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace

import pytest

from dupcheck_plugin.host import Commit, DncEntry, plan_commit, row_label, upgrade_record
from dupcheck_plugin.store.sqlite import SCHEMA_VERSION, SqliteStore, StoreError

PHONE = "+15551230001"
OTHER = "+15551230002"


def record(action: str, phone: str | None = PHONE, *, dnc: bool = False, rules_row: int | None = None,
           key: str | None = None, **lead: str) -> Commit:
    lead = {"phone_number": phone[2:] if phone else "nope", "phone_code": "1", "list_id": "100",
            "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", **lead}
    rec = {
        "lead": lead, "phone_e164": phone, "rules_row": rules_row, "action": action,
        "decided_by": "default_status" if rules_row is None else "rules_row",
        "status": "NEW" if action == "created" else None, "dnc_added": dnc,
        "success": action == "created", "code": 200 if action == "created" else 409,
        "text": action, "crm": {"status_code": 200}, "request": None,
        "decided_at": "2025-01-02T03:04:05.000+00:00", "workflow": "default",
    }
    if rules_row is not None:
        rec["rules_row_name"] = f"name-{rules_row}"
    if key is not None:
        rec["idempotency_key"] = key
    return plan_commit(rec)


def open_store(kind: str, request, tmp_path):
    if kind == "memory":  # the contract and nothing more: what a plugin's store starts from
        from dupcheck_plugin.testing import MemoryStore

        return MemoryStore()
    if kind == "sqlite":
        return SqliteStore(tmp_path / "dupcheck.db")
    from dupcheck_plugin.store.postgres import PostgresStore

    return PostgresStore(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def store(request, tmp_path):
    s = open_store(request.param, request, tmp_path)
    yield s
    s.close()


def test_batch_lands_with_lead_ids(store):
    batch = [record("created"), record("duplicate", rules_row=2), record("rejected", None),
             record("created", OTHER, list_id="200")]
    assert store.apply(batch) == ["1", None, None, "2"]
    assert store.counts() == {"leads": 2, "dnc": 0, "decisions": 4}
    [lead] = store.find_leads(PHONE)
    assert lead["id"] == "1"
    assert (lead["phone_e164"], lead["phone_number"], lead["list_id"], lead["status"]) == (PHONE, "5551230001", "100", "NEW")
    assert lead["fields"]["email"] == "ada@example.com"
    assert store.lead_by_id("2")["phone_e164"] == OTHER
    assert store.lead_by_id("99") is None and store.lead_by_id("x") is None
    assert store.find_leads(OTHER, list_id="100") == []
    assert [l["id"] for l in store.find_leads(OTHER, list_id="200")] == ["2"]


def test_a_batch_of_many_commits_lands_in_order(store):
    # 100 commits: SQLite writes them as INSERTs of 64, 32 and 4 rows (insert_rows)
    phones = [f"+1555300{i:04d}" for i in range(100)]
    batch = [record("created", p) if i % 3 else record("duplicate", p, rules_row=1) for i, p in enumerate(phones)]
    ids = store.apply(batch)
    created = iter(range(1, 101))
    assert ids == [str(next(created)) if i % 3 else None for i in range(100)]
    assert store.counts() == {"leads": 66, "dnc": 0, "decisions": 100}
    for i, phone in enumerate(phones):
        [decision] = store.decisions(phone)
        assert decision["lead_id"] == ids[i]
        assert [lead["id"] for lead in store.find_leads(phone)] == ([ids[i]] if ids[i] else [])


def test_insert_rows_keeps_order_across_chunks(tmp_path):
    from dupcheck_plugin.store.sqlite import MULTI_ROW_MAX, insert_rows

    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("CREATE TABLE t (n INTEGER, text TEXT)")
    for n in (1, 2, 3, MULTI_ROW_MAX - 1, MULTI_ROW_MAX, MULTI_ROW_MAX + 1, 2 * MULTI_ROW_MAX + 37):
        conn.execute("DELETE FROM t")
        rows = [(i, None if i % 5 == 0 else f"row {i}") for i in range(n)]
        insert_rows(conn, "INSERT INTO t (n, text) VALUES", rows)
        assert conn.execute("SELECT n, text FROM t ORDER BY rowid").fetchall() == rows
    conn.close()


def test_find_leads_newest_first(store):
    store.apply([record("created")])
    store.apply([record("created", list_id="200")])
    assert [l["id"] for l in store.find_leads(PHONE)] == ["2", "1"]


def test_dnc_entry_unique_per_phone(store):
    store.apply([record("duplicate", dnc=True, rules_row=3)])
    store.apply([record("duplicate", dnc=True, rules_row=4), record("created", OTHER)])

    assert store.counts() == {"leads": 1, "dnc": 1, "decisions": 3}
    assert store.dnc_contains(PHONE)
    assert not store.dnc_contains(OTHER)
    assert not store.dnc_contains(PHONE, campaign_id="7")
    total, [entry] = store.dnc_search(PHONE, None, 0, 10)
    assert total == 1
    # the first decision's reason stays: the second add was ignored
    assert entry["reason"] == "row 3 (name-3)"
    assert (entry["phone_number"], entry["phone_code"], entry["campaign_id"]) == ("5551230001", "1", "0")


def test_dnc_reason_falls_back_to_the_row_number(store):
    rec = record("duplicate", dnc=True, rules_row=5)
    store.apply([plan_commit({**rec.record, "rules_row_name": None})])
    assert store.dnc_search(PHONE, "0", 0, 10)[1][0]["reason"] == "row 5"


def test_dnc_add_and_search(store):
    assert store.dnc_add(DncEntry(PHONE, "5551230001", "1", "0", "manual")) == (1, True)
    assert store.dnc_add(DncEntry(PHONE, "5551230001", "1", "0", "again")) == (1, False)
    assert store.dnc_add(DncEntry(PHONE, "5551230001", "1", "7", "campaign")) == (2, True)
    assert store.dnc_add(DncEntry("+442071838750", "2071838750", "44", "0", "uk")) == (3, True)

    total, entries = store.dnc_search(None, None, 0, 2)
    assert total == 3
    assert [e["id"] for e in entries] == [3, 2]  # newest first
    assert entries[0] == {"id": 3, "phone_number": "2071838750", "phone_code": "44",
                          "phone_e164": "+442071838750", "campaign_id": "0", "reason": "uk",
                          "inserted_at": entries[0]["inserted_at"]}
    assert entries[0]["inserted_at"].startswith("20")
    total, entries = store.dnc_search(None, None, 2, 10)
    assert (total, [e["id"] for e in entries]) == (3, [1])
    total, entries = store.dnc_search(PHONE, "7", 0, 10)
    assert (total, [e["reason"] for e in entries]) == (1, ["campaign"])
    assert store.dnc_search(OTHER, None, 0, 10) == (0, [])


def test_failed_batch_leaves_nothing(store):
    store.apply([record("created", OTHER)])
    bad = record("created", OTHER, dnc=True, rules_row=1)
    bad.record["lead"]["junk"] = object()  # not JSON: fails after the lead row's insert began
    batch = [record("created", dnc=True, rules_row=1), record("duplicate", dnc=True, rules_row=2), bad]

    with pytest.raises(TypeError):
        store.apply(batch)

    assert store.counts() == {"leads": 1, "dnc": 0, "decisions": 1}
    assert store.find_leads(PHONE) == []
    assert not store.dnc_contains(PHONE)
    assert store.decisions(PHONE) == []
    # the store is usable after the rollback
    store.apply([record("created")])
    assert store.counts() == {"leads": 2, "dnc": 0, "decisions": 2}


def test_durable_across_reopen(tmp_path):
    path = tmp_path / "d.db"
    with SqliteStore(path) as s:
        s.apply([record("created", dnc=True, rules_row=1)])
    with SqliteStore(path) as s:
        assert s.counts() == {"leads": 1, "dnc": 1, "decisions": 1}
        assert s.decisions(PHONE)[0]["lead_id"] == "1"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_what_a_lead_lacks_is_stored_as_null(tmp_path):
    # None is bound through the adapter the store registers for it: still SQL NULL, never a text
    path = tmp_path / "n.db"
    with SqliteStore(path) as s:
        s.apply([record("created", list_id=None, email=None), record("duplicate", rules_row=0)])
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT typeof(list_id), typeof(email), list_id IS NULL FROM leads").fetchall() == [
            ("null", "null", 1)]
        assert conn.execute("SELECT typeof(idempotency_key), typeof(lead_id) FROM decisions ORDER BY id").fetchall() \
            == [("null", "integer"), ("null", "null")]
    finally:
        conn.close()


def test_a_none_adapter_the_program_registered_is_kept():
    # the store's adapter for None is process-wide state: importing the store must not replace a program's own
    code = ("import sqlite3; mine = lambda value: 'none'; sqlite3.register_adapter(type(None), mine); "
            "import dupcheck_plugin.store.sqlite; "
            "assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)] is mine; "
            "assert sqlite3.connect(':memory:').execute('SELECT ?', (None,)).fetchone() == ('none',)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_wal_mode(tmp_path):
    SqliteStore(tmp_path / "w.db").close()
    conn = sqlite3.connect(tmp_path / "w.db")  # WAL is a property of the file: any connection sees it
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_decisions_oldest_first_with_lead_id(store):
    store.apply([record("created"), record("duplicate", rules_row=2)])
    store.apply([record("rejected")])
    got = store.decisions(PHONE)
    assert [d["action"] for d in got] == ["created", "duplicate", "rejected"]
    assert [d["lead_id"] for d in got] == ["1", None, None]
    assert got[0]["lead"]["first_name"] == "Ada" and got[0]["crm"] == {"status_code": 200}
    assert store.decisions(OTHER) == []


def test_idempotency_key(store):
    store.apply([record("created", key="k-1"), record("duplicate", rules_row=1)])
    assert store.decision_by_idempotency_key("k-1")["lead_id"] == "1"
    assert store.decision_by_idempotency_key("k-2") is None
    with pytest.raises(StoreError, match="idempotency key"):
        store.apply([record("created", OTHER), record("created", key="k-1")])
    assert store.counts() == {"leads": 1, "dnc": 0, "decisions": 2}


def changed(commit: Commit, **fields) -> Commit:
    return plan_commit({**commit.record, **fields})


def test_row_of_a_file_decided_once(store):
    first = changed(record("created"), source="/leads.csv", source_row=7)
    store.apply([first])
    again = changed(record("created", OTHER), source="/leads.csv", source_row=7)
    with pytest.raises(StoreError, match="already decided"):
        store.apply([record("duplicate", rules_row=1), again])
    # another workflow, another file or no row at all: stored
    store.apply([changed(again, workflow="other"), changed(again, source="/more.csv"), changed(again, source_row=None)])
    assert store.counts() == {"leads": 4, "dnc": 0, "decisions": 4}
    assert store.decided_rows("default", "/leads.csv") == {7}


def test_search_leads(store):
    store.apply([record("created"), record("created", OTHER, email="Bob@Example.com", list_id="200")])
    assert store.search_leads(email="bob@example.COM")[0] == 1
    total, page = store.search_leads(offset=0, limit=1)
    assert (total, [l["id"] for l in page]) == (2, ["2"])
    assert store.search_leads(lead_id="1", phone_e164=PHONE)[1][0]["first_name"] == "Ada"
    assert store.search_leads(lead_id="1", list_id="200") == (0, [])
    assert store.search_leads(lead_id="x") == (0, [])


def test_reads_while_writer_applies(store):
    batches, size = 40, 50
    errors: list[BaseException] = []
    seen: dict[str, list[int]] = {}
    done = threading.Event()

    def writer():
        try:
            for b in range(batches):
                store.apply([record("created", f"+1555{b:03d}{i:04d}") for i in range(size)])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def reader():
        mine = seen.setdefault(threading.current_thread().name, [])
        try:
            while not done.is_set():
                n = store.counts()["leads"]
                assert n % size == 0  # a batch is seen whole or not at all
                mine.append(n)
                store.find_leads("+15550000001")
                store.dnc_contains(PHONE)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(seen) == 2
    for counts in seen.values():
        assert counts and counts == sorted(counts)  # never goes back in time
    assert store.counts()["leads"] == batches * size


def test_close_closes_every_connection(tmp_path):
    s = SqliteStore(tmp_path / "c.db")
    s.apply([record("created")])
    ready, release = threading.Event(), threading.Event()

    def reader():  # a thread that read and is still alive: its connection is open
        s.counts()
        ready.set()
        release.wait(30)

    t = threading.Thread(target=reader)
    t.start()
    ready.wait(30)
    wal = tmp_path / "c.db-wal"
    assert wal.exists()
    s.close()
    # SQLite removes the WAL file when the last connection to the database closes
    assert not wal.exists()
    release.set()
    t.join()
    with pytest.raises(StoreError, match="closed"):
        s.counts()


def test_not_a_database(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("this is not a database\n" * 100)
    with pytest.raises(StoreError, match=r"notes\.db.*not a database"):
        SqliteStore(path)


def test_missing_folder(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        SqliteStore(tmp_path / "nope" / "d.db")


def test_schema_from_the_future(tmp_path):
    path = tmp_path / "f.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="schema version"):
        SqliteStore(path)


# leads and decisions as schema 2 kept them: each table with an index on its phone
_SCHEMA_2 = """
CREATE TABLE leads (id INTEGER PRIMARY KEY, phone_e164 TEXT, phone_number TEXT, phone_code TEXT, list_id TEXT,
    status TEXT, first_name TEXT, last_name TEXT, email TEXT, created_at TEXT NOT NULL, fields TEXT NOT NULL);
CREATE INDEX leads_phone ON leads(phone_e164);
CREATE TABLE decisions (id INTEGER PRIMARY KEY, phone_e164 TEXT, lead_id INTEGER, action TEXT NOT NULL,
    idempotency_key TEXT, workflow TEXT, source TEXT, row INTEGER, decided_at TEXT NOT NULL, record TEXT NOT NULL);
CREATE INDEX decisions_phone ON decisions(phone_e164);
INSERT INTO leads VALUES (7, '+15551230001', '5551230001', '1', '100', 'NEW', 'Ada', 'L', 'a@x.com',
    '2025-01-02T03:04:05.000+00:00', '{"list_id": "100"}');
INSERT INTO leads VALUES (8, '+15551230002', '5551230002', '1', '200', 'NEW', 'Bo', 'M', 'b@x.com',
    '2025-01-02T03:04:06.000+00:00', '{"list_id": "200"}');
INSERT INTO decisions VALUES (3, '+15551230001', 7, 'created', NULL, 'default', '/old.csv', 2,
    '2025-01-02T03:04:05.000+00:00', '{"phone_e164": "+15551230001", "action": "created", "lead_id": "7"}');
INSERT INTO decisions VALUES (4, '+15551230001', NULL, 'duplicate', NULL, 'default', '/old.csv', 3,
    '2025-01-02T03:04:06.000+00:00', '{"phone_e164": "+15551230001", "action": "duplicate", "lead_id": null}');
INSERT INTO decisions VALUES (5, NULL, NULL, 'rejected', NULL, 'default', '/old.csv', 4,
    '2025-01-02T03:04:07.000+00:00', '{"phone_e164": null, "action": "rejected", "lead_id": null}');
PRAGMA user_version=2;
"""


def test_a_schema_2_file_is_found_by_phone_after_the_upgrade(tmp_path):
    """Schema 3 looks leads and decisions up by phone through one table for
    both (``by_phone``); a file of schema 2 gets its rows into it on open."""
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA_2)
    conn.close()
    with SqliteStore(path) as store:
        assert [lead["id"] for lead in store.find_leads(PHONE)] == ["7"]
        assert store.find_leads(PHONE, list_id="200") == []
        assert store.search_leads(phone_e164=OTHER)[1][0]["first_name"] == "Bo"
        assert [r["action"] for r in store.decisions(PHONE)] == ["created", "duplicate"]
        assert store.search_decisions(phone_e164=PHONE)[0] == 2
        [new_id] = store.apply([record("created")])  # and what is stored from now on
        assert [lead["id"] for lead in store.find_leads(PHONE)] == [new_id, "7"]
        assert len(store.decisions(PHONE)) == 3 and store.decisions(OTHER) == []
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    conn.close()
    with SqliteStore(path) as again:  # opened again: nothing moved twice
        assert len(again.decisions(PHONE)) == 3 and again.search_leads(phone_e164=PHONE)[0] == 2


def test_upgrading_a_large_file_says_so_before_and_after(tmp_path, caplog):
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA_2)
    conn.execute("INSERT INTO decisions VALUES (250000, '+15551230002', NULL, 'duplicate', NULL, 'default', "
                 "'/old.csv', 9, '2025-01-02T03:04:08.000+00:00', '{\"action\": \"duplicate\"}')")
    conn.commit()
    conn.close()
    with caplog.at_level("WARNING", logger="dupcheck_plugin.store.sqlite"), SqliteStore(path) as store:
        assert [r["action"] for r in store.decisions(OTHER)] == ["duplicate"]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and "up to 250008 leads and decisions" in said[0] and "takes a while" in said[0]
    assert said[1].startswith(f"database {path}: schema 3 in ")
    caplog.clear()
    with SqliteStore(path):  # upgraded: nothing to say
        pass
    assert caplog.records == []


def test_a_small_file_is_upgraded_without_a_word(tmp_path, caplog):
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA_2)
    conn.close()
    with caplog.at_level("WARNING"), SqliteStore(path):
        pass
    with caplog.at_level("WARNING"), SqliteStore(tmp_path / "new.db"):
        pass
    assert caplog.records == []


def test_rows_written_by_sql_are_found_by_phone(tmp_path):
    """The phone lookup follows whoever writes the tables (here plain SQL:
    an insert, a phone changed, a row deleted), not only ``apply``."""
    with SqliteStore(tmp_path / "d.db") as store:
        store.apply([record("created"), record("created", OTHER)])
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE leads SET phone_e164 = ? WHERE phone_e164 = ?", ("+15551230009", OTHER))
            conn.execute("DELETE FROM decisions WHERE phone_e164 = ?", (PHONE,))
        conn.close()
        assert store.find_leads(OTHER) == [] and len(store.find_leads("+15551230009")) == 1
        assert store.decisions(PHONE) == [] and len(store.find_leads(PHONE)) == 1


def test_a_phone_changed_by_sql_replace_is_not_found_under_its_old_phone(tmp_path):
    """REPLACE deletes the row it replaces without its DELETE trigger (SQLite fires those
    on REPLACE only with recursive_triggers, which an operator's sqlite3 shell has off):
    by_phone keeps the old phone's entry. A lead moved to another phone by REPLACE was
    still found under its old one (a new lead with that phone: a false duplicate), and a
    decision under a phone it no longer has. Found by reviewing schema 3's triggers."""
    with SqliteStore(tmp_path / "d.db") as store:
        [lead_id, _] = store.apply([record("created"), record("created", OTHER)])
        moved = "+15551230009"
        with sqlite3.connect(store.path) as conn:
            conn.execute("REPLACE INTO leads SELECT id, ?, phone_number, phone_code, list_id, status, first_name, "
                         "last_name, email, created_at, fields FROM leads WHERE id = ?", (moved, int(lead_id)))
            conn.execute("REPLACE INTO decisions SELECT id, ?, lead_id, action, idempotency_key, workflow, source, "
                         "row, decided_at, record FROM decisions WHERE phone_e164 = ?", (moved, PHONE))
        conn.close()
        assert store.find_leads(PHONE) == [] and store.search_leads(phone_e164=PHONE)[0] == 0
        assert [lead["id"] for lead in store.find_leads(moved)] == [lead_id]
        assert store.decisions(PHONE) == [] and store.search_decisions(phone_e164=PHONE)[0] == 0
        assert len(store.decisions(moved)) == 1 and store.search_decisions(phone_e164=moved)[0] == 1


def test_decided_records_of_a_lead_file_by_row(store):
    store.apply([changed(record("created", f"+1555123{n:04d}"), source="/f.csv", source_row=n) for n in (5, 2, 9)]
                + [changed(record("created", OTHER), source="/other.csv", source_row=1)])
    assert [r["source_row"] for r in store.decided_records("default", "/f.csv")] == [2, 5, 9]
    assert list(store.decided_records("other-workflow", "/f.csv")) == []


def test_dnc_added_says_whether_this_decision_added_the_phone(store):
    import asyncio

    from dupcheck_plugin.store.writer import StoreWriter

    given = [record("duplicate", phone, dnc=True, rules_row=1) for phone in (PHONE, PHONE, PHONE, PHONE, OTHER)]

    async def go():
        writer = StoreWriter(store)
        try:
            together = await asyncio.gather(*(writer.store_record(commit) for commit in given[:3]))
            later = await writer.store_record(given[3])
            other = await writer.store_record(given[4])
        finally:
            await asyncio.to_thread(writer.close)
        return together + [later, other]

    stored = asyncio.run(go())
    assert [r["dnc_added"] for r in stored] == [True, False, False, False, True]
    # the store hands back new records: the ones it was given are as they were built
    assert all(c.record["dnc_added"] and "lead_id" not in c.record for c in given)
    assert store.counts()["dnc"] == 2
    assert [r["dnc_added"] for r in store.decisions(PHONE)] == [True, False, False, False]


def test_search_decisions_filters_pages_and_opens_one(store):
    late = record("created", OTHER, list_id="200")
    late = replace(late, record={**late.record, "decided_at": "2025-02-01T00:00:00.000+00:00"})
    store.apply([record("created"), record("duplicate", rules_row=2), record("rejected", None), late])
    total, page = store.search_decisions()
    assert total == 4 and [r["action"] for r in page] == ["created", "rejected", "duplicate", "created"]
    ids = [r["id"] for r in page]
    assert store.search_decisions(action="created")[0] == 2
    assert [r["rules_row_name"] for r in store.search_decisions(rules_row="name-2")[1]] == ["name-2"]
    assert store.search_decisions(rules_row="2")[1][0]["rules_row"] == 2  # by number too
    assert store.search_decisions(rules_row="default_status")[0] == 3  # or by what decided
    assert [r["phone_e164"] for r in store.search_decisions(list_id="200")[1]] == [OTHER]
    assert store.search_decisions(phone_e164=PHONE)[0] == 2
    assert store.search_decisions(since="2025-01-15")[0] == 1
    assert store.search_decisions(until="2025-01-15")[0] == 3
    total, second = store.search_decisions(offset=1, limit=2)
    assert total == 4 and [r["id"] for r in second] == ids[1:3]
    assert store.decision_by_id(ids[0])["phone_e164"] == OTHER
    assert store.decision_by_id(10_000) is None


def test_config_changes_newest_first_per_workflow(store):
    first = store.add_config_change({"workflow": "wf", "who": "alice", "summary": "off", "diff": "-a\n+b\n",
                                     "text": "b"})
    second = store.add_config_change({"workflow": "wf", "who": "bob", "summary": "on", "diff": "", "text": "c"})
    store.add_config_change({"workflow": "other", "who": "bob", "summary": "x", "diff": "", "text": "d"})
    changes = store.config_changes("wf")
    assert [c["id"] for c in changes] == [second, first]
    assert (changes[1]["who"], changes[1]["summary"], changes[1]["diff"], changes[1]["text"]) == \
        ("alice", "off", "-a\n+b\n", "b")
    assert changes[0]["applied_at"] >= changes[1]["applied_at"]
    assert store.config_changes("wf", limit=1)[0]["id"] == second
    assert store.config_change(first)["text"] == "b"
    assert store.config_change(10_000) is None


# -- records as dupcheck 0.1 stored them (a rules-table row was a "rule", the file's line was "row") --

def _old(row: int, action: str, matched_rule: int | None, rule_name: str | None, **more) -> dict:
    return {"workflow": "default", "source": "/old.csv", "row": row, "decided_at": f"2025-01-0{row}T00:00:00.000+00:00",
            "lead": {"phone_number": "5551230001", "list_id": "100"}, "phone_e164": PHONE,
            "matched_rule": matched_rule, "rule_name": rule_name, "action": action, "status": None,
            "dnc_added": False, "success": False, "code": 6009, "text": "The phone number already exists",
            "detail": None, "checked": matched_rule is not None, "retryable": False, "crm": {"called": True},
            "crm_record_id": None, "request": None, "lead_id": None, **more}


OLD_RECORDS = [
    _old(2, "duplicate", 0, "cust", idempotency_key="old-key"),
    _old(3, "duplicate", None, "check_dup"),
    _old(4, "created", None, None, status="NOTCHECKED", success=True, code=200, text="Lead created",
         detail="CRM call failed (timeout)"),
    _old(5, "duplicate", 1, None),
]


def write_as_dupcheck_0_1(store, request) -> None:
    """Rows as 0.1 wrote them, by SQL: today's ``apply`` writes today's keys only."""
    rows = [(r["phone_e164"], None, r["action"], r.get("idempotency_key"), r["workflow"], r["source"], r["row"],
             r["decided_at"], json.dumps(r)) for r in OLD_RECORDS]
    columns = "phone_e164, lead_id, action, idempotency_key, workflow, source, row, decided_at, record"
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            conn.executemany(f"INSERT INTO decisions ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(request.getfixturevalue("pg_url")) as conn:
            conn.cursor().executemany(f"INSERT INTO decisions ({columns}) VALUES "
                                      "(%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)", rows)


def test_records_an_older_version_stored_read_with_todays_keys(store, request):
    write_as_dupcheck_0_1(store, request)
    by_row = {r["source_row"]: r for r in store.decided_records("default", "/old.csv")}  # run --resume
    assert sorted(by_row) == [2, 3, 4, 5] and store.decided_rows("default", "/old.csv") == {2, 3, 4, 5}
    assert [(r["decided_by"], r["rules_row"], r["rules_row_name"]) for r in by_row.values()] == [
        ("rules_row", 0, "cust"), ("check_dup", None, None), ("on_error", None, None), ("rules_row", 1, None)]
    assert not {"matched_rule", "rule_name", "row"} & {k for r in by_row.values() for k in r}
    assert [row_label(r) for r in by_row.values()] == ["row 0 (cust)", "check_dup", None, "row 1"]
    assert store.decision_by_idempotency_key("old-key") == by_row[2]  # an Idempotency-Key replay
    assert store.decisions(PHONE) == list(by_row.values())  # /v1/decisions
    total, page = store.search_decisions(rules_row="cust")  # the console's filter, by name
    assert total == 1 and page[0]["source_row"] == 2 and store.decision_by_id(page[0]["id"])["rules_row"] == 0
    assert [r["source_row"] for r in store.search_decisions(rules_row="1")[1]] == [5]  # by number
    assert [r["source_row"] for r in store.search_decisions(rules_row="check_dup")[1]] == [3]


def test_upgrading_a_current_record_changes_nothing():
    current = upgrade_record({**OLD_RECORDS[0]})
    assert upgrade_record(current) is current
    assert upgrade_record({"source_row": 7, "decided_by": "intake"}) == {"source_row": 7, "decided_by": "intake"}



@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services), "memory"])
def any_store(request, tmp_path):
    """The shipped stores and the contract-only memory store."""
    s = open_store(request.param, request, tmp_path)
    yield s
    s.close()


def test_decided_phones_are_each_decided_row_s_phone(any_store):
    # run --resume reads them to tell the file still holds the leads it decided (the memory
    # store answers through the contract's default, from the records)
    commits = [changed(record("created", f"+1555123010{i}"), source="/leads.csv", source_row=i + 2) for i in range(3)]
    commits.append(changed(record("created", None), source="/leads.csv", source_row=9))
    commits.append(changed(record("created", "+15551230199"), source="/other.csv", source_row=2))
    any_store.apply(commits)
    assert any_store.decided_phones("default", "/leads.csv") == {2: "+15551230100", 3: "+15551230101",
                                                                 4: "+15551230102", 9: None}
    assert set(any_store.decided_phones("default", "/leads.csv")) == any_store.decided_rows("default", "/leads.csv")


def test_the_crm_answer_body_is_kept_as_recorded(any_store):
    from dupcheck_plugin.http.wire import response_json

    bodies = [{"total": 1, "results": [{"name": "Zoë \\ \"quoted\" \u2028", "nul": "a\x00b"}]},
              "x" * (70 * 1024)]  # a text body over the 64 KiB a record keeps
    commits = []
    for i, body in enumerate(bodies):
        c = record("duplicate", f"+1555123010{i}", rule=1)
        commits.append(replace(c, record={**c.record, "response": response_json(body, ["Zoë"])}))
    any_store.apply(commits)
    for c in commits:
        [stored] = any_store.decisions(c.record["phone_e164"])
        assert stored["response"] == c.record["response"]
    total, page = any_store.search_decisions()
    assert total == 2 and [r["response"] for r in page[::-1]] == [c.record["response"] for c in commits]
    assert any_store.decision_by_id(page[0]["id"])["response"]["truncated"] is True


class CountingStore:
    """Records each transaction's size."""

    def __init__(self):
        self.batches = []

    def apply(self, commits):
        self.batches.append(len(commits))
        return [None] * len(commits)

    def close(self):
        pass


def test_the_commits_of_one_loop_iteration_reach_the_store_in_one_transaction():
    import asyncio

    from dupcheck_plugin.store.writer import StoreWriter

    store = CountingStore()
    writer = StoreWriter(store)

    async def go():
        # gather starts every coroutine in the same loop iteration
        return await asyncio.gather(*(writer.store_record(record("rejected", None)) for _ in range(100)))

    assert len(asyncio.run(go())) == 100
    writer.close()
    assert store.batches == [100]


def test_a_batch_job_gathers_the_commits_of_several_loop_iterations(monkeypatch):
    import asyncio

    from dupcheck_plugin.store import writer as writer_module

    monkeypatch.setattr(writer_module, "GATHER_WAIT_S", 60.0)  # no clock here: the batch is full at three
    store = CountingStore()
    writer = writer_module.StoreWriter(store)
    assert writer.gather(3) == 0

    async def go():
        written = []
        for _ in range(3):  # one commit per loop iteration: each is handed over on its own, and
            written.append(writer.enqueue(record("rejected", None)))  # the writer has time to
            await asyncio.sleep(0.02)  # take it (without gathering it would write [1, 1, 1])
        return await asyncio.gather(*written)

    assert len(asyncio.run(go())) == 3
    writer.close()
    assert store.batches == [3]


def test_a_gathered_batch_wakes_the_writer_thread_once(monkeypatch):
    """The loop keeps a gathering batch until it is full, then hands it over whole:
    one hand-over to the thread for commits of several loop iterations."""
    import asyncio

    from dupcheck_plugin.store import writer as writer_module

    monkeypatch.setattr(writer_module, "GATHER_WAIT_S", 60.0)
    store = CountingStore()
    writer = writer_module.StoreWriter(store)
    handed = []  # the commits each hand-over takes to the thread
    hand_over = writer._hand_over

    def counted(loop):
        handed.append(len(writer._pending.get(loop, ())))
        hand_over(loop)

    monkeypatch.setattr(writer, "_hand_over", counted)
    writer.gather(4)

    async def go():
        written = []
        for _ in range(4):
            written.append(writer.enqueue(record("rejected", None)))
            await asyncio.sleep(0.01)  # a loop iteration (more) each
        return await asyncio.gather(*written)

    assert len(asyncio.run(go())) == 4
    writer.close()
    assert [n for n in handed if n] == [4] and store.batches == [4]  # not [1, 1, 1, 1] handed over


def test_a_small_gathered_batch_is_written_when_its_wait_is_over(monkeypatch):
    import asyncio

    from dupcheck_plugin.store import writer as writer_module

    monkeypatch.setattr(writer_module, "GATHER_WAIT_S", 0.05)
    store = CountingStore()
    writer = writer_module.StoreWriter(store)

    async def lone():
        writer.gather(10)
        return await writer.enqueue(record("rejected", None))  # no company comes: written after the wait

    async def begun_before_gathering():
        writer.gather(0)
        first = writer.enqueue(record("rejected", None))  # handed over at this iteration's end
        writer.gather(2)
        return await asyncio.gather(first, writer.enqueue(record("rejected", None)))  # full: no wait to end

    assert asyncio.run(lone())["action"] == "rejected"
    assert len(asyncio.run(begun_before_gathering())) == 2
    writer.close()
    assert store.batches == [1, 2]


def test_a_lone_commit_waits_for_company_only_while_a_job_gathers(monkeypatch):
    import asyncio

    from dupcheck_plugin.store import writer as writer_module

    monkeypatch.setattr(writer_module, "GATHER_WAIT_S", 60.0)
    store = CountingStore()
    writer = writer_module.StoreWriter(store)

    async def one():
        return await asyncio.wait_for(writer.store_record(record("rejected", None)), 30)

    writer.gather(1)  # one lead at a time: no one to wait for
    assert asyncio.run(one())["action"] == "rejected"
    assert writer.gather(0) == 1  # off again (as serve has it)
    assert asyncio.run(one())["action"] == "rejected"

    async def closed_while_gathering():
        writer.gather(8)
        written = writer.enqueue(record("rejected", None))
        await asyncio.sleep(0)  # handed over: the writer waits for more
        await asyncio.wait_for(asyncio.to_thread(writer.close), 30)  # close does not wait out the 60 s
        return await written

    assert asyncio.run(closed_while_gathering())["action"] == "rejected"
    assert store.batches == [1, 1, 1]


def test_closing_the_writer_stores_what_a_loop_iteration_handed_over():
    import asyncio

    from dupcheck_plugin.store.writer import StoreWriter

    store = CountingStore()
    writer = StoreWriter(store)

    async def go():
        written = writer.enqueue(record("rejected", None))
        writer.close()  # before the loop passed the commit on: close passes it on, then stops
        return await written

    assert asyncio.run(go())["lead_id"] is None
    assert store.batches == [1]
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(go())


def test_one_writer_answers_the_event_loops_of_two_threads():
    import asyncio

    from dupcheck_plugin.store.writer import StoreWriter

    store = CountingStore()
    writer = StoreWriter(store)
    results: dict[str, list] = {}

    def lane(name: str) -> None:
        async def go():
            commits = [record("rejected", None, first_name=f"{name}{i}") for i in range(50)]
            return await asyncio.gather(*(writer.store_record(c) for c in commits))

        results[name] = asyncio.run(go())

    threads = [threading.Thread(target=lane, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    for name in ("a", "b"):  # each loop got its own records back, in order
        assert [r["lead"]["first_name"] for r in results[name]] == [f"{name}{i}" for i in range(50)]
    assert sum(store.batches) == 100
