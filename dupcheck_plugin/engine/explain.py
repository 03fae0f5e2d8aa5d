"""``explain``: run a recorded CRM answer through a workflow's rules, offline."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..http.call import finish_answer, interpret
from ..nodes.api_duplicate_check import ApiDuplicateCheck
from ..nodes.convoso_connect import ConvosoConnect
from ..rules.decide import Decision, RowTrace, decide, trace
from ..types import CrmAnswer
from .intake import admit
from .record import build_record, refusal
from .runner import Engine


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
    record: dict[str, Any]


def explain(engine: Engine, content: bytes, status: int | None, lead: Mapping[str, Any] | None) -> Explanation:
    check = next((n for n in engine.nodes.values() if isinstance(n, ApiDuplicateCheck)), None)
    if check is None:
        raise ValueError(f"workflow {engine.spec.name!r} has no api_duplicate_check node")
    connect = engine.nodes.get(check.settings.connect)
    code, headers, raw = split_recording(content, status)
    fmt = connect.response_format if isinstance(connect, ConvosoConnect) else "json"
    limits = connect.adaptor.rate_limits if isinstance(connect, ConvosoConnect) else ()
    it = interpret(code, headers, raw, fmt, limits)
    answer = finish_answer(status=code, headers=headers, it=it, error=it.error, detail=it.detail, latency_ms=0.0,
                           request=None, attempts=1,
                           response_key=connect.config.get("response_key") if isinstance(connect, ConvosoConnect) else None,
                           record_id_key=connect.adaptor.record_id if isinstance(connect, ConvosoConnect) else None)
    phone = None
    lead_fields: dict[str, str] = {}
    if lead is not None:
        intake = admit(lead, engine.spec.defaults)
        lead_fields, phone = intake.lead, intake.phone_e164
        if intake.code is not None:
            decision = refusal(intake.code, intake.text)
            record = build_record(workflow=engine.spec.name, lead=lead_fields, phone_e164=phone, decision=decision, answer=None)
            return Explanation(answer, [], decision, record)
    decision = decide(check.settings, answer)
    if lead is not None and isinstance(connect, ConvosoConnect):
        try:
            _, masked = connect.render(lead_fields)
            answer = _with_request(answer, masked.as_json())
        except ValueError:
            pass  # the rules do not need the request; explain shows the decision anyway
    record = build_record(workflow=engine.spec.name, lead=lead_fields, phone_e164=phone, decision=decision, answer=answer)
    return Explanation(answer, trace(check.settings, answer), decision, record)


def _with_request(answer: CrmAnswer, request: dict) -> CrmAnswer:
    return replace(answer, request=request)
