"""Convoso's own duplicate and DNC checks, against the local store, before
the CRM is asked (``check_dup``, ``check_dnc``). Callers hold the phone's
lock (:mod:`.locks`) around this check and the create that may follow, so
two leads with one phone cannot both pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..rules.decide import Decision

CHECK_DUP_ACCOUNT = 1  # 0 none; 2 same list; 3 same campaign (here: same list)
DUPLICATE = 6009
DUPLICATE_TEXT = "The phone number already exists"
ON_DNC = 6024  # Convoso documents no code for check_dnc refusals: dupcheck's choice
ON_DNC_TEXT = "The phone number is on the DNC list"


@dataclass(frozen=True)
class LocalHit:
    check: str  # "check_dnc" | "check_dup"
    decision: Decision
    existing_lead_id: str | None = None


def local_check(store: Any, phone_e164: str, list_id: str | None, check_dup: int, check_dnc: bool) -> LocalHit | None:
    """The local refusal for this phone, or None to go on to the CRM.
    ``check_dup`` 2 (same list) and 3 (same campaign) both mean the lead's
    list: there are no campaigns here."""
    if check_dnc and store.dnc_contains(phone_e164, "0"):
        decision = Decision("rejected", None, None, False, False, ON_DNC, ON_DNC_TEXT, checked=False,
                            rule_name="check_dnc")
        return LocalHit("check_dnc", decision)
    if check_dup:
        existing = store.find_leads(phone_e164, None if check_dup == CHECK_DUP_ACCOUNT else list_id)
        if existing:
            decision = Decision("duplicate", None, None, False, False, DUPLICATE, DUPLICATE_TEXT, checked=False,
                                rule_name="check_dup")
            return LocalHit("check_dup", decision, str(existing[0]["id"]))
    return None
