"""Pipedrive API v2 persons search: ``GET /api/v2/persons/search``.

``term`` (required; at least 2 characters, 1 with ``exact_match``),
``fields`` (phone, email, name, notes, custom_fields; default all),
``exact_match``, ``limit``. The answer follows the published
GetPersonSearchResponse: ``{"success": true, "data": {"items": [{"result_score",
"item": {"id", "type", "name", "phones", "emails", ...}}]}, "additional_data":
{"next_cursor": null}}``. Over the limit: 429 with ``x-ratelimit-*`` headers.
The API token comes in the ``x-api-token`` header (or ``api_token`` in the query).

One liberty: a phone term matches a number in any normal form (exact match)
or as a run of its digits (partial match). Item ids are the book's ids as
integers; ``organization`` comes from a ``company`` column.

Limits (``PipedriveQuota``): requests per rolling 2-second window per token
(``pipedrive_burst``, 20 for Essential api_tokens) and a daily budget of
tokens per company (``pipedrive_daily_tokens``; a search costs
``pipedrive_search_cost``). Every answer carries ``x-ratelimit-limit``,
``x-ratelimit-remaining`` and ``x-ratelimit-reset`` (seconds until the
window frees a slot). Over either: 429.
"""

from __future__ import annotations

import zlib
from typing import Any

from ..contacts import Contact, ContactBook, phone_forms
from ..limits import DailyWindow, Keyed, Quota, Refusal, RollingWindow, real_seconds, take_all
from . import Route, SimRequest, SimResponse, Vendor

SEARCH = "/api/v2/persons/search"
SEARCH_FIELDS = ("custom_fields", "email", "notes", "phone", "name")
MAX_LIMIT = 500
# sent as they are when limits are off; PipedriveQuota replaces them with real counts
RATE_HEADERS = {"x-ratelimit-limit": "80", "x-ratelimit-remaining": "79", "x-ratelimit-reset": "2"}


def error(status: int, message: str, **extra: Any) -> SimResponse:
    return SimResponse(status, {"success": False, "error": message, "errorCode": status,
                                "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.",
                                **extra})


def over_limit() -> SimResponse:
    resp = error(429, "Request over limit")
    resp.headers.update({**RATE_HEADERS, "x-ratelimit-remaining": "0"})
    return resp


def unauthorized() -> SimResponse:
    return error(401, "unauthorized access")


def server_error(status: int) -> SimResponse:
    return error(status, "Internal server error")


def credentials(req: SimRequest) -> str | None:
    return req.headers.get("x-api-token") or req.query.get("api_token") or None


def person_id(c: Contact) -> int:
    return int(c.id) if c.id.isdigit() else zlib.crc32(c.id.encode()) % 10**9


def item(c: Contact) -> dict[str, Any]:
    name = " ".join(x for x in (c.get("firstname"), c.get("lastname")) if x) or c.email or c.phone
    company = c.get("company") or c.get("organization")
    return {
        "id": person_id(c), "type": "person", "name": name,
        "phones": [p for p in (c.phone, c.get("mobilephone")) if p],
        "emails": [c.email] if c.email else [],
        "visible_to": 3, "owner": {"id": 1},
        "organization": {"id": zlib.crc32(company.encode()) % 10**6, "name": company, "address": None} if company else None,
        "custom_fields": [], "notes": [c.get("notes")] if c.get("notes") else [],
    }


def _score(c: Contact, term: str, fields: tuple[str, ...], exact: bool) -> float:
    """0 for no match; higher for better matches (exact beats partial)."""
    t = term.strip().casefold()
    if "phone" in fields:
        stored = [p for p in (c.phone, c.get("mobilephone")) if p]
        if exact and any(phone_forms(term) & phone_forms(p) for p in stored):
            return 1.0
        digits = "".join(ch for ch in term if ch.isdigit())
        if not exact and len(digits) >= 2 and any(digits in "".join(ch for ch in p if ch.isdigit()) for p in stored):
            return 0.6
    texts = []
    if "email" in fields and c.email:
        texts.append(c.email)
    if "name" in fields:
        texts.append(" ".join(x for x in (c.get("firstname"), c.get("lastname")) if x))
    if "notes" in fields and c.get("notes"):
        texts.append(c.get("notes"))
    for text in (x.casefold() for x in texts if x):
        if text == t:
            return 1.0
        if not exact and t in text:
            return 0.4
    return 0.0


def search(req: SimRequest, book: ContactBook) -> SimResponse:
    q = req.query
    term = q.get("term", "")
    exact = q.get("exact_match", "false").lower() in ("true", "1")
    if len(term.strip()) < (1 if exact else 2):
        return error(400, "Validation failed: term: the search term must be at least 2 characters long (1 if using exact_match)")
    fields = tuple(f.strip() for f in q.get("fields", ",".join(SEARCH_FIELDS)).split(",") if f.strip())
    bad = [f for f in fields if f not in SEARCH_FIELDS]
    if bad or not fields:
        return error(400, f"Validation failed: fields: must be one or more of {', '.join(SEARCH_FIELDS)}")
    try:
        limit = int(q.get("limit") or 100)
    except ValueError:
        return error(400, "Validation failed: limit: must be an integer")
    if not 1 <= limit <= MAX_LIMIT:
        return error(400, f"Validation failed: limit: must be 1..{MAX_LIMIT}")
    scored = [(s, i, c) for i, c in enumerate(book) if (s := _score(c, term, fields, exact)) > 0]
    scored.sort(key=lambda x: (-x[0], x[1]))
    items = [{"result_score": round(s, 4), "item": item(c)} for s, _, c in scored[:limit]]
    resp = SimResponse(200, {"success": True, "data": {"items": items}, "additional_data": {"next_cursor": None}})
    resp.headers.update(RATE_HEADERS)
    return resp


class PipedriveQuota(Quota):
    """A rolling 2-second burst per token; a daily token budget per company."""

    def __init__(self, limits, clock):
        super().__init__(limits, clock)
        burst = limits.pipedrive_burst
        self.burst = Keyed(lambda: RollingWindow(burst, 2.0)) if burst else None
        self.daily = DailyWindow(limits.pipedrive_daily_tokens) if limits.pipedrive_daily_tokens else None
        self.cost = limits.pipedrive_search_cost

    def _burst(self, req: SimRequest) -> RollingWindow | None:
        return self.burst(credentials(req) or "") if self.burst else None

    def admit(self, req: SimRequest, now: float) -> Refusal | None:
        policy = take_all(now, [("DAILY_TOKENS", self.daily, self.cost), ("BURST", self._burst(req), 1)])
        return None if policy is None else Refusal(policy, over_limit())

    def headers(self, req: SimRequest, now: float) -> dict[str, str]:
        w = self._burst(req)
        if w is None:
            return {}
        return {"x-ratelimit-limit": str(w.limit), "x-ratelimit-remaining": str(max(0, w.limit - w.used(now))),
                "x-ratelimit-reset": str(real_seconds(self.clock, w.reset_in(now) or w.period))}

    def snapshot(self, now: float) -> dict[str, Any]:
        return {"daily_tokens_used": self.daily.used(now) if self.daily else None,
                "tokens": self.burst.keys() if self.burst else None}


VENDOR = Vendor(
    name="pipedrive",
    routes=(Route("GET", SEARCH, search, name="pipedrive persons search"),),
    over_limit=over_limit,
    unauthorized=unauthorized,
    server_error=server_error,
    credentials=credentials,
    quota=PipedriveQuota,
)
