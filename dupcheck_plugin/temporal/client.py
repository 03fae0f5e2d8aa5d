"""The host ``serve`` and ``run`` use with ``--engine temporal``: intake
here, then one Temporal workflow per lead, whose result is the stored
decision record. Reads (leads/search, idempotency replays, --resume) go to
the shared store directly.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Mapping

from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from ..host import DecisionRecord, Host, Intake, Registry, StoreError, Workflow, default_registry
from .connect import TemporalUnavailable, connect, reason
from .lead import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE, WORKFLOW_TYPE, LeadInput, workflow_id


class WorkflowFailed(StoreError):
    """The lead's workflow failed (the store refused its write, say): nothing was stored for it."""


class TemporalLost(StoreError):
    """Temporal stopped answering while a lead was being decided: this
    instance cannot tell its outcome, so the caller is told to retry, as
    after a store outage (the same Idempotency-Key, or check_dup, finds a
    lead that its workflow did store after all)."""


class TemporalHost(Host):
    """A :class:`Host` whose leads are decided by workers (``dupcheck worker``)."""

    def __init__(self, workflow: Workflow, store, *, target: str, namespace: str, task_queue: str):
        super().__init__(workflow, store)
        self.target, self.namespace, self.task_queue = target, namespace, task_queue
        self._client: Client | None = None
        self._connecting = asyncio.Lock()

    @classmethod
    def open_temporal(cls, workflow: str, *, target: str, namespace: str = DEFAULT_NAMESPACE,
                      task_queue: str = DEFAULT_TASK_QUEUE, db: str = "dupcheck.db",
                      registry: Registry | None = None) -> "TemporalHost":
        """Load the workflow (its name and defaults: nothing is called here,
        so no secrets are needed) and open the shared store; connects to
        Temporal on first use, inside the serving event loop."""
        registry = registry or default_registry()
        loaded = Workflow.load(workflow, registry=registry, offline=True)
        store = registry.pm.hook.dupcheck_make_store(settings={"db": db})
        return cls(loaded, store, target=target, namespace=namespace, task_queue=task_queue)

    async def client(self) -> Client:
        """The Temporal client (connected on first use); raises TemporalLost."""
        async with self._connecting:
            if self._client is None:
                try:
                    self._client = await connect(self.target, self.namespace)
                except TemporalUnavailable as exc:
                    raise TemporalLost(str(exc)) from None
        return self._client

    def _lost(self, exc: RPCError) -> TemporalLost:
        """The error for a request Temporal did not answer; the next lead
        connects afresh (a server restarted, or back, is found again)."""
        self._client = None
        return TemporalLost(f"Temporal at {self.target} did not answer: {reason(exc)}")

    async def decide(self, lead: Mapping[str, Any] | Intake, *, source_row: int | None = None,
                     source: str | None = None, check_dup: int = 0, check_dnc: bool = False,
                     api: Mapping[str, Any] | None = None, idempotency_key: str | None = None) -> DecisionRecord:
        """Start this lead's workflow and return its stored record. While a
        lead with the same phone is being decided (on any instance), this one
        joins that workflow and waits for it, then starts its own: the local
        check then sees the first lead, as one process's phone lock does."""
        intake = lead if isinstance(lead, Intake) else self.workflow.admit(lead)
        request_id = uuid.uuid4().hex
        data = LeadInput(workflow=self.workflow.name, request_id=request_id, intake=intake.as_json(),
                         source_row=source_row, source=source, check_dup=check_dup, check_dnc=check_dnc,
                         api=dict(api) if api is not None else None, idempotency_key=idempotency_key)
        client = await self.client()
        wid = workflow_id(self.workflow.name, intake.phone_e164, request_id)
        try:
            return await self._decide(client, wid, data)
        except RPCError as exc:
            raise self._lost(exc) from None

    async def _decide(self, client: Client, wid: str, data: LeadInput) -> DecisionRecord:
        request_id = data.request_id
        while True:
            handle = await client.start_workflow(
                WORKFLOW_TYPE, data, id=wid, task_queue=self.task_queue, result_type=dict,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE, memo={"request_id": request_id})
            try:
                record = await handle.result()
            except WorkflowFailureError as exc:
                if await (await handle.describe()).memo_value("request_id", None) == request_id:
                    raise WorkflowFailed(f"lead workflow {wid} failed: {exc.cause or exc}") from None
                continue  # another lead's workflow failed: start ours
            if (record.get("temporal") or {}).get("request_id") == request_id:
                return record
