"""The host API's promises a workflow engine builds on: each lead decided with
the workflow it started with (swap), plain-data step results."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from dupcheck_plugin.host import CHECK_OUTCOME, CRM_ANSWER, CrmAnswer, CrmNode, Host, Intake, Node, Workflow

from conftest import write_workflow

ROW = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}
ENV = {"HUBSPOT_TOKEN": "t"}


def test_a_swapped_workflow_decides_the_leads_that_start_after_it(tmp_path, crm_stub, memory_store):
    old_path = write_workflow(tmp_path, [ROW], name="old", default_status="OLD")
    new_path = write_workflow(tmp_path, [ROW], name="new", default_status="NEW2")
    held = threading.Event()
    crm_stub.answer("5550109101", {"total": 0}, gate=held)

    async def go():
        host = Host.open(str(old_path), store=memory_store, crm_url=crm_stub.url, environ=ENV)
        async with host:
            first = asyncio.ensure_future(host.decide({"phone_number": "5550109101"}))
            await asyncio.to_thread(crm_stub.wait_for_requests, 1)  # the lead is in flight with "old"
            old = host.swap(Workflow.load(str(new_path), crm_url=crm_stub.url, environ=ENV))
            second = await host.decide({"phone_number": "5550109102"})
            held.set()
            first = await first
            await old.aclose()
            return first, second

    first, second = asyncio.run(go())
    assert (first["workflow"], first["status"]) == ("old", "OLD")
    assert (second["workflow"], second["status"]) == ("new", "NEW2")


def test_step_results_round_trip_through_json(tmp_path, crm_stub):
    crm_stub.answer("5550109201", {"total": 2, "results": [{"id": "44"}]}, headers={"X-Req": "1"})
    wf = write_workflow(tmp_path, [ROW])

    async def go():
        workflow = Workflow.load(str(wf), crm_url=crm_stub.url, environ=ENV)
        try:
            intake = workflow.admit({"phone_number": "(555) 010-9201", "first_name": "Ada"})
            answer = await workflow.ask_crm(intake)
        finally:
            await workflow.aclose()
        return workflow, intake, answer

    workflow, intake, answer = asyncio.run(go())
    again = Intake.from_json(json.loads(json.dumps(intake.as_json())))
    assert again == intake and again.phone_e164 == "+15550109201"
    copied = CrmAnswer.from_json(json.loads(json.dumps(answer.as_json())))
    assert copied == answer and copied.headers["x-req"] == "1"
    assert workflow.decide(copied) == workflow.decide(answer) and workflow.decide(copied).action == "duplicate"
    refused = workflow.admit({"phone_number": "12"})
    assert Intake.from_json(json.loads(json.dumps(refused.as_json()))) == refused
    assert refused.refused.code == 6008


class StandIn(CrmNode):
    """A CRM node's stand-in, as a workflow engine's host puts one in place."""

    def __init__(self, body):
        self.body = body

    async def run(self, lead):
        return CrmAnswer(status_code=200, headers={}, body=self.body, latency_ms=0.0)

    async def aclose(self):
        return None


def test_a_host_can_run_the_crm_node_alone_and_the_rest_with_a_stand_in(tmp_path, crm_stub):
    """What a workflow engine does: the CRM node as its own step (one attempt:
    the engine retries, after the CRM's Retry-After), the rest of the graph
    around a stand-in that hands back that step's answer."""
    crm_stub.answer("5550109301", {"status": "error", "errorType": "RATE_LIMIT"}, status=429,
                    headers={"Retry-After": "7"})
    wf = write_workflow(tmp_path, [ROW], connect={"limits": {"requests": 20, "per_seconds": 2}})

    async def go():
        workflow = Workflow.load(str(wf), crm_url=crm_stub.url, environ=ENV, single_attempt=True)
        try:
            (crm_id,) = workflow.node_ids(CRM_ANSWER)
            (check_id,) = workflow.node_ids(CHECK_OUTCOME)
            limited = await workflow.run_node(crm_id, workflow.admit({"phone_number": "5550109301"}))
            stood_in = workflow.with_nodes({crm_id: StandIn({"total": 1, "results": [{"id": "9"}]})})
            decision, answer = await stood_in.evaluate(workflow.admit({"phone_number": "5550109302"}))
            return crm_id, check_id, workflow.nodes[crm_id].declared_rate, limited, decision, answer, stood_in
        finally:
            await workflow.aclose()

    crm_id, check_id, rate, limited, decision, answer, stood_in = asyncio.run(go())
    assert (crm_id, check_id) == ("crm", "check")
    assert rate == 10.0  # 20 requests per 2 seconds
    assert (limited.error, limited.attempts, limited.retry_after) == ("rate_limited", 1, 7.0)
    assert len(crm_stub.requests) == 1  # not retried: the host would
    assert decision.action == "duplicate" and answer.body["results"] == [{"id": "9"}]
    assert isinstance(stood_in.nodes["crm"], StandIn) and stood_in.nodes["check"] is not None
    with pytest.raises(KeyError, match="no node nope"):
        stood_in.with_nodes({"nope": StandIn(None)})
    with pytest.raises(TypeError, match="node 'crm' of workflow 'wf' needs a CrmNode, got a Node"):
        stood_in.with_nodes({"crm": Node()})


def test_a_host_builds_its_record_complete_with_its_own_clock_and_key(tmp_path):
    """A workflow engine's host gives the record its time (a replay-safe clock),
    key and run in one call: nothing is added to the record afterwards."""
    workflow = Workflow.load(str(write_workflow(tmp_path, [ROW])), offline=True, environ=ENV)
    intake = workflow.admit({"phone_number": "5550109301"})
    decision = workflow.decide(None)
    run = {"workflow_id": "dupcheck/w/+15550109301", "run_id": "r1", "request_id": "q1"}
    record = workflow.record(intake, decision, None, idempotency_key="temporal/q1",
                             decided_at="2026-01-02T03:04:05.678+00:00", temporal=run)
    assert (record["decided_at"], record["idempotency_key"], record["temporal"]) == \
        ("2026-01-02T03:04:05.678+00:00", "temporal/q1", run)
    assert "api" not in record  # not an API insert
    plain = workflow.record(intake, decision, None)  # the embedded engine's run: its clock, no key, no run
    assert plain["decided_at"] > "2026" and "idempotency_key" not in plain and "temporal" not in plain
