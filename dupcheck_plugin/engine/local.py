"""Convoso's own duplicate and DNC checks, against the local store, before
the CRM is asked (``check_dup``, ``check_dnc``). The host holds the phone's
lock (:mod:`.locks`) around this check and the create that may follow, so
two leads with one phone cannot both pass."""

from __future__ import annotations

from dataclasses import dataclass

from .. import codes
from ..rules.decide import Decision
from ..store.contract import Store

CHECK_DUP_ACCOUNT = 1  # 0 none; 2 same list; 3 same campaign (here: same list)
ACCOUNT_DNC = "0"  # the account-wide DNC list's campaign id


@dataclass(frozen=True)
class LocalHit:
    check: str  # "check_dnc" | "check_dup"
    decision: Decision
    existing_lead_id: str | None = None


def local_check(store: Store, phone_e164: str, list_id: str | None, check_dup: int, check_dnc: bool) -> LocalHit | None:
    """The local refusal for this phone, or None to go on to the CRM.
    ``check_dup`` 2 (same list) and 3 (same campaign) both mean the lead's
    list: there are no campaigns here."""
    if check_dnc and store.dnc_contains(phone_e164, ACCOUNT_DNC):
        return LocalHit("check_dnc", Decision.refused(codes.ON_DNC, by="check_dnc"))
    if check_dup:
        existing = store.find_leads(phone_e164, None if check_dup == CHECK_DUP_ACCOUNT else list_id)
        if existing:
            return LocalHit("check_dup", Decision.local_duplicate("check_dup"), str(existing[0]["id"]))
    return None
