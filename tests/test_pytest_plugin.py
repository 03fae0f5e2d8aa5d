"""The pytest plugin shipped with the package (pytest11 entry point): its
fixtures are there in any test session, here as in a plugin author's."""

from __future__ import annotations

import threading

import httpx

HUBSPOT = "hubspot_dupcheck"  # rows: customer (DNC), opportunity (lead DUPOPP), known (total > 0)


def contact(stage: str) -> dict:
    return {"total": 1, "results": [{"id": "77", "properties": {"lifecyclestage": stage}}]}


def test_canned_answers_per_phone_decide_each_lead(dupcheck_decide, crm_stub, memory_store):
    crm_stub.answer("5550107001", contact("customer"))
    crm_stub.answer("+15550107002", contact("opportunity"))
    records = dupcheck_decide(HUBSPOT, [{"phone_number": "5550107001"}, {"phone_number": "5550107002"},
                                        {"phone_number": "5550107003"}])
    assert [(r["action"], r["rules_row_name"]) for r in records] == [
        ("duplicate", "customer"), ("created", "opportunity"), ("created", None)]
    assert [r.phone for r in crm_stub.requests] == ["+15550107001", "+15550107002", None]
    assert memory_store.counts() == {"leads": 2, "dnc": 1, "decisions": 3}
    assert records[0]["crm_record_id"] == "77"


def test_statuses_and_errors_reach_the_rules(dupcheck_decide, crm_stub):
    crm_stub.answer("5550107010", {"message": "down"}, status=503)
    crm_stub.answer("5550107011", "not json", status=200)
    records = dupcheck_decide(HUBSPOT, [{"phone_number": "5550107010"}, {"phone_number": "5550107011"}])
    assert [r["crm"]["error"] for r in records] == ["http_status", "unparsable"]
    assert all(r["status"] == "NOTCHECKED" and not r["checked"] for r in records)


def test_a_held_answer_is_released_by_the_test_not_by_a_clock(crm_stub):
    gate = threading.Event()
    crm_stub.answer("5550107020", {"total": 0}, gate=gate)
    result: list[int] = []
    caller = threading.Thread(target=lambda: result.append(
        httpx.post(crm_stub.url + "/search", json={"phone": "+15550107020"}, timeout=30).status_code))
    caller.start()
    assert crm_stub.wait_for_requests(1, timeout=30)
    assert result == []  # held until the test says so
    gate.set()
    caller.join(30)
    assert result == [200]
