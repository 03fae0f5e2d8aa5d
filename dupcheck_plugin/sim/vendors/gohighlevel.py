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

Limits (``GoHighLevelQuota``), per location: 100 requests per rolling 10 s
(``gohighlevel_burst``) and 200,000 per day (``gohighlevel_daily``); every
answer carries ``X-RateLimit-Limit-Daily``, ``X-RateLimit-Daily-Remaining``,
``X-RateLimit-Interval-Milliseconds``, ``X-RateLimit-Max`` and
``X-RateLimit-Remaining`` with the real counts. Over either: 429.

OAuth: ``POST /oauth/token`` (form: ``grant_type=refresh_token``,
``client_id``, ``client_secret``, ``refresh_token``) answers
``access_token``, ``expires_in`` (``gohighlevel_token_lifetime``, about a
day), a **new** ``refresh_token`` (the one used is spent), ``userType``,
``locationId``; refused: 400 ``{"error": "invalid_grant" | "invalid_client" |
"unsupported_grant_type", "error_description"}``. An expired access token
answers 401 ``Invalid JWT``.
"""

from __future__ import annotations

import re
from typing import Any

from ...phone import PhoneError, to_e164
from ..contacts import Contact, ContactBook
from ..limits import DailyWindow, Keyed, Quota, Refusal, RollingWindow, take_all
from ..oauth import TokenDesk, form, refresh_grant
from . import Route, SimRequest, SimResponse, Vendor

DUPLICATE = "/contacts/search/duplicate"
TOKEN = "/oauth/token"
VERSION = "2021-07-28"
ADDED = "2024-01-15T09:30:00.000Z"
# sent as they are when limits are off; GoHighLevelQuota replaces them with real counts
RATE_HEADERS = {"X-RateLimit-Max": "100", "X-RateLimit-Interval-Milliseconds": "10000",
                "X-RateLimit-Limit-Daily": "200000", "X-RateLimit-Daily-Remaining": "199999"}


def over_limit() -> SimResponse:
    return SimResponse(429, {"statusCode": 429, "message": "Too Many Requests"},
                       headers={**RATE_HEADERS, "X-RateLimit-Remaining": "0"})


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
    resp.headers.update({**RATE_HEADERS, "X-RateLimit-Remaining": "99"})
    return resp


TOKEN_REFUSALS = {"grant_type": ("unsupported_grant_type", "grant_type must be refresh_token here"),
                  "client": ("invalid_client", "Invalid client credentials"),
                  "refresh_token": ("invalid_grant", "Invalid grant: refresh token is invalid")}


def token(req: SimRequest, desk: TokenDesk) -> SimResponse:
    p = form(req.body, req.query)
    wrong = refresh_grant(desk, p)
    if wrong:
        error, description = TOKEN_REFUSALS[wrong]
        return SimResponse(400, {"error": error, "error_description": description})
    desk.revoke(p["refresh_token"])  # single use: the answer carries the next one
    access, expires = desk.issue("gohighlevel", "eyJhbGciOi.", desk.limits.gohighlevel_token_lifetime)
    body = {"access_token": access, "token_type": "Bearer", "refresh_token": desk.new_refresh_token("eyJyZWZyZXNo."),
            "scope": "contacts.readonly", "userType": "Location", "locationId": p.get("location_id") or "sim-location"}
    if expires is not None:
        body["expires_in"] = expires
    return SimResponse(200, body)


def expired() -> SimResponse:
    return SimResponse(401, {"statusCode": 401, "message": "Invalid JWT"})


class GoHighLevelQuota(Quota):
    """A rolling 10 s burst and a daily cap, per location."""

    def __init__(self, limits, clock):
        super().__init__(limits, clock)
        burst, daily = limits.gohighlevel_burst, limits.gohighlevel_daily
        self.burst = Keyed(lambda: RollingWindow(burst, 10.0)) if burst else None
        self.daily = Keyed(lambda: DailyWindow(daily)) if daily else None

    def _windows(self, req: SimRequest) -> tuple[RollingWindow | None, DailyWindow | None]:
        location = req.query.get("locationId", "").strip()
        return (self.burst(location) if self.burst else None), (self.daily(location) if self.daily else None)

    def admit(self, req: SimRequest, now: float) -> Refusal | None:
        burst, daily = self._windows(req)
        policy = take_all(now, [("DAILY", daily, 1), ("BURST", burst, 1)])
        return None if policy is None else Refusal(policy, over_limit())

    def headers(self, req: SimRequest, now: float) -> dict[str, str]:
        burst, daily = self._windows(req)
        out = {}
        if daily is not None:
            out.update({"X-RateLimit-Limit-Daily": str(daily.limit),
                        "X-RateLimit-Daily-Remaining": str(max(0, daily.limit - daily.used(now)))})
        if burst is not None:
            out.update({"X-RateLimit-Interval-Milliseconds": str(round(self.clock.real(burst.period) * 1000)),
                        "X-RateLimit-Max": str(burst.limit),
                        "X-RateLimit-Remaining": str(max(0, burst.limit - burst.used(now)))})
        return out

    def snapshot(self, now: float) -> dict[str, Any]:
        return {"locations": self.burst.keys() if self.burst else (self.daily.keys() if self.daily else 0)}


VENDOR = Vendor(
    name="gohighlevel",
    routes=(Route("GET", DUPLICATE, duplicate, name="gohighlevel duplicate contact"),),
    over_limit=over_limit,
    unauthorized=unauthorized,
    server_error=server_error,
    quota=GoHighLevelQuota,
    token_routes=(Route("POST", TOKEN, token, name="gohighlevel oauth token"),),
    expired=expired,
)
