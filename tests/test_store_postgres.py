"""What only the PostgreSQL store has: a server to reach, migrations in a
version table, several processes opening one database at once, the hook."""

from __future__ import annotations

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
