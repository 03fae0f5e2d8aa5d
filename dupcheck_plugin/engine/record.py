"""The decision record and what it means for the store (pure).

The record is the public JSON contract, one per lead; its fields are
documented in the README ("Decision records"): keep them in step. What a
decision stores -- the lead with its status, the DNC entry with its campaign
and reason -- is decided here, in :func:`plan_commit`, not by a store.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Mapping

from ..phone import split_e164
from ..rules.decide import LOCAL_CHECKS, Decision
from ..store.contract import Commit, DncEntry, NewLead
from ..types import NOT_CALLED, CrmAnswer, CrmSummary, DecisionRecord  # the shape: in types, for the stores too
from .local import ACCOUNT_DNC


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, for every record within it
_milli: tuple[int, str] = (-1, "")  # the last millisecond's text: a batch's leads are decided within one


def now_iso() -> str:
    """UTC now as ``datetime.now(timezone.utc).isoformat(timespec="milliseconds")``
    writes it (``2026-01-31T12:00:00.123+00:00``, milliseconds cut, not
    rounded), with the date and time of day formatted once per second and
    the whole text once per millisecond."""
    global _second, _milli
    ms = time.time_ns() // 1_000_000
    last = _milli  # each cache read once: a record built in another thread may replace it meanwhile
    if ms == last[0]:
        return last[1]
    seconds, millis = divmod(ms, 1000)
    day = _second
    if seconds != day[0]:
        day = _second = (seconds, datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    text = f"{day[1]}.{millis:03d}+00:00"
    _milli = (ms, text)
    return text


def crm_summary(answer: CrmAnswer | None) -> CrmSummary:
    if answer is None:
        return {"called": False, "status_code": None, "latency_ms": None, "error": None,
                "error_detail": None, "attempts": 0, "batch_size": 0, "cached": False}
    return {"called": answer.error not in NOT_CALLED and answer.attempts > 0, "status_code": answer.status_code,
            "latency_ms": answer.latency_ms, "error": answer.error, "error_detail": answer.error_detail,
            "attempts": answer.attempts, "batch_size": answer.batch_size, "cached": answer.cached}


def build_record(*, workflow: str, lead: Mapping[str, str], phone_e164: str | None, decision: Decision,
                 answer: CrmAnswer | None, source_row: int | None = None, source: str | None = None,
                 api: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
                 decided_at: str | None = None, temporal: Mapping[str, Any] | None = None) -> DecisionRecord:
    """The record of one decision, complete: the store's copy adds only ``lead_id``.
    ``decided_at``: now unless given (a Temporal workflow gives its own
    deterministic clock's time); ``temporal``: the workflow run that decided."""
    if answer is None:
        crm, record_id, request, response = crm_summary(None), None, None, None
    else:
        crm, record_id, request, response = crm_summary(answer), answer.record_id, answer.request, answer.response
    record: DecisionRecord = {
        "workflow": workflow,
        "source": source,
        "source_row": source_row,
        "decided_at": decided_at or now_iso(),
        "lead": dict(lead),
        "phone_e164": phone_e164,
        "rules_row": decision.rules_row,
        "rules_row_name": decision.rules_row_name,
        "decided_by": decision.decided_by,
        "action": decision.action,
        "status": decision.status,
        "dnc_added": decision.add_to_dnc,  # intake guarantees a phone before any rule can ask for DNC
        "success": decision.success,
        "code": decision.code,
        "text": decision.text,
        "detail": decision.detail,
        "checked": decision.checked,
        "retryable": decision.retryable,
        "crm": crm,
        "crm_record_id": record_id,
        "request": dict(request) if request else None,
        "response": dict(response) if response else None,
        "lead_id": None,
    }
    if api is not None:  # serve: how the API call asked (check_dup, check_dnc, ...)
        record["api"] = dict(api)
    if api is not None or idempotency_key is not None:  # serve's header; the Temporal host's key for every lead
        record["idempotency_key"] = idempotency_key
    if temporal is not None:
        record["temporal"] = dict(temporal)
    return record


def row_label(record: Mapping[str, Any]) -> str | None:
    """The rules-table row that decided, as people read it: ``row 2 (opportunity)``
    (numbered from 0, as ``rules[2]`` in the config); a local check's name;
    None when neither decided."""
    if record.get("rules_row") is None:
        by = record.get("decided_by")
        return by if by in LOCAL_CHECKS else None
    name = record.get("rules_row_name")
    return f"row {record['rules_row']}" + (f" ({name})" if name else "")


def plan_commit(record: DecisionRecord) -> Commit:
    """What storing this record means: a created lead gets the decided status
    (else the lead's own), a DNC row puts the phone on the account-wide list
    with the row as reason."""
    lead = record.get("lead") or {}
    phone = record.get("phone_e164")
    new_lead = None
    if record.get("action") == "created":
        field = lead.get  # NewLead's fields in their order, positionally: this runs for every created lead
        new_lead = NewLead(phone, field("phone_number"), field("phone_code"), field("list_id"),
                           record.get("status") or field("status"), field("first_name"), field("last_name"),
                           field("email"), dict(lead))
    dnc = None
    if record.get("dnc_added") and phone:
        number, code = split_e164(phone)
        dnc = DncEntry(phone_e164=phone, phone_number=number, phone_code=code, campaign_id=ACCOUNT_DNC,
                       reason=row_label(record) or "dupcheck")
    return Commit(record, new_lead, dnc)
