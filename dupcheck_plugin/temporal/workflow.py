"""The lead workflow: deterministic, so Temporal can replay it.

It runs the steps of the public host API (``dupcheck_plugin.host``): the
intake the receiving instance made, the local check, the workflow's node
graph and the decision record; everything that touches the world is an
activity. The node graph runs in the workflow with each CRM node (a node
type whose output is ``crm_answer``) replaced by a stand-in that asks the
``dupcheck.call_crm`` activity: the rules nodes are pure.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError as TemporalTimeout

from ..host import CRM_ANSWER, CrmAnswer, CrmNode, Decision, Intake, LeadContext, Workflow
from .lead import WORKFLOW_TYPE, LeadInput, crm_queue

LOCAL_TIMEOUT = timedelta(seconds=30)
STORE_TIMEOUT = timedelta(seconds=60)
# A CRM activity waits for its turn at the rate limit (the worker's pacing, the connection's
# limiter), then calls: no deadline can tell a long wait from a dead worker, so a dead worker
# is noticed by its missing heartbeats and the deadline is only a backstop; the call itself
# is bounded by the node's own timeouts
CRM_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
CRM_BACKSTOP = timedelta(hours=1)
STORE_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10),
                          non_retryable_error_types=["store_refused"])

# filled by the worker at start-up: workflow name -> the workflow it loaded, CRM nodes as activities
WORKFLOWS: dict[str, Workflow] = {}


def crm_retry(config: Mapping[str, Any]) -> RetryPolicy:
    """The node's ``retry`` table as Temporal's retry policy."""
    r = config.get("retry", {})
    return RetryPolicy(initial_interval=timedelta(seconds=r.get("backoff", 0.2)), backoff_coefficient=2.0,
                       maximum_interval=timedelta(seconds=r.get("max_wait", 30.0)),
                       maximum_attempts=int(r.get("attempts", 3)))


class CrmActivity(CrmNode):
    """Stands in for a CRM node inside the workflow: its ``run`` is the
    ``dupcheck.call_crm`` activity on the CRM task queue."""

    def __init__(self, node_id: str, config: Mapping[str, Any]):
        self.id = node_id
        self.retry = crm_retry(config)
        self.attempts = int(config.get("retry", {}).get("attempts", 3))

    async def run(self, ctx: LeadContext) -> CrmAnswer:
        intake = Intake(ctx.lead, ctx.phone_e164).as_json()
        try:
            data = await workflow.execute_activity(
                "dupcheck.call_crm", args=[self.id, intake], task_queue=crm_queue(workflow.info().task_queue),
                start_to_close_timeout=CRM_BACKSTOP, heartbeat_timeout=CRM_HEARTBEAT_TIMEOUT,
                retry_policy=self.retry, result_type=dict)
        except ActivityError as exc:  # retries used up: the last answer goes to the rules and on_error
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
                return CrmAnswer.from_json(cause.details[0])
            kind = "timeout" if isinstance(cause, TemporalTimeout) else "connection"
            return CrmAnswer(status_code=None, headers={}, body=None, latency_ms=0.0, error=kind,
                             error_detail=f"CRM activity failed: {cause or exc}", attempts=self.attempts)
        return CrmAnswer.from_json(data)


def with_crm_activities(loaded: Workflow) -> Workflow:
    """The loaded workflow with its CRM nodes replaced by :class:`CrmActivity`."""
    configs = {node.id: node.config for node in loaded.spec.nodes}
    return loaded.with_nodes({nid: CrmActivity(nid, configs[nid]) for nid in loaded.node_ids(CRM_ANSWER)})


@workflow.defn(name=WORKFLOW_TYPE)
class DecideLead:
    @workflow.run
    async def run(self, lead: LeadInput) -> dict[str, Any]:
        loaded = WORKFLOWS.get(lead.workflow)
        if loaded is None:
            raise ApplicationError(f"this worker runs {', '.join(WORKFLOWS) or 'no workflow'}, not {lead.workflow!r}",
                                   type="unknown_workflow", non_retryable=True)
        info = workflow.info()
        intake = Intake.from_json(lead.intake)
        hit: dict[str, Any] | None = None
        answer: CrmAnswer | None = None
        if intake.refused is not None:
            decision = intake.refused
        else:
            if (lead.check_dup or lead.check_dnc) and intake.phone_e164:
                hit = await workflow.execute_local_activity(
                    "dupcheck.local_check", args=[lead.intake, lead.check_dup, lead.check_dnc],
                    start_to_close_timeout=LOCAL_TIMEOUT, result_type=dict)
            if hit is not None:
                decision = Decision(**hit["decision"])
            else:
                decision, answer = await loaded.evaluate(intake)
        api, key = lead.api, lead.idempotency_key
        if api is not None:
            api = {**api, "local_check": hit["check"] if hit else None,
                   "existing_lead_id": hit["existing_lead_id"] if hit else None}
            if key is not None and not decision.spends_key:  # kept in api, not spent (as the host does)
                api["idempotency_key"], key = key, None
        # every record gets a key: a store write retried after a crash, or a second run for
        # the same request (a start the client retried), cannot land twice
        record = loaded.record(
            intake, decision, answer, source_row=lead.source_row, source=lead.source, api=api,
            idempotency_key=key or f"temporal/{lead.request_id}",
            decided_at=workflow.now().isoformat(timespec="milliseconds"),  # replay-safe: the workflow's clock
            temporal={"workflow_id": info.workflow_id, "run_id": info.run_id, "request_id": lead.request_id})
        return await workflow.execute_local_activity("dupcheck.store_decision", record,
                                                     start_to_close_timeout=STORE_TIMEOUT, retry_policy=STORE_RETRY,
                                                     result_type=dict)
