"""Store reads behind leads/search (blocking: called in a worker thread).

A store with ``search_leads(...)`` (the SQLite store) answers every filter;
a plugin store that only has the protocol's ``find_leads`` is searched by
phone or lead id.
"""

from __future__ import annotations

from typing import Any

from .convoso import MALFORMED, Refusal


def search_leads(store: Any, *, lead_id: str | None, phone_e164: str | None, list_id: str | None,
                 email: str | None, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """(total, leads newest first) matching every given filter."""
    if hasattr(store, "search_leads"):
        return store.search_leads(lead_id=lead_id, phone_e164=phone_e164, list_id=list_id, email=email,
                                  offset=offset, limit=limit)
    if lead_id is not None and hasattr(store, "lead_by_id"):
        found = store.lead_by_id(lead_id)
        leads = [found] if found else []
    elif phone_e164 is not None:
        leads = store.find_leads(phone_e164, list_id)
    else:
        raise Refusal(MALFORMED, "this store searches leads by phone_number or lead_id only")
    leads = [lead for lead in leads if _keep(lead, lead_id, phone_e164, list_id, email)]
    return len(leads), leads[offset:offset + limit]


def _keep(lead: dict[str, Any], lead_id, phone_e164, list_id, email) -> bool:
    return ((lead_id is None or str(lead["id"]) == str(lead_id))
            and (phone_e164 is None or lead.get("phone_e164") == phone_e164)
            and (list_id is None or lead.get("list_id") == list_id)
            and (email is None or (lead.get("email") or "").casefold() == email.casefold()))
