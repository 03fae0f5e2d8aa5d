"""``explain``: run a recorded CRM answer through a workflow's rules, offline."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..errors import DupcheckError
from ..rules.decide import Decision, RowTrace, trace
from ..types import CrmAnswer, read_recorded
from .loaded import Workflow
from .record import DecisionRecord


class NoCheck(DupcheckError):
    """The workflow has no duplicate check to explain."""


def split_recording(content: bytes, status: int | None) -> tuple[int, dict[str, str], bytes]:
    """A recorded answer is either the raw body (status from ``--status``,
    default 200) or a JSON envelope ``{"status": N, "headers": {...},
    "body": ...}`` (a string body is taken as the raw text, e.g. XML)."""
    try:
        doc = json.loads(content)
    except ValueError:
        doc = None
    if (isinstance(doc, dict) and isinstance(doc.get("status"), int) and "body" in doc
            and set(doc) <= {"status", "headers", "body"}):
        body = doc["body"]
        raw = body.encode() if isinstance(body, str) else (b"" if body is None else json.dumps(body).encode())
        return (status or doc["status"]), dict(doc.get("headers") or {}), raw
    return status or 200, {}, content


@dataclass
class Explanation:
    answer: CrmAnswer
    rows: list[RowTrace]
    decision: Decision
    record: DecisionRecord


def explain(workflow: Workflow, content: bytes, status: int | None, lead: Mapping[str, Any] | None) -> Explanation:
    """Read a recorded CRM answer as the workflow's CRM node would, and decide
    on it with its rules table; with a lead, intake runs first and the record
    shows the request that lead would send. Calls nothing."""
    check, crm = workflow.check, workflow.crm
    if check is None:
        raise NoCheck(f"workflow {workflow.name!r} has no api_duplicate_check node")
    code, headers, raw = split_recording(content, status)
    answer = crm.read_answer(code, headers, raw) if crm is not None else read_recorded(code, headers, raw)
    intake = workflow.admit(lead if lead is not None else {})
    if lead is not None and intake.refused is not None:
        return Explanation(answer, [], intake.refused, workflow.record(intake, intake.refused, None))
    decision = workflow.decide(answer)
    if lead is not None and crm is not None:
        preview = crm.preview(intake.lead)
        if preview is not None:  # the rules do not need the request; explain shows the decision anyway
            answer = replace(answer, request=preview)
    if lead is None:
        intake = replace(intake, lead={}, phone_e164=None)
    return Explanation(answer, trace(check.settings, answer), decision, workflow.record(intake, decision, answer))

