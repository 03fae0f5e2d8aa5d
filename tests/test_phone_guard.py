"""One phone at a time across processes: the store's phone guard (SQLite: byte locks on a
file; PostgreSQL: advisory locks), and two `serve` processes on one store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from conftest import unlimited_copy
from dupcheck_plugin.store.phone_guard import FilePhoneGuard

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-token-0123456789"

_HOLDER = """
import asyncio, sys
from dupcheck_plugin.store.phone_guard import FilePhoneGuard
guard = FilePhoneGuard(sys.argv[1])
async def main():
    slot = guard.take(sys.argv[2])
    assert slot is not None
    print("held", flush=True)
    sys.stdin.readline()
    guard.release(slot)
    print("released", flush=True)
    sys.stdin.readline()
asyncio.run(main())
"""


async def hold(guard, phone: str) -> int:
    """``phone`` held as the host holds it: taken at once, or waited for."""
    slot = guard.take(phone)
    return slot if slot is not None else await guard.wait(phone)


async def _waits(acquire, seconds: float = 0.3) -> bool:
    """Whether ``acquire()`` is still waiting after ``seconds`` (it is then cancelled)."""
    try:
        await asyncio.wait_for(acquire(), seconds)
        return False
    except asyncio.TimeoutError:
        return True


def test_a_phone_held_by_another_process_waits_until_it_is_released(tmp_path):
    lock_file = str(tmp_path / "d.db-phones.lock")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, lock_file, "+15550001111"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    guard = FilePhoneGuard(lock_file)
    try:
        assert holder.stdout.readline().strip() == "held"

        async def go() -> None:
            assert guard.take("+15550001111") is None
            assert await _waits(lambda: guard.wait("+15550001111"))
            guard.release(await hold(guard, "+15550002222"))  # another phone does not wait
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert await asyncio.to_thread(holder.stdout.readline) == "released\n"
            guard.release(await asyncio.wait_for(hold(guard, "+15550001111"), 5))

        asyncio.run(go())
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(10)
        guard.close()


@pytest.mark.services
def test_postgres_sessions_wait_for_each_other_and_count_a_slot_taken_twice(pg_url, monkeypatch):
    from dupcheck_plugin.store import pg_guard

    a, b = pg_guard.PgPhoneGuard(pg_url, "test"), pg_guard.PgPhoneGuard(pg_url, "test")  # two processes' guards

    async def go() -> None:
        held = await hold(a, "+15550003333")
        assert await _waits(lambda: hold(b, "+15550003333"))
        b.release(await hold(b, "+15550004444"))
        # two phones of one slot in one session: both held, and the slot free only once both are released
        monkeypatch.setattr(pg_guard, "slot_of", lambda phone: 7)
        first, second = await hold(a, "+15550005555"), await hold(a, "+15550006666")
        a.release(first)
        assert await _waits(lambda: hold(b, "+15550007777"))
        a.release(second)
        b.release(await asyncio.wait_for(hold(b, "+15550007777"), 5))
        a.release(held)
        await asyncio.sleep(0.05)  # the releases go out

    try:
        asyncio.run(go())
    finally:
        a.close()
        b.close()


def _start_serve(workflow: Path, db: str, sim_url: str) -> tuple[subprocess.Popen, str, list[str]]:
    env = {**os.environ, "HUBSPOT_TOKEN": "sim-token", "DUPCHECK_API_TOKENS": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "dupcheck_plugin.cli.main", "serve", str(workflow), "--db", db,
                             "--port", "0", "--crm-url", sim_url], env=env, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "running on" in line:
            url = json.loads(line)["msg"].split(" ")[3]
            break
    else:
        raise AssertionError("serve did not start")
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()  # a full pipe would stall it
    return proc, url, log


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def test_two_serve_processes_on_one_store_create_one_lead_for_a_phone_posted_to_both(store, crm_sim, tmp_path,
                                                                                      request):
    """The CRM answers in 400 ms; the same new phone is posted to both processes at once,
    check_dup 1. Before, each process held only its own lock: both asked the CRM, found
    nothing, and created a lead each."""
    from dupcheck_plugin.sim import Knobs
    from dupcheck_plugin.store.sqlite import SqliteStore

    crm_sim.set_knobs(Knobs(latency_ms=400))
    db = str(tmp_path / "shared.db") if store == "sqlite" else request.getfixturevalue("pg_url")
    workflow = unlimited_copy(ROOT / "workflows" / "hubspot_dupcheck.toml", tmp_path)
    servers = [_start_serve(workflow, db, crm_sim.url) for _ in range(2)]
    try:
        phones = [f"+1555077{i:04d}" for i in range(5)]

        async def post_each_to_both() -> list[list[dict]]:
            async with httpx.AsyncClient(timeout=30) as client:
                async def insert(url: str, phone: str) -> dict:
                    r = await client.post(url + "/v1/leads/insert", data={
                        "auth_token": TOKEN, "list_id": "1", "phone_number": phone, "check_dup": "1"})
                    return r.json()

                return [await asyncio.gather(*(insert(url, phone) for _, url, _ in servers)) for phone in phones]

        answers = asyncio.run(post_each_to_both())
    finally:
        for proc, _, _ in servers:
            proc.terminate()
        for proc, _, _ in servers:
            proc.wait(30)
    for phone, pair in zip(phones, answers):
        created = [a for a in pair if a.get("success")]
        refused = [a for a in pair if a.get("code") == 6009]
        assert len(created) == 1 and len(refused) == 1, (phone, pair)
        assert refused[0]["existing_lead_id"] == created[0]["data"]["lead_id"]
    if store == "sqlite":
        with SqliteStore(db) as s:
            assert [len(s.find_leads(phone)) for phone in phones] == [1] * 5
    else:
        from dupcheck_plugin.store.postgres import PostgresStore

        with PostgresStore(db) as s:
            assert [len(s.find_leads(phone)) for phone in phones] == [1] * 5


def test_a_postgres_guard_that_cannot_reach_its_server_says_so():
    from dupcheck_plugin.store.contract import StoreError
    from dupcheck_plugin.store.pg_guard import PgPhoneGuard

    guard = PgPhoneGuard("postgresql://dupcheck@127.0.0.1:1/db?connect_timeout=2", "the test's server")
    try:
        with pytest.raises(StoreError, match=r"^cannot lock a phone in PostgreSQL at the test's server: "
                                             r"connection failed: .*Connection refused"):
            asyncio.run(guard.wait("+15550001111"))
    finally:
        guard.close()


@pytest.mark.services
def test_a_host_closes_its_postgres_guard_in_its_event_loop(pg_url, crm_sim, tmp_path, monkeypatch):
    """The guard's connection is a socket the event loop (uvloop) watches. It was closed by
    store.close() in the thread that closes the store, under the loop's feet: a batched
    `run --check-dup 1` on PostgreSQL died of SIGABRT in 2 of 24 runs (exit 134, no word).
    Host.aclose now closes it in the loop first; the store's close finds nothing to finish."""
    from dupcheck_plugin.host import Host
    from dupcheck_plugin.store import pg_guard

    finished_off_loop: list[str] = []
    real_finish = pg_guard._finish
    monkeypatch.setattr(pg_guard, "_finish", lambda conn: (finished_off_loop.append(threading.current_thread().name),
                                                           real_finish(conn)))
    wf = unlimited_copy(ROOT / "workflows" / "hubspot_dupcheck.toml", tmp_path)

    async def go() -> list[dict]:
        async with Host.open(str(wf), db=pg_url, crm_url=crm_sim.url, environ={"HUBSPOT_TOKEN": "t"}) as host:
            return [await host.decide({"phone_number": f"555300{i:04d}"}, check_dup=1) for i in range(3)]

    records = asyncio.run(go())
    assert [r["action"] for r in records] == ["created"] * 3
    assert finished_off_loop == []


def test_a_phone_given_back_after_its_guard_closed_is_nothing_and_a_take_is_refused(tmp_path):
    """A lead whose write landed as its host closed gives its phone back after the lock file
    is closed (every lock went with it): that unlocked a byte of whatever file had reused the
    descriptor's number, or raised EBADF out of serve's shutdown (a text 500)."""
    from dupcheck_plugin.store.contract import StoreError

    guard = FilePhoneGuard(str(tmp_path / "d.db-phones.lock"))
    slot = guard.take("+15550001111")
    assert slot is not None
    guard.close()
    guard.release(slot)  # nothing to give back: no error
    with pytest.raises(StoreError, match="closed"):
        guard.take("+15550002222")
