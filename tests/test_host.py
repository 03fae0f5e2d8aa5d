"""The host API's promises a workflow engine builds on: each lead decided with
the workflow it started with (swap), plain-data step results."""

from __future__ import annotations

import asyncio
import json
import threading

from dupcheck_plugin.host import CrmAnswer, Host, Intake, Workflow

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
