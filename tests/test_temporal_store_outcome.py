"""The Temporal store activity when the store cannot learn a write's outcome
(StoreOutcomeUnknown: a database connection lost at its COMMIT, the server out
of reach): the lead's key, looked up, says whether the write landed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from dupcheck_plugin.host import Host, StoreOutcomeUnknown
from dupcheck_plugin.temporal.activities import STORE_UNKNOWN, LeadActivities
from dupcheck_plugin.testing import MemoryStore

WORKFLOW = Path(__file__).resolve().parents[1] / "workflows" / "hubspot_dupcheck.toml"


class LostCommit(MemoryStore):
    """Every write raises StoreOutcomeUnknown; ``lands``: after storing the batch all the same."""

    def __init__(self, lands: bool):
        super().__init__()
        self.lands = lands
        self.writes = 0

    def apply(self, commits):
        self.writes += 1
        if self.lands:
            super().apply(commits)
        raise StoreOutcomeUnknown("the connection was lost at COMMIT and the server could not be asked")


def lead_record(request_id: str) -> dict:
    return {"lead": {"phone_number": "5550100999", "phone_code": "1", "list_id": "100"}, "phone_e164": "+15550100999",
            "rules_row": None, "decided_by": "default_status", "action": "created", "status": "NEW",
            "dnc_added": False, "success": True, "code": 200, "text": "Lead created", "crm": {"status_code": 200},
            "request": None, "decided_at": "2026-11-29T10:00:00.000+00:00", "workflow": "hubspot_dupcheck",
            "idempotency_key": f"temporal/{request_id}", "temporal": {"request_id": request_id}, "lead_id": None}


def store_decision(store: LostCommit, record: dict):
    async def go():
        async with Host.open(str(WORKFLOW), store=store, environ={"HUBSPOT_TOKEN": "t"}) as host:
            return await LeadActivities(host).store_decision(record)

    return asyncio.run(go())


def test_a_write_that_landed_is_found_by_its_key_and_is_the_answer():
    store = LostCommit(lands=True)
    stored = store_decision(store, lead_record("r-1"))
    assert stored["idempotency_key"] == "temporal/r-1" and stored["lead_id"] is not None
    assert store.writes == 1 and len(store.records) == 1


def test_a_write_that_did_not_land_is_retried_by_temporal_not_refused_for_good():
    store = LostCommit(lands=False)
    with pytest.raises(ApplicationError) as err:
        store_decision(store, lead_record("r-2"))
    assert err.value.type == STORE_UNKNOWN and not err.value.non_retryable
    assert store.writes == 1 and store.records == []
