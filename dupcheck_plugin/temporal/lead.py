"""What a lead workflow gets, and the ids and queues it runs under (pure:
imported by workflow code and by the CLI without temporalio)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WORKFLOW_TYPE = "dupcheck.DecideLead"
DEFAULT_TASK_QUEUE = "dupcheck"
DEFAULT_NAMESPACE = "default"
# CRM calls run on a queue of their own: Temporal's task-queue rate limit
# then caps CRM calls only, across every worker, and not the store writes
CRM_QUEUE_SUFFIX = ".crm"
# transient CRM errors, retried by Temporal; anything else is final and on_error decides
TRANSIENT_CRM_ERRORS = ("timeout", "connection", "rate_limited", "http_status")


@dataclass
class LeadInput:
    """One lead as the instance that received it admitted it (``Intake.as_json()``)."""

    workflow: str
    request_id: str
    intake: dict[str, Any]
    source_row: int | None = None  # the lead's row in lead file ``source``
    source: str | None = None
    check_dup: int = 0
    check_dnc: bool = False
    api: dict[str, Any] | None = None  # serve's account of the request
    idempotency_key: str | None = None


def workflow_id(workflow: str, phone_e164: str | None, request_id: str) -> str:
    """One id per workflow and phone: a second lead for the phone waits for
    the first rather than running a second check beside it. A lead without
    a valid phone cannot collide with another: its own request id."""
    return f"dupcheck/{workflow}/{phone_e164}" if phone_e164 else f"dupcheck/{workflow}/request/{request_id}"


def crm_queue(task_queue: str) -> str:
    return task_queue + CRM_QUEUE_SUFFIX
