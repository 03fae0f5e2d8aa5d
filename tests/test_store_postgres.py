"""What only the PostgreSQL store has: a server to reach, migrations in a
version table, several processes opening one database at once, the hook."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading

import psycopg
import pytest

from dupcheck_plugin.plugins import make_plugin_manager
from dupcheck_plugin.store.postgres import SCHEMA_VERSION, PostgresStore, redact
from dupcheck_plugin.store.sqlite import StoreError

from test_store import PHONE, record

pytestmark = pytest.mark.services


def test_durable_across_reopen_with_version_table(pg_url):
    with PostgresStore(pg_url) as s:
        s.apply([record("created", dnc=True, rules_row=1)])
    with PostgresStore(pg_url) as s:
        assert s.counts() == {"leads": 1, "dnc": 1, "decisions": 1}
        assert s.decisions(PHONE)[0]["lead_id"] == "1"
    with psycopg.connect(pg_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM dupcheck_schema ORDER BY version")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_schema_from_the_future(pg_url):
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dupcheck_schema (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        PostgresStore(pg_url)


def test_instances_opening_together_migrate_once(pg_url):
    stores, errors = [], []

    def open_one():
        try:
            stores.append(PostgresStore(pg_url, pool_size=2))
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == [] and len(stores) == 6
        stores[0].apply([record("created")])
        assert all(s.counts()["leads"] == 1 for s in stores)  # one database, seen by all
    finally:
        for s in stores:
            s.close()


def test_unreachable_server_is_a_clear_error(pg_cluster):
    from dupcheck_plugin.dev.ports import free_port

    url = f"postgresql://someone:s3cret@127.0.0.1:{free_port()}/nope"
    with pytest.raises(StoreError, match=r"cannot connect to PostgreSQL at postgresql://someone:\*\*\*@") as err:
        PostgresStore(url, connect_timeout=2)
    assert "s3cret" not in str(err.value)
    assert redact("postgresql://u:p@h/db") == "postgresql://u:***@h/db"


def test_closed_store_refuses(pg_url):
    s = PostgresStore(pg_url)
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.counts()


def test_make_store_hook_answers_for_a_postgres_url(pg_url):
    store = make_plugin_manager().hook.dupcheck_make_store(settings={"db": pg_url})
    try:
        assert isinstance(store, PostgresStore)
    finally:
        store.close()


def test_run_on_postgres_end_to_end(pg_url, crm_sim, tmp_path, hubspot_env):
    """`dupcheck run --db postgresql://...` decides a file into PostgreSQL; a re-run refuses."""
    leads = tmp_path / "leads.csv"
    leads.write_text("phone_number,first_name\n5550001111,A\n5550002222,B\n5550001111,C\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "dupcheck_plugin.cli.main", "run", "hubspot_dupcheck", "--leads", str(leads),
           "--db", pg_url, "--crm-url", crm_sim.url, "--check-dup", "1", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["source_row"] for r in sorted(records, key=lambda r: r["source_row"])] == [2, 3, 4]  # file lines, the header being line 1
    with PostgresStore(pg_url) as s:
        counts = s.counts()
        assert counts["decisions"] == 3
        assert counts["leads"] == sum(r["action"] == "created" for r in records)
        assert len(s.find_leads("+15550001111")) <= 1  # check_dup: the phone's second row is not a second lead
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "already decided" in again.stderr


def mixed_batch(n: int, start: int = 0) -> list:
    """n decisions like a run's: created leads, duplicates (no lead), DNC rows, a phone put on
    the DNC list twice in the batch, a decision without a phone."""
    batch = []
    for i in range(start, start + n):
        phone = f"+1555{3000000 + i:07d}"
        kind = i % 5
        if kind == 0:
            batch.append(record("created", phone, key=f"key-{i}"))
        elif kind == 1:
            batch.append(record("created", phone, dnc=True, rules_row=1))
        elif kind == 2:
            batch.append(record("duplicate", phone, rules_row=2))
        elif kind == 3:  # the previous commit's phone on the DNC list a second time, in the same batch
            batch.append(record("duplicate", f"+1555{3000000 + i - 2:07d}", dnc=True, rules_row=3))
        else:
            batch.append(record("rejected", None))
    return batch


def test_a_large_mixed_batch_stores_every_row_with_its_lead_id(pg_url):
    with PostgresStore(pg_url) as s:
        assert s.apply([record("created", "+15559999999", dnc=True, rules_row=9)]) == ["1"]
        batch = mixed_batch(200)
        ids = s.apply(batch)

        created = [i for i, c in enumerate(batch) if c.lead is not None]
        assert [ids[i] for i in created] == [str(n) for n in range(2, 2 + len(created))]  # in commit order
        assert all(ids[i] is None for i in range(len(batch)) if i not in created)
        dnc_phones = {c.dnc.phone_e164 for c in batch if c.dnc is not None}
        assert len(dnc_phones) == 40 and sum(c.dnc is not None for c in batch) == 80
        assert s.counts() == {"leads": 1 + len(created), "dnc": 1 + len(dnc_phones), "decisions": 201}
        for i, c in enumerate(batch):
            phone = c.record["phone_e164"]
            if c.lead is not None:
                [lead] = s.find_leads(phone)
                assert lead["id"] == ids[i] and lead["phone_number"] == phone[2:] and lead["status"] == "NEW"
                assert lead["fields"]["email"] == "ada@example.com"
            if phone is not None:
                assert [(d["action"], d["lead_id"]) for d in s.decisions(phone)] == [
                    (b.record["action"], ids[j]) for j, b in enumerate(batch) if b.record["phone_e164"] == phone]
        assert s.decision_by_idempotency_key("key-5")["lead_id"] == ids[5]
        # the first DNC row of a phone stays; the one skipped took no id (ids stay dense)
        total, entries = s.dnc_search(None, None, 0, 100)
        assert total == 41 and sorted(e["id"] for e in entries) == list(range(1, 42))
        assert {e["reason"] for e in entries if e["phone_e164"] in dnc_phones} == {"row 1 (name-1)"}

    # the identity sequence stays consistent: a lead inserted with the default id gets the next one
    with psycopg.connect(pg_url, autocommit=True) as conn:
        new_id = conn.execute("INSERT INTO leads (created_at, fields) VALUES ('now', '{}') RETURNING id").fetchone()[0]
    assert new_id == 2 + len(created)


def test_a_failed_large_batch_stores_nothing_and_its_commits_can_go_one_by_one(pg_url):
    """The writer retries a failed batch commit by commit: the good ones land, the bad one is refused."""
    with PostgresStore(pg_url) as s:
        s.apply([record("created", key="key-5")])  # the key of a commit in the batch below
        batch = mixed_batch(60)
        with pytest.raises(StoreError, match="idempotency key is already stored; the batch was not stored"):
            s.apply(batch)
        assert s.counts() == {"leads": 1, "dnc": 0, "decisions": 1}
        refused = []
        for c in batch:
            try:
                s.apply([c])
            except StoreError:
                refused.append(c.record.get("idempotency_key"))
        assert refused == ["key-5"]
        assert s.counts() == {"leads": 1 + sum(c.lead is not None for c in batch) - 1, "dnc": 12, "decisions": 60}


def test_round_trips_per_batch_do_not_grow_with_its_size(pg_cluster, pg_url):
    """Counted by a proxy between the store and PostgreSQL (the client's waits for an answer)."""
    from urllib.parse import urlsplit

    from dupcheck_plugin.dev.pg_proxy import PgProxy

    database = urlsplit(pg_url).path
    with PgProxy("127.0.0.1", pg_cluster.port) as proxy, PostgresStore(
            f"postgresql://dupcheck@127.0.0.1:{proxy.port}{database}?sslmode=disable", pool_size=1) as s:
        def round_trips(batch) -> int:
            before = proxy.round_trips
            s.apply(batch)
            return proxy.round_trips - before

        small = round_trips(mixed_batch(5))
        large = round_trips(mixed_batch(200, start=5))
        one_by_one = sum(round_trips([c]) for c in mixed_batch(5, start=205))
        assert 1 <= large <= small + 2 <= 6  # 2 each: the transaction's and the lead ids, then the rest in one pipeline
        assert one_by_one >= 5  # the proxy sees every batch's waits: 40 batches would be 40x
        assert s.counts()["decisions"] == 210


def test_a_record_holding_a_nul_is_stored_and_read_back_exactly(pg_url):
    """jsonb cannot hold U+0000, which a CRM can put in a record (a record id, an OAuth error's
    description): the record is stored all the same and every reader gets it back as it was."""
    nul = record("duplicate", key="nul-1")
    nul.record.update({"crm_record_id": "C-\x001", "source": "/leads.csv", "source_row": 3,
                       "crm": {"status_code": 200, "error_detail": "token endpoint refused: bad\x00"},
                       "response": {"body": '{"id":"C-\\u00001"}', "truncated": False, "bytes": 17}})
    plain = record("created", "+15550100999")
    plain.record["crm_record_id"] = "\\u0000 as text"  # a backslash, not a NUL: stored as it is
    with PostgresStore(pg_url) as s:
        stored = s.apply_stored([nul, plain])
        want = {**nul.record, "lead_id": None}
        assert json.loads(stored[0].record_json) == want  # what `run --out` writes
        assert s.decisions(PHONE) == [want]
        assert s.decision_by_idempotency_key("nul-1") == want
        assert list(s.decided_records("default", "/leads.csv")) == [want]
        total, found = s.search_decisions(action="duplicate")
        assert total == 1 and found[0]["crm_record_id"] == "C-\x001"
        assert {k: v for k, v in s.decision_by_id(found[0]["id"]).items() if k != "id"} == want
        assert s.decisions("+15550100999")[0]["crm_record_id"] == "\\u0000 as text"
    with psycopg.connect(pg_url) as conn:  # what SQL sees: the NUL shown as \x00, as intake shows one
        shown = conn.execute("SELECT record->>'crm_record_id' FROM decisions ORDER BY id").fetchall()
    assert shown == [("C-\\x001",), ("\\u0000 as text",)]


def test_a_crm_record_id_holding_a_nul_is_decided_and_stored(pg_url, tmp_path):
    """The whole path: a CRM answers a record id with a NUL in it; the lead is decided and stored."""
    import asyncio

    import httpx

    from dupcheck_plugin.host import Host

    from conftest import write_workflow

    row = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}
    wf = write_workflow(tmp_path, [row])
    answer = b'{"total": 1, "results": [{"id": "C-\\u00001"}]}'

    async def go():
        async with Host.open(str(wf), db=pg_url, environ={"HUBSPOT_TOKEN": "t"},
                             http_transport=httpx.MockTransport(lambda request: httpx.Response(200, content=answer))) as host:
            return await host.decide({"phone_number": "5550100123"})

    decided = asyncio.run(go())
    assert (decided["action"], decided["crm_record_id"]) == ("duplicate", "C-\x001")
    with PostgresStore(pg_url) as s:
        [stored] = s.decisions("+15550100123")
    assert stored["crm_record_id"] == "C-\x001" and json.loads(stored["response"]["body"]) == json.loads(answer)


# --- a connection lost with its COMMIT --------------------------------------------

def _phones(n: int, start: int = 0) -> list[str]:
    return [f"+1555030{i:04d}" for i in range(start, start + n)]


def _through(proxy, pg_url: str, **options) -> PostgresStore:
    from urllib.parse import urlsplit

    return PostgresStore(f"postgresql://dupcheck@127.0.0.1:{proxy.port}{urlsplit(pg_url).path}?sslmode=disable",
                         **options)


def test_a_batch_whose_commit_answer_is_lost_is_found_committed_and_stored_once(pg_cluster, pg_url):
    """The server commits, its answer never comes back: the store asks the server (by the
    transaction's id, on a connection of its own: here the pool's one is the lost one) and
    answers as for any stored batch; nothing is written twice."""
    from dupcheck_plugin.dev.pg_proxy import PgProxy

    batch = [record("created", phone) for phone in _phones(3)] + [record("duplicate", phone) for phone in _phones(2, 3)]
    with PgProxy("127.0.0.1", pg_cluster.port) as proxy, _through(proxy, pg_url, pool_size=1) as s:
        proxy.cut_at_commit("after")
        stored = s.apply_stored(batch)
        assert proxy.cuts == 1
        assert [x.lead_id for x in stored] == ["1", "2", "3", None, None]
        assert s.counts() == {"leads": 3, "dnc": 0, "decisions": 5}
        for phone, one in zip(_phones(5), stored):
            [decision] = s.decisions(phone)
            assert decision["lead_id"] == one.lead_id and json.loads(one.record_json) == decision


def test_a_commit_lost_before_the_server_got_it_stores_nothing_and_can_go_again(pg_cluster, pg_url):
    from dupcheck_plugin.dev.pg_proxy import PgProxy

    batch = [record("created", phone) for phone in _phones(3)]
    with PgProxy("127.0.0.1", pg_cluster.port) as proxy, _through(proxy, pg_url) as s:
        proxy.cut_at_commit("before")
        with pytest.raises(psycopg.OperationalError):
            s.apply_stored(batch)
        assert proxy.cuts == 1
        assert s.counts() == {"leads": 0, "dnc": 0, "decisions": 0}  # the server rolled it back
        s.apply_stored(batch)
        assert s.counts() == {"leads": 3, "dnc": 0, "decisions": 3}


def test_the_writer_stores_keyless_inserts_once_when_a_commit_answer_is_lost(pg_cluster, pg_url):
    """serve's inserts without an Idempotency-Key: nothing in the database refuses a second copy,
    so a batch written again after a lost COMMIT answer would be stored twice."""
    from dupcheck_plugin.dev.pg_proxy import PgProxy
    from dupcheck_plugin.store.writer import StoreWriter

    phones = _phones(6, 100)
    with PgProxy("127.0.0.1", pg_cluster.port) as proxy, _through(proxy, pg_url) as s:
        writer = StoreWriter(s)
        proxy.cut_at_commit("after")

        async def insert_all():
            return await asyncio.gather(*(writer.store_record(record("created", phone)) for phone in phones))

        stored = asyncio.run(insert_all())
        writer.close()
        assert proxy.cuts == 1
        assert sorted(int(r["lead_id"]) for r in stored) == list(range(1, 7))
        assert s.counts() == {"leads": 6, "dnc": 0, "decisions": 6}
        assert [len(s.find_leads(phone)) for phone in phones] == [1] * 6


def test_the_server_says_by_transaction_id_whether_a_lost_commit_committed(pg_url, monkeypatch):
    """Committed, rolled back, or still running on the server (it has not noticed the lost
    connection yet): asked until OUTCOME_WAIT_S, then StoreOutcomeUnknown."""
    from dupcheck_plugin.store import postgres
    from dupcheck_plugin.store.contract import StoreOutcomeUnknown

    lost = psycopg.OperationalError("server closed the connection unexpectedly")
    with PostgresStore(pg_url) as s, psycopg.connect(pg_url) as other:
        def transaction(end: str | None) -> int:
            xid = other.execute("SELECT txid_current()").fetchone()[0]  # psycopg opened a transaction
            if end is not None:
                other.execute(end)
            return xid

        assert s._committed(transaction("COMMIT"), lost) is True
        assert s._committed(transaction("ROLLBACK"), lost) is False
        monkeypatch.setattr(postgres, "OUTCOME_WAIT_S", 0.2)
        running = transaction(None)
        with pytest.raises(StoreOutcomeUnknown, match=r"lost at COMMIT \(server closed the connection unexpectedly\) "
                                                      r"and its transaction was still in progress after 0.2 s"):
            s._committed(running, lost)
        other.rollback()


def _decisions(pg_url: str) -> int:
    """The decisions in the database, asked directly (not through the proxy)."""
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT count(*) FROM decisions").fetchone()[0]


def test_when_the_server_is_out_of_reach_too_the_outcome_is_unknown(pg_cluster, pg_url):
    from dupcheck_plugin.dev.pg_proxy import PgProxy
    from dupcheck_plugin.store.contract import StoreOutcomeUnknown

    with PgProxy("127.0.0.1", pg_cluster.port) as proxy, _through(proxy, pg_url) as s:
        proxy.cut_at_commit("after", then_refuse=True)
        with pytest.raises(StoreOutcomeUnknown, match=r"lost at COMMIT \(.*\) and the server could not be asked "
                                                      r"\(.*\): the batch may or may not be stored"):
            s.apply_stored([record("created", phone) for phone in _phones(2, 300)])
    assert _decisions(pg_url) == 2  # it had landed


def test_when_the_server_cannot_say_the_writer_fails_the_batch_whole_and_writes_nothing_again(pg_cluster, pg_url):
    """A lost COMMIT answer, the server out of reach too (StoreOutcomeUnknown): every commit of
    the batch gets the error, and none is written again (the batch had in fact landed)."""
    from dupcheck_plugin.dev.pg_proxy import PgProxy
    from dupcheck_plugin.store.contract import StoreOutcomeUnknown
    from dupcheck_plugin.store.writer import StoreWriter

    phones = _phones(3, 200)
    with PgProxy("127.0.0.1", pg_cluster.port) as proxy, _through(proxy, pg_url) as s:
        writes = []
        apply_stored = s.apply_stored

        def counted(commits):
            writes.append(len(commits))
            return apply_stored(commits)

        s.apply_stored = counted
        writer = StoreWriter(s)
        proxy.cut_at_commit("after", then_refuse=True)

        async def insert_all():
            return await asyncio.gather(*(writer.store_record(record("created", phone)) for phone in phones),
                                        return_exceptions=True)

        outcomes = asyncio.run(insert_all())
        writer.close()
        assert [type(o) for o in outcomes] == [StoreOutcomeUnknown] * 3
        assert writes == [3]  # once, whole: not commit by commit
    assert _decisions(pg_url) == 3  # it had landed: written again, it would be 6


@pytest.mark.parametrize("when", ["after", "before"])
def test_a_run_whose_commit_is_lost_with_the_server_stops_and_resume_decides_each_row_once(
        pg_cluster, pg_url, crm_sim, tmp_path, hubspot_env, when):
    """`run` on PostgreSQL; the connection goes with the first batch's COMMIT and the server
    is out of reach from then on. "after": the batch landed; "before": it did not; the run
    cannot tell which (StoreOutcomeUnknown) and stops saying so. `--resume`, the server
    back, decides what did not land and repairs --out: each row once in both."""
    from urllib.parse import urlsplit

    from dupcheck_plugin.dev.pg_proxy import PgProxy

    leads = tmp_path / "leads.csv"
    leads.write_text("phone_number,first_name\n" + "".join(f"555000{3000 + i},N{i}\n" for i in range(5)),
                     encoding="utf-8")
    out = tmp_path / "out.jsonl"

    def run(db: str, *more: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", "run", "hubspot_dupcheck",
                               "--leads", str(leads), "--db", db, "--crm-url", crm_sim.url, "--out", str(out),
                               "--no-progress", *more], capture_output=True, text=True, timeout=120)

    with PgProxy("127.0.0.1", pg_cluster.port) as proxy:
        proxy.cut_at_commit(when, then_refuse=True, once_sent=b"INSERT INTO decisions")
        first = run(f"postgresql://dupcheck@127.0.0.1:{proxy.port}{urlsplit(pg_url).path}?sslmode=disable")
        assert proxy.cuts == 1
    # "before" too: the connection went once the COMMIT was sent, and no one can be asked
    assert first.returncode == 1 and "may or may not be stored (5 leads)" in first.stderr, first.stderr
    assert "run again with --resume" in first.stderr
    landed = _decisions(pg_url)
    assert landed == (5 if when == "after" else 0)
    assert out.read_text(encoding="utf-8") == ""  # nothing the run did not know stored

    again = run(pg_url, "--resume")
    assert again.returncode == 0, again.stderr
    if when == "after":
        assert "resuming: 5 rows already decided are skipped" in again.stderr
        assert "5 records the interrupted run had not written were added" in again.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["source_row"] for r in records) == [2, 3, 4, 5, 6]
    assert _decisions(pg_url) == 5
    with PostgresStore(pg_url) as s:
        assert s.counts()["leads"] == 5
        assert all(len(s.find_leads(f"+1555000{3000 + i}")) == 1 for i in range(5))
