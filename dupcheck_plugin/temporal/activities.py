"""The activities a lead workflow asks for: the I/O, through the public
host API (``dupcheck_plugin.host``) on the worker's :class:`Host`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ..host import Host, Intake, StoreError, StoreOutcomeUnknown
from .lead import TRANSIENT_CRM_ERRORS

STORE_REFUSED = "store_refused"
STORE_UNKNOWN = "store_outcome_unknown"  # retried: the write did not land (its key is not stored)


class SendPace:
    """This worker's CRM sends, evenly spaced: at most ``per_second`` in any
    second, with a quarter to spare for the jitter between a send here and its
    arrival at the CRM. Temporal's task-queue rate limit is an average: a
    worker that stalls (a busy machine) and then runs what it was handed
    meanwhile would otherwise send it all at once."""

    GUARD = 1.25  # a tenth was not enough: at load 10 the simulator saw 21 in one second at a 20/s limit

    def __init__(self, per_second: float):
        self.interval = self.GUARD / max(per_second, 0.001)
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:  # one send per interval, in arrival order
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            self._next = max(now, self._next) + self.interval


HEARTBEAT_EVERY_S = 1.0


@contextlib.asynccontextmanager
async def heartbeating():
    """Tell Temporal this activity is alive while it waits (for its turn at
    the CRM's rate limit) and calls: a worker that died is noticed by its
    missing heartbeats, so no deadline has to cover the wait."""
    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


class LeadActivities:
    def __init__(self, host: Host, pace: SendPace | None = None):
        self.host = host
        self.pace = pace

    @activity.defn(name="dupcheck.local_check")
    async def local_check(self, intake: dict[str, Any], check_dup: int, check_dnc: bool) -> dict[str, Any] | None:
        """Convoso's check_dup / check_dnc against the shared store."""
        hit = await asyncio.to_thread(self.host.check_local, Intake.from_json(intake), check_dup, check_dnc)
        if hit is None:
            return None
        return {"check": hit.check, "decision": dataclasses.asdict(hit.decision),
                "existing_lead_id": hit.existing_lead_id}

    @activity.defn(name="dupcheck.call_crm")
    async def call_crm(self, node_id: str, intake: dict[str, Any]) -> dict[str, Any]:
        """One CRM request (the node makes one attempt: Temporal retries).
        A transient failure raises, with the answer as the error's detail, so
        Temporal retries it (after Retry-After when the CRM sent one); a final
        answer, an error included, is returned for the rules and on_error."""
        lead = Intake.from_json(intake)
        async with heartbeating():
            if self.pace is not None:
                await self.pace.wait()
            answer = await self.host.workflow.run_node(node_id, lead)
        data = answer.as_json()
        if answer.error in TRANSIENT_CRM_ERRORS:
            data["attempts"] = activity.info().attempt
            after = answer.retry_after
            raise ApplicationError(f"CRM call failed ({answer.error}): {answer.error_detail or ''}", data,
                                   type=answer.error,
                                   next_retry_delay=timedelta(seconds=after) if after is not None else None)
        return data

    @activity.defn(name="dupcheck.store_decision")
    async def store_decision(self, record: dict[str, Any]) -> dict[str, Any]:
        """Lead, DNC entry and record in one transaction; then the observers.
        Every record has an idempotency key, so a write retried after a
        worker died past its commit finds the first one instead of a twin;
        so does a write whose outcome the store could not learn
        (StoreOutcomeUnknown): found, it is the answer; not found, it is
        retried."""
        try:
            return await self.host.commit(record)
        except StoreError as exc:
            key = record.get("idempotency_key")
            prior = await asyncio.to_thread(self.host.store.decision_by_idempotency_key, key) if key else None
            if prior is not None and (prior.get("temporal") or {}).get("request_id") == record["temporal"]["request_id"]:
                return prior  # this very lead, already stored: by this run before a crash, or by a twin run
            if isinstance(exc, StoreOutcomeUnknown) and prior is None:  # it did not land after all: again, later
                raise ApplicationError(str(exc), type=STORE_UNKNOWN) from None
            raise ApplicationError(str(exc), type=STORE_REFUSED, non_retryable=True) from None
