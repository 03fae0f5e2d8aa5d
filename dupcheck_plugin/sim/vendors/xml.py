"""A generic CRM that answers XML: ``GET /xml/lookup?phone=...&email=...``.

    <response><total>1</total><contact id="101"><phone>+15550100101</phone>
      <email>ava.stone@example.com</email><status>customer</status><dnc>false</dnc></contact></response>

``status`` is the book's ``lifecyclestage``; several matches repeat
``<contact>``. Errors and the over-limit answer (429) are
``<error><code>..</code><message>..</message></error>``. The key comes in
``X-Api-Key`` (or ``api_key`` in the query).
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from ..contacts import Contact, ContactBook
from . import Route, SimRequest, SimResponse, Vendor

LOOKUP = "/xml/lookup"
XML = "application/xml"


def _error(status: int, code: str, message: str) -> SimResponse:
    return SimResponse(status, f"<error><code>{escape(code)}</code><message>{escape(message)}</message></error>",
                       content_type=XML)


def over_limit() -> SimResponse:
    return _error(429, "rate_limited", "Too many requests")


def unauthorized() -> SimResponse:
    return _error(401, "unauthorized", "API key missing or invalid")


def server_error(status: int) -> SimResponse:
    return _error(status, "server_error", "simulated server error")


def _element(name: str, value: str) -> str:
    return f"<{name}>{escape(value)}</{name}>" if value else f"<{name}/>"


def _contact(c: Contact) -> str:
    parts = [_element("phone", c.phone or c.get("mobilephone")), _element("email", c.email),
             _element("firstname", c.get("firstname")), _element("lastname", c.get("lastname")),
             _element("status", c.get("lifecyclestage")), _element("dnc", "true" if c.dnc else "false")]
    return f"<contact id={quoteattr(c.id)}>{''.join(parts)}</contact>"


def lookup(req: SimRequest, book: ContactBook) -> SimResponse:
    phone = req.query.get("phone", "").strip()
    email = req.query.get("email", "").strip()
    if not phone and not email:
        return _error(400, "bad_request", "phone or email is required")
    found = book.find(phone=phone or None, email=email or None)
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<response><total>{len(found)}</total>{''.join(_contact(c) for c in found)}</response>\n")
    return SimResponse(200, body, content_type=XML)


VENDOR = Vendor(
    name="xml",
    routes=(Route("GET", LOOKUP, lookup, name="xml lookup"),),
    over_limit=over_limit,
    unauthorized=unauthorized,
    server_error=server_error,
)
