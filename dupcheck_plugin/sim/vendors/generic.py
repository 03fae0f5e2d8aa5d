"""A home-grown CRM: ``POST /api/leads/lookup`` (JSON) and ``/api/leads/lookup-form`` (form).

Both answer ``{"found", "count", "contacts": [{"id", "phone", "email", "dnc", ...}]}``.
"""

from __future__ import annotations

from typing import Any

from ..contacts import Contact, ContactBook
from . import Route, SimRequest, SimResponse, Vendor


def _contact(c: Contact) -> dict[str, Any]:
    return {**c.as_dict(), "dnc": c.dnc}


def _lookup(body: Any, email_keys: tuple[str, ...], kind: str) -> SimResponse | tuple[str, list[str]]:
    if not isinstance(body, dict):
        return SimResponse(400, {"error": "bad_request", "message": f"expected a {kind} body"})
    phone = str(body.get("phone") or "").strip()
    emails = [str(body[k]).strip() for k in email_keys if body.get(k) and str(body[k]).strip()]
    if not phone and not emails:
        return SimResponse(400, {"error": "bad_request", "message": "phone or email is required"})
    return phone, emails


def _answer(book: ContactBook, phone: str, emails: list[str]) -> SimResponse:
    found = book.find(phone=phone or None, email=emails)
    return SimResponse(200, {"found": bool(found), "count": len(found), "contacts": [_contact(c) for c in found]})


def lookup_json(req: SimRequest, book: ContactBook) -> SimResponse:
    got = _lookup(req.body, ("email",), "JSON object")
    return got if isinstance(got, SimResponse) else _answer(book, *got)


def lookup_form(req: SimRequest, book: ContactBook) -> SimResponse:
    got = _lookup(req.body, ("email", "email_address"), "form (application/x-www-form-urlencoded)")
    return got if isinstance(got, SimResponse) else _answer(book, *got)


VENDOR = Vendor(
    name="generic",
    routes=(
        Route("POST", r"/api/leads/lookup", lookup_json, name="generic lookup (json)"),
        Route("POST", r"/api/leads/lookup-form", lookup_form, name="generic lookup (form)"),
    ),
    over_limit=lambda: SimResponse(429, {"error": "rate_limited"}),
    unauthorized=lambda: SimResponse(401, {"error": "unauthorized"}),
)
