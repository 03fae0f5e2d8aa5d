"""Test a lead against the running table without creating it (the console's
"Test a lead" page): render, ask the CRM, show every row and the decision."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from ...host import CrmAnswer, Decision, explain, trace

LEAD_FIELDS = ("phone_number", "phone_code", "first_name", "last_name", "email", "list_id")


@dataclass
class RowView:
    index: int
    name: str | None
    condition: str
    found: str
    outcome: str  # match | no match | not reached


@dataclass
class ProbeView:
    lead: dict[str, str]
    phone_e164: str | None
    request: dict[str, Any] | None
    answer: CrmAnswer | None
    rows: list[RowView]
    decision: Decision
    note: str | None = None

    @property
    def answer_text(self) -> str:
        if self.answer is None:
            return ""
        body = self.answer.body
        return body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False)


def _check(workflow) -> Any:
    if workflow.check is None:
        raise ValueError(f"workflow {workflow.name!r} has no api_duplicate_check node")
    return workflow.check


def _rows(settings: Any, answer: CrmAnswer | None) -> list[RowView]:
    traced = {t.index: t for t in trace(settings, answer)} if answer is not None and answer.error is None else {}
    out = []
    for row in settings.rules:
        parts = []
        if row.http_status is not None:
            parts.append("HTTP " + "/".join(map(str, sorted(row.http_status))))
        if row.key:
            value = "" if row.op in ("exists", "missing") else " " + json.dumps(row.value)
            parts.append(f"{'.'.join(row.key)} {row.op}{value}")
        t = traced.get(row.index)
        found = "" if t is None else t.shown()
        outcome = "not reached" if t is None else ("match" if t.matched else "no match")
        out.append(RowView(row.index, row.name, ", ".join(parts), found, outcome))
    return out


async def probe_lead(host, lead: Mapping[str, str]) -> ProbeView:
    """Ask the CRM about ``lead`` through the current table; nothing is stored."""
    async with host.lease() as workflow:  # as a lead in flight holds it: a reload does not close it under us
        check = _check(workflow)
        intake = workflow.admit(lead)
        if intake.refused is not None:
            return ProbeView(intake.lead, intake.phone_e164, None, None, [], intake.refused,
                             "the lead is refused before the CRM is asked")
        answer = await workflow.ask_crm(intake)
        note = None if answer is not None else "the duplicate check is off: the CRM is not called"
        return ProbeView(intake.lead, intake.phone_e164, answer.request if answer else None, answer,
                         _rows(check.settings, answer), workflow.decide(answer), note)


def explain_pasted(host, content: bytes, status: int | None, lead: Mapping[str, str] | None) -> ProbeView:
    """``dupcheck explain`` on a pasted CRM answer."""
    workflow = host.workflow
    result = explain(workflow, content, status, lead)
    return ProbeView(result.record["lead"], result.record["phone_e164"], result.answer.request, result.answer,
                     _rows(_check(workflow).settings, result.answer), result.decision)
