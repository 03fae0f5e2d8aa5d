"""The connection limiter: budgets, policies, lasting over-limit answers, quota headers.

Counted on the simulator (how many requests reached it), never timed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from conftest import write_workflow
from test_batch import named_salesforce  # salesforce_soql with X-Lead-Name = "{{ first_name }}"
from dupcheck_plugin.connection.quota import read_quota
from dupcheck_plugin.engine.runner import Host, aiter_items

ENV = {"HUBSPOT_TOKEN": "hs-token", "SALESFORCE_TOKEN": "sf-token"}
ROW = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}
SF_ROW = {"key": "totalSize", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}
ON_ERROR = {"action": "create", "status": "NOTCHECKED"}


def leads(n: int, start: int = 0) -> list[dict]:
    return [{"phone_number": f"555{7000000 + start + i}", "first_name": f"F{i}"} for i in range(n)]


async def _run(engine: Host, batch: list[dict], concurrency: int) -> list[dict]:
    records: list[dict] = []
    items = aiter_items((i, lead, None) for i, lead in enumerate(batch, 1))
    await engine.run(items, concurrency=concurrency, on_record=records.append)
    return sorted(records, key=lambda r: r["source_row"])


def run(wf: Path, batch: list[dict], sim, db: Path, *, concurrency: int = 4, interactive: bool = False) -> list[dict]:
    async def go():
        async with Host.open(str(wf), db=str(db), crm_url=sim.url, environ=ENV, interactive=interactive) as engine:
            return await _run(engine, batch, concurrency)

    return asyncio.run(go())


def requests_seen(sim) -> int:
    return httpx.get(sim.url + "/_sim/stats").json()["requests"]


def test_a_spent_budget_with_on_error_sends_no_more_calls(tmp_path, crm_sim):
    wf = write_workflow(tmp_path, [ROW], connect={"limits": {"budget": 5, "when_spent": "on_error"}}, on_error=ON_ERROR)
    records = run(wf, leads(12), crm_sim, tmp_path / "d.db")
    assert requests_seen(crm_sim) == 5
    spent = [r for r in records if r["crm"]["error"] == "budget_spent"]
    assert len(spent) == 7 and len(records) == 12
    assert all(r["status"] == "NOTCHECKED" and r["crm"]["called"] is False for r in spent)
    assert all(r["checked"] for r in records if r not in spent)


def test_with_wait_leads_queue_until_the_budget_window_reopens(tmp_path, crm_sim):
    limits = {"budget": 3, "budget_seconds": 0.3, "when_spent": "wait"}
    wf = write_workflow(tmp_path, [ROW], connect={"limits": limits}, on_error=ON_ERROR)
    records = run(wf, leads(9), crm_sim, tmp_path / "d.db")
    assert requests_seen(crm_sim) == 9
    assert all(r["checked"] and r["crm"]["error"] is None for r in records)


def test_serve_waits_at_most_max_wait_then_on_error_decides(tmp_path, crm_sim):
    limits = {"budget": 1, "when_spent": "wait", "max_wait": 0.2}
    wf = write_workflow(tmp_path, [ROW], connect={"limits": limits}, on_error=ON_ERROR)
    records = run(wf, leads(3), crm_sim, tmp_path / "d.db", interactive=True)
    assert requests_seen(crm_sim) == 1
    assert sorted(r["crm"]["error"] or "ok" for r in records) == ["budget_spent", "budget_spent", "ok"]


def test_one_limiter_is_shared_by_every_user_of_the_same_credentials(tmp_path, crm_sim):
    """Two engines (two workflows, say) in one process with the same token share one budget."""
    wf = write_workflow(tmp_path, [ROW], connect={"limits": {"budget": 4, "when_spent": "on_error"}}, on_error=ON_ERROR)

    async def go():
        async with Host.open(str(wf), db=str(tmp_path / "a.db"), crm_url=crm_sim.url, environ=ENV) as a, \
                Host.open(str(wf), db=str(tmp_path / "b.db"), crm_url=crm_sim.url, environ=ENV) as b:
            return await asyncio.gather(_run(a, leads(5), 2), _run(b, leads(5, 100), 2))

    first, second = asyncio.run(go())
    assert requests_seen(crm_sim) == 4
    assert sum(r["crm"]["error"] is None for r in first + second) == 4


def test_other_credentials_get_their_own_limiter(tmp_path, crm_sim):
    wf = write_workflow(tmp_path, [ROW], connect={"limits": {"budget": 4, "when_spent": "on_error"}}, on_error=ON_ERROR)

    async def go():
        async with Host.open(str(wf), db=str(tmp_path / "a.db"), crm_url=crm_sim.url, environ=ENV) as a, \
                Host.open(str(wf), db=str(tmp_path / "b.db"), crm_url=crm_sim.url,
                            environ={**ENV, "HUBSPOT_TOKEN": "another-portal"}) as b:
            return await asyncio.gather(_run(a, leads(5), 2), _run(b, leads(5, 100), 2))

    asyncio.run(go())
    assert requests_seen(crm_sim) == 8


def test_salesforce_403_request_limit_stops_the_connection_instead_of_retrying(tmp_path, crm_sim):
    crm_sim.set_knobs(rate_limit_rate=1.0)  # every answer: 403 REQUEST_LIMIT_EXCEEDED, no Retry-After
    wf = write_workflow(tmp_path, [SF_ROW], adaptor="salesforce_soql", on_error=ON_ERROR,
                        connect={"limits": {"concurrency": 1, "when_spent": "on_error"},
                                 "retry": {"attempts": 3, "backoff": 0}})
    records = run(wf, leads(10), crm_sim, tmp_path / "d.db")
    assert requests_seen(crm_sim) == 1  # not 10 leads x 3 attempts
    assert [r["crm"]["error"] for r in records] == ["budget_spent"] * 10
    assert all(r["status"] == "NOTCHECKED" for r in records)


def test_the_budget_warning_is_logged_at_80_percent(tmp_path, crm_sim, caplog):
    wf = write_workflow(tmp_path, [ROW], connect={"limits": {"budget": 10}}, on_error=ON_ERROR)
    with caplog.at_level(logging.WARNING, logger="dupcheck_plugin.connection.limiter"):
        run(wf, leads(7), crm_sim, tmp_path / "a.db")
        assert not [r for r in caplog.records if "of its daily request budget" in r.getMessage()]
        run(wf, leads(8), crm_sim, tmp_path / "b.db")  # a new process's worth: 8 of 10
    warned = [r.getMessage() for r in caplog.records if "of its daily request budget" in r.getMessage()]
    assert warned == ["connection crm has used 80% of its daily request budget"]


def test_quota_headers_of_each_vendor_are_read():
    hs = read_quota(httpx.Headers({"X-HubSpot-RateLimit-Remaining": "0", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                                   "X-HubSpot-RateLimit-Daily": "250000", "X-HubSpot-RateLimit-Daily-Remaining": "50000"}))
    assert (hs.window_remaining, hs.window_resets_in, hs.daily_used, hs.daily_limit) == (0, 10.0, 200000, 250000)
    sf = read_quota(httpx.Headers({"Sforce-Limit-Info": "api-usage=81000/100000"}))
    assert (sf.window_remaining, sf.daily_used, sf.daily_limit) == (None, 81000, 100000)
    ghl = read_quota(httpx.Headers({"X-RateLimit-Remaining": "3", "X-RateLimit-Interval-Milliseconds": "10000",
                                    "X-RateLimit-Limit-Daily": "200000", "X-RateLimit-Daily-Remaining": "0"}))
    assert (ghl.window_remaining, ghl.window_resets_in, ghl.daily_used, ghl.daily_limit) == (3, 10.0, 200000, 200000)
    pd = read_quota(httpx.Headers({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}))
    assert (pd.window_remaining, pd.window_resets_in) == (0, 2.0)
    assert read_quota(httpx.Headers({"Sforce-Limit-Info": "garbage"})) == read_quota({})


@pytest.mark.parametrize("limits,errors", [
    ({"when_spent": "on_error"}, [None, "budget_spent"]),  # the first answer says the day is spent
    (False, [None, None]),  # limits = false: the limiter is off, quota headers are not read
])
def test_quota_headers_stop_a_connection_unless_its_limits_are_off(tmp_path, limits, errors):
    spent = {"X-HubSpot-RateLimit-Daily": "10", "X-HubSpot-RateLimit-Daily-Remaining": "0"}
    wf = write_workflow(tmp_path, [ROW], connect={"limits": limits}, on_error=ON_ERROR)

    async def go():
        crm = httpx.MockTransport(lambda request: httpx.Response(200, json={"total": 0, "results": []}, headers=spent))
        async with Host.open(str(wf), db=str(tmp_path / "d.db"), environ=ENV, http_transport=crm) as engine:
            return await _run(engine, leads(2), concurrency=1)

    assert [r["crm"]["error"] for r in asyncio.run(go())] == errors


@pytest.mark.e2e
def test_at_the_declared_limits_the_simulator_refuses_nothing(tmp_path):
    """HubSpot's 4 searches per second, in real time (the limiter's 5% window margin is 50 ms of
    jitter): no 429 however many leads are in flight."""
    from dupcheck_plugin.resources import shipped_dir
    from dupcheck_plugin.sim import SimulatorThread
    from dupcheck_plugin.sim.limits import Limits as SimLimits

    wf = write_workflow(tmp_path, [ROW], on_error=ON_ERROR, connect={"limits": {"requests": 4, "per_seconds": 1}})
    with SimulatorThread(shipped_dir("examples") / "contacts.csv", limits=SimLimits(time_scale=1)) as sim:
        records = run(wf, leads(12), sim, tmp_path / "d.db", concurrency=12)
        hubspot = httpx.get(sim.url + "/_sim/stats").json()["vendors"]["hubspot"]
    assert hubspot["requests"] == 12 and hubspot["over_limit"] == 0
    assert all(r["checked"] for r in records)


def test_the_answer_cache_reuses_an_answer_for_the_same_normalised_phone(tmp_path, crm_sim):
    wf = write_workflow(tmp_path, [ROW], on_error=ON_ERROR, connect={"cache": {"ttl": 600}})
    same = [{"phone_number": "(555) 010-0002"}, {"phone_number": "+1 555 010 0002"}, {"phone_number": "5550100003"}]
    records = run(wf, same, crm_sim, tmp_path / "d.db", concurrency=1)
    assert requests_seen(crm_sim) == 2
    assert [r["crm"]["cached"] for r in records] == [False, True, False]
    assert [r["action"] for r in records[:2]] == ["duplicate", "duplicate"]  # the cached answer decides alike
    assert records[1]["crm"]["called"] is False and records[1]["crm_record_id"] == records[0]["crm_record_id"]


def test_without_a_cache_every_lead_asks_the_crm(tmp_path, crm_sim):
    wf = write_workflow(tmp_path, [ROW], on_error=ON_ERROR)
    run(wf, [{"phone_number": "5550100002"}] * 3, crm_sim, tmp_path / "d.db", concurrency=1)
    assert requests_seen(crm_sim) == 3


@pytest.mark.parametrize("transport", ["h1", "aiohttp", "httpx"])
def test_a_request_that_cannot_be_sent_takes_no_slot_of_the_budget(tmp_path, crm_sim, transport):
    # before: the limiter counted the refused leads' requests (1 and 3 of the budget's 5) although
    # they never reached the CRM; 2 good leads went to on_error with budget_spent for nothing
    limits = {"budget": 5, "when_spent": "on_error"}
    wf = write_workflow(tmp_path, [SF_ROW], adaptor=named_salesforce(tmp_path).stem, on_error=ON_ERROR,
                        connect={"limits": limits, "transport": transport})
    batch = leads(10)
    for i in (0, 2):
        batch[i]["first_name"] = "Bad\x01Name"
    records = run(wf, batch, crm_sim, tmp_path / "d.db", concurrency=1)
    assert requests_seen(crm_sim) == 5
    assert [r["crm"]["error"] for r in records] == ["render", None, "render", None, None, None, None,
                                                    "budget_spent", "budget_spent", "budget_spent"]
    assert [r["code"] for r in records if r["crm"]["error"] == "render"] == [6023, 6023]


def test_a_batch_that_cannot_be_sent_takes_no_slot_of_the_budget(tmp_path, crm_sim):
    # a batch is sent with its first lead's headers: lead 1's refused batch, then lead 1 alone,
    # took two of the budget's 3 slots before (1 request reached the CRM); now every slot is a request
    limits = {"budget": 3, "when_spent": "on_error"}
    wf = write_workflow(tmp_path, [SF_ROW], adaptor=named_salesforce(tmp_path).stem, on_error=ON_ERROR,
                        connect={"limits": limits, "batch": {"max_leads": 20}})
    batch = leads(200)
    batch[0]["first_name"] = "Bad\x01Name"
    records = run(wf, batch, crm_sim, tmp_path / "d.db", concurrency=64)
    assert requests_seen(crm_sim) == 3
    assert records[0]["crm"]["error"] == "render" and records[0]["code"] == 6023
    asked = [r for r in records if r["crm"]["error"] is None]
    assert len(asked) > 3 and max(r["crm"]["batch_size"] for r in asked) > 1
    assert {r["crm"]["error"] for r in records[1:]} <= {None, "budget_spent"}


def test_in_serve_a_lone_lead_that_cannot_be_sent_takes_no_slot_of_a_batching_connection(tmp_path, crm_sim):
    # serve sends a lone lead at once as its own request: the batcher took a slot for it before
    # its request was found unsendable, and no other lead was waiting to use that slot
    limits = {"budget": 2, "when_spent": "on_error"}
    wf = write_workflow(tmp_path, [SF_ROW], adaptor=named_salesforce(tmp_path).stem, on_error=ON_ERROR,
                        connect={"limits": limits, "batch": {"max_leads": 20}})
    batch = leads(4)
    batch[0]["first_name"] = "Bad\x01Name"
    records = run(wf, batch, crm_sim, tmp_path / "d.db", concurrency=1, interactive=True)
    assert requests_seen(crm_sim) == 2
    assert [r["crm"]["error"] for r in records] == ["render", None, None, "budget_spent"]
    assert records[0]["code"] == 6023 and records[0]["crm"]["attempts"] == 0
