"""The circuit breaker per connection: the state machine on a hand-driven
clock, then a CRM that refuses connections over real loopback sockets
(1,000 leads through `run`'s engine, and `serve`'s /healthz and /metrics)."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from dupcheck_plugin.connection.breaker import CALL, CLOSED, HALF_OPEN, OPEN, PROBE, CircuitBreaker
from dupcheck_plugin.engine.runner import aiter_items
from dupcheck_plugin.host import Host as Engine
from dupcheck_plugin.server import ServeSettings, create_app
from dupcheck_plugin.sim import SimulatorThread

from conftest import CONTACTS, write_workflow
from test_serve import TOKEN, ServerThread

ROW = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}
ENV = {"HUBSPOT_TOKEN": "sim-token"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def admit(b: CircuitBreaker):
    return asyncio.run(b.admit())


def closed(clock: Clock, failures: int = 3) -> CircuitBreaker:
    """A breaker whose first call (its start-up probe) was answered."""
    b = CircuitBreaker("crm", failures=failures, cool_down=10, clock=clock)
    assert b.state == HALF_OPEN
    b.record(admit(b), None)
    assert b.state == CLOSED
    return b


def opened(clock: Clock, failures: int = 3) -> CircuitBreaker:
    b = closed(clock, failures)
    for _ in range(failures):
        b.record(admit(b), "connection", "refused")
    assert b.state == OPEN
    return b


def test_failures_in_a_row_open_it_and_an_answer_in_between_resets_the_count():
    b = closed(Clock())
    for error in ("timeout", "http_status", None, "connection", "connection"):
        b.record(admit(b), error)
    assert b.state == CLOSED and b.failed_in_a_row == 2
    b.record(admit(b), "connection")
    assert b.state == OPEN and b.snapshot()["times_opened"] == 1


@pytest.mark.parametrize("error", ["rate_limited", "unparsable", None])
def test_answers_that_show_the_crm_is_up_never_open_it(error):
    b = CircuitBreaker("crm", failures=1, clock=Clock())
    for _ in range(5):
        b.record(admit(b), error)
    assert b.state == CLOSED


def test_open_refuses_until_the_cool_down_then_exactly_one_probe_while_the_others_wait():
    clock = Clock()
    b = opened(clock)
    assert admit(b) is None and b.snapshot()["calls_refused"] == 1
    clock.now += 10

    async def go():
        probe = await b.admit()
        waiting = [asyncio.create_task(b.admit()) for _ in range(5)]
        await asyncio.sleep(0)
        assert probe == PROBE and b.state == HALF_OPEN and not any(t.done() for t in waiting)
        b.record(probe, None)
        return await asyncio.gather(*waiting)

    assert asyncio.run(go()) == [CALL] * 5
    assert b.state == CLOSED


def test_a_failed_probe_opens_it_for_another_cool_down_and_refuses_the_calls_that_waited():
    clock = Clock()
    b = opened(clock)
    clock.now += 10

    async def go():
        probe = await b.admit()
        waiting = [asyncio.create_task(b.admit()) for _ in range(3)]
        await asyncio.sleep(0)
        b.record(probe, "timeout")
        return await asyncio.gather(*waiting)

    assert asyncio.run(go()) == [None] * 3
    assert b.state == OPEN and admit(b) is None
    clock.now += 9.9
    assert admit(b) is None
    clock.now += 0.1
    assert admit(b) == PROBE
    assert b.snapshot()["times_opened"] == 1  # still the same outage


def test_at_start_up_calls_go_one_at_a_time_until_an_answer_or_failures_in_a_row():
    b = CircuitBreaker("crm", failures=3, cool_down=10, clock=Clock())

    async def go():
        tasks = [asyncio.create_task(b.admit()) for _ in range(20)]
        passes = []
        for _ in range(3):  # each failed call hands the probe to the next one waiting
            await asyncio.sleep(0)
            out = [t for t in tasks if t.done() and t not in passes]
            assert len(out) == 1 and out[0].result() == PROBE
            passes += out
            b.record(PROBE, "connection", "refused")
        return [await t for t in tasks if t not in passes]

    assert asyncio.run(go()) == [None] * 17 and b.state == OPEN


def test_one_failed_call_at_start_up_is_not_an_outage():
    b = CircuitBreaker("crm", failures=3, cool_down=10, clock=Clock())
    b.record(admit(b), "http_status")
    b.record(admit(b), None)
    assert b.state == CLOSED and b.snapshot()["times_opened"] == 0


def test_a_cancelled_probe_hands_the_probe_to_the_next_call():
    clock = Clock()
    b = opened(clock)
    clock.now += 10
    b.release(admit(b))
    assert admit(b) == PROBE


def free_port() -> int:
    """A loopback port nobody listens on (bound, then closed): connections to it are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leads(n: int):
    return aiter_items((i, {"phone_number": f"555{3_000_000 + i:07d}"}, None) for i in range(n))


def test_a_crm_refusing_connections_costs_a_handful_of_calls_then_the_breaker_closes_again(tmp_path):
    port = free_port()
    cool_down = 1.0
    wf = write_workflow(tmp_path, [ROW], connect={
        "url": f"http://127.0.0.1:{port}", "retry": {"attempts": 3, "backoff": 0.01},
        "breaker": {"failures": 5, "cool_down": cool_down}}, on_error={"action": "create", "status": "NOTCHECKED"})
    concurrency = 32

    async def go():
        async with Engine.open(str(wf), db=str(tmp_path / "d.db"), environ=ENV) as engine:
            records = []
            t0 = time.perf_counter()
            summary = await engine.run(leads(1000), concurrency=concurrency, on_record=records.append)
            elapsed = time.perf_counter() - t0
            down = engine.health()["crm"]["breaker"]
            # the CRM comes back on the same port; the first call after the cool-down probes it
            with SimulatorThread(CONTACTS, port=port):
                deadline = time.monotonic() + 60
                while True:
                    back = await engine.decide({"phone_number": "5550100170"})
                    if back["checked"] or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(cool_down / 10)
                after = [await engine.decide({"phone_number": "5550100003"}) for _ in range(3)]
            return summary, records, elapsed, down, back, after, engine.health()["crm"]["breaker"]

    summary, records, elapsed, down, back, after, up = asyncio.run(go())
    assert summary.total == 1000 and len(records) == 1000
    assert all(r["action"] == "created" and r["status"] == "NOTCHECKED" and not r["checked"] for r in records)
    assert {r["crm"]["error"] for r in records} == {"connection", "circuit_open"}
    refused = [r for r in records if r["crm"]["error"] == "circuit_open"]
    assert all(not r["crm"]["called"] and r["crm"]["attempts"] == 0 and "circuit breaker open" in r["crm"]["error_detail"]
               for r in refused)
    calls = sum(r["crm"]["attempts"] for r in records)
    # one call at a time until 5 failed, then at most one probe per cool-down
    assert calls <= 5 + elapsed / cool_down + 1, (calls, elapsed)
    assert len(refused) >= 1000 - calls
    print(f"\n1000 leads, CRM refusing: {calls} calls, {elapsed:.2f}s, breaker {down['state']}")
    assert down["state"] in ("open", "half_open") and down["times_opened"] == 1
    assert back["checked"] and back["crm"]["error"] is None
    assert up["state"] == "closed" and all(r["action"] == "duplicate" for r in after)


def test_serve_shows_the_breaker_in_healthz_and_metrics(tmp_path):
    wf = write_workflow(tmp_path, [ROW], connect={"url": f"http://127.0.0.1:{free_port()}",
                                                  "retry": {"attempts": 1}, "breaker": {"failures": 2, "cool_down": 600}})
    settings = ServeSettings(workflow=str(wf), tokens=[TOKEN], db=str(tmp_path / "s.db"), environ=ENV)
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        health = c.get("/healthz").json()
        assert health["connections"]["crm"]["breaker"]["state"] == "half_open"  # the first call probes
        for phone in ("5553100001", "5553100002", "5553100003"):
            r = c.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "1", "phone_number": phone})
            assert r.json()["success"] is True  # on_error creates the lead NOTCHECKED
        breaker = c.get("/healthz").json()["connections"]["crm"]["breaker"]
        assert breaker["state"] == "open" and breaker["calls_refused"] == 1 and breaker["times_opened"] == 1
        assert "connection" in breaker["last_failure"]
        metrics = c.get("/metrics").text
        assert 'dupcheck_crm_breaker_state{connection="crm",dupcheck_crm_breaker_state="open"} 1.0' in metrics
        assert 'dupcheck_crm_breaker_refused_total{connection="crm"} 1.0' in metrics
        last = c.get("/v1/decisions", params={"auth_token": TOKEN, "phone": "5553100003"}).json()["data"]["entries"][-1]
        assert last["crm"]["error"] == "circuit_open" and last["crm"]["called"] is False
