"""The decision record: the public JSON contract, one per lead (pure).

Fields are documented in the README ("Decision records"); keep them in step.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from ..rules.decide import Decision
from ..types import NOT_CALLED, CrmAnswer

INTERNAL_ERROR_CODE = 6500


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def crm_summary(answer: CrmAnswer | None) -> dict[str, Any]:
    if answer is None:
        return {"called": False, "status_code": None, "latency_ms": None, "error": None,
                "error_detail": None, "attempts": 0}
    return {"called": answer.error not in NOT_CALLED, "status_code": answer.status_code, "latency_ms": answer.latency_ms,
            "error": answer.error, "error_detail": answer.error_detail, "attempts": answer.attempts}


def build_record(*, workflow: str, lead: Mapping[str, str], phone_e164: str | None,
                 decision: Decision, answer: CrmAnswer | None, row: int | None = None) -> dict[str, Any]:
    return {
        "workflow": workflow,
        "source": None,
        "row": row,
        "decided_at": now_iso(),
        "lead": dict(lead),
        "phone_e164": phone_e164,
        "matched_rule": decision.matched_rule,
        "rule_name": decision.rule_name,
        "action": decision.action,
        "status": decision.status,
        "dnc_added": decision.add_to_dnc,  # intake guarantees a phone before any rule can ask for DNC
        "success": decision.success,
        "code": decision.code,
        "text": decision.text,
        "checked": decision.checked,
        "retryable": decision.retryable,
        "crm": crm_summary(answer),
        "crm_record_id": answer.record_id if answer else None,
        "request": dict(answer.request) if answer and answer.request else None,
        "lead_id": None,
    }


def refusal(code: int, text: str, *, retryable: bool = False) -> Decision:
    return Decision("rejected", None, None, False, False, code, text, checked=False, retryable=retryable)
