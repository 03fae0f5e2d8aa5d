"""``run`` and ``serve`` on a store that implements the contract and nothing
more: the in-memory store, supplied by a plugin through dupcheck_make_store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dupcheck_plugin.host import Host
from dupcheck_plugin.plugins import Registry, make_plugin_manager
from dupcheck_plugin.server import ServeSettings, create_app
from dupcheck_plugin.testing import MemoryStore, MemoryStorePlugin

from conftest import install_fake_plugin, unlimited_copy
from test_serve import ENV, TOKEN, WORKFLOW, ServerThread, insert

PLUGIN = """\
from dupcheck_plugin.testing import MemoryStorePlugin

plugin = MemoryStorePlugin()
"""


def installed_plugin(tmp_path) -> dict[str, str]:
    """An installed distribution whose dupcheck entry point is the memory store plugin."""
    install_fake_plugin(tmp_path, "memstore_plugin", PLUGIN, "memstore", "memstore_plugin:plugin")
    return {**os.environ, "PYTHONPATH": str(tmp_path), **ENV}


def test_run_on_the_memory_store_plugin(tmp_path, crm_stub):
    crm_stub.answer("5550108001", {"total": 1, "results": [{"id": "5", "properties": {"lifecyclestage": "customer"}}]})
    leads = tmp_path / "leads.csv"
    leads.write_text("phone_number,first_name\n5550108001,A\n5550108002,B\n5550108002,C\nnope,D\n")
    db = tmp_path / "never.db"
    workflow = str(unlimited_copy(Path(WORKFLOW), tmp_path))  # the stub answers one lead per request
    proc = subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", "run", workflow, "--leads", str(leads),
                           "--crm-url", crm_stub.url, "--db", str(db), "--check-dup", "1", "--check-dnc",
                           "--concurrency", "4"],
                          capture_output=True, text=True, timeout=120, env=installed_plugin(tmp_path))
    assert proc.returncode == 0, proc.stderr
    records = sorted((json.loads(line) for line in proc.stdout.splitlines()), key=lambda r: r["source_row"])
    assert [(r["source_row"], r["action"], r["code"], r["lead_id"]) for r in records] == [
        (2, "duplicate", 6009, None), (3, "created", 200, "1"), (4, "duplicate", 6009, None),
        (5, "rejected", 6008, None)]
    assert records[0]["dnc_added"] and records[2]["decided_by"] == "check_dup"
    assert not db.exists()  # the plugin's store answered, not SQLite


def test_serve_on_the_memory_store_plugin(tmp_path, crm_stub):
    crm_stub.answer("5550108101", {"total": 1, "results": [{"id": "9", "properties": {"lifecyclestage": "lead"}}]})
    plugin = MemoryStorePlugin()
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(plugin)
    host = Host.open(WORKFLOW, registry=Registry.from_plugins(pm), crm_url=crm_stub.url, environ=ENV)
    assert host.store is plugin.store
    settings = ServeSettings(workflow=WORKFLOW, tokens=[TOKEN], crm_url=crm_stub.url, environ=ENV)
    with ServerThread(create_app(settings, host)) as server, httpx.Client(base_url=server.url) as c:
        created = insert(c, phone_number="5550108100", first_name="Ada", email="ada@example.com")
        lead_id = created["data"]["lead_id"]
        assert insert(c, phone_number="5550108100")["existing_lead_id"] == lead_id  # check_dup 1 on the store
        assert insert(c, phone_number="5550108101", check_dup="0")["row"] == "row 2 (known)"
        key = {"Idempotency-Key": "order-1"}
        first = c.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "100",
                                                 "phone_number": "5550108102"}, headers=key).json()
        again = c.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "100",
                                                 "phone_number": "5550108102"}, headers=key).json()
        assert first == again and first["success"] is True
        found = c.post("/v1/leads/search", data={"auth_token": TOKEN, "email": "ADA@example.com"}).json()
        assert found["data"]["total"] == "1" and found["data"]["entries"][0]["lead_id"] == lead_id
        added = c.post("/v1/dnc/insert", data={"auth_token": TOKEN, "phone_number": "5550108103",
                                               "phone_code": "1", "reason": "asked"}).json()
        assert added["success"] is True
        assert insert(c, phone_number="5550108103", check_dnc="1")["code"] == 6024
        dnc = c.get("/v1/dnc/search", params={"auth_token": TOKEN}).json()
        assert dnc["data"]["total"] == 1 and dnc["data"]["entries"][0]["reason"] == "asked"
        history = c.get("/v1/decisions", params={"auth_token": TOKEN, "phone": "5550108100"}).json()
        assert [d["action"] for d in history["data"]["entries"]] == ["created", "duplicate"]
        assert c.get("/healthz").json()["ok"] is True
    assert plugin.store.counts() == {"leads": 2, "dnc": 1, "decisions": 5} and plugin.store.closed
