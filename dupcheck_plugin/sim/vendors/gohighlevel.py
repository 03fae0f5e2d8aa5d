"""GoHighLevel (LeadConnector) duplicate-contact lookup: ``GET /contacts/search/duplicate``.

``locationId`` (required), ``number`` and/or ``email``; the ``Version:
2021-07-28`` header is required. As documented, the email is looked up
first, then the number. The answer is ``{"contact": {...}}`` (fields of the
spec's GetContectByIdSchema) or ``{"contact": null}``. Over the limit: 429
with ``x-ratelimit-*`` headers; errors follow the spec's BadRequestDTO /
UnauthorizedDTO / UnprocessableDTO.

An empty ``email`` or ``number`` counts as absent. A number matches in any
normal form (GoHighLevel stores E.164). ``dnd`` comes from the book's
``dnc``; ``tags`` from ``lifecyclestage`` plus a ``tags`` column (``;``-separated).
"""

from __future__ import annotations

import re
from typing import Any

from ...phone import PhoneError, to_e164
from ..contacts import Contact, ContactBook
from . import Route, SimRequest, SimResponse, Vendor

DUPLICATE = "/contacts/search/duplicate"
VERSION = "2021-07-28"
ADDED = "2024-01-15T09:30:00.000Z"
RATE_HEADERS = {"x-ratelimit-max": "100", "x-ratelimit-interval-milliseconds": "10000",
                "x-ratelimit-limit-daily": "200000", "x-ratelimit-daily-remaining": "199999"}


def over_limit() -> SimResponse:
    return SimResponse(429, {"statusCode": 429, "message": "Too Many Requests"},
                       headers={**RATE_HEADERS, "x-ratelimit-remaining": "0"})


def unauthorized() -> SimResponse:
    return SimResponse(401, {"statusCode": 401, "message": "Invalid token: access token is invalid", "error": "Unauthorized"})


def server_error(status: int) -> SimResponse:
    return SimResponse(status, {"statusCode": status, "message": "Internal server error"})


def contact_id(c: Contact) -> str:
    core = re.sub(r"[^A-Za-z0-9]", "", c.id)
    return ("ct" + core.rjust(18, "0"))[-20:]


def _e164(value: str) -> str:
    try:
        return to_e164(value)
    except PhoneError:
        return value


def contact(c: Contact, location: str) -> dict[str, Any]:
    first, last = c.get("firstname"), c.get("lastname")
    stage = c.get("lifecyclestage")
    tags = [stage] if stage else []
    tags += [t.strip() for t in c.get("tags").split(";") if t.strip()]
    phone = c.phone or c.get("mobilephone")
    out: dict[str, Any] = {
        "id": contact_id(c), "locationId": location,
        "firstName": first, "lastName": last, "name": " ".join(x for x in (first, last) if x),
        "firstNameLowerCase": first.lower(), "lastNameLowerCase": last.lower(),
        "fullNameLowerCase": " ".join(x for x in (first, last) if x).lower(),
        "email": c.email, "emailLowerCase": c.email.lower(),
        "phone": _e164(phone) if phone else "",
        "dnd": c.dnc, "tags": tags, "type": "customer" if stage == "customer" else "lead",
        "source": "public api", "dateAdded": ADDED, "dateUpdated": ADDED,
    }
    return {k: v for k, v in out.items() if v != ""}


def duplicate(req: SimRequest, book: ContactBook) -> SimResponse:
    if req.headers.get("Version") != VERSION:
        return SimResponse(400, {"statusCode": 400, "message": f"Version header is required and must be {VERSION}"})
    location = req.query.get("locationId", "").strip()
    if not location:
        return SimResponse(422, {"statusCode": 422, "message": ["locationId should not be empty"],
                                 "error": "Unprocessable Entity"})
    email = req.query.get("email", "").strip()
    number = req.query.get("number", "").strip()
    found = (book.by_property("email", email) if email else []) or (book.find(phone=number) if number else [])
    resp = SimResponse(200, {"contact": contact(found[0], location) if found else None})
    resp.headers.update({**RATE_HEADERS, "x-ratelimit-remaining": "99"})
    return resp


VENDOR = Vendor(
    name="gohighlevel",
    routes=(Route("GET", DUPLICATE, duplicate, name="gohighlevel duplicate contact"),),
    over_limit=over_limit,
    unauthorized=unauthorized,
    server_error=server_error,
)
