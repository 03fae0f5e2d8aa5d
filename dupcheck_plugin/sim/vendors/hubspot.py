"""HubSpot CRM v3 contacts search (``POST /crm/v3/objects/contacts/search``).

Answers follow HubSpot's published schemas (CollectionResponseWithTotalSimplePublicObject
and Error). One liberty: phone filters match any normal form of the number
(HubSpot compares stored strings), so a contact stored as "(555) 010-0002"
is found by "+15550100002" and by "5550100002".

Batching (HubSpot's own limits, always enforced): at most 5 filterGroups
(ORed; the changelog's number, the v3 spec's description says 6), 10 filters
per group, 25 filters in all; an ``IN`` filter takes its
``values`` list (at most ``MAX_IN_VALUES``, an assumption: HubSpot does not
publish it). Past them: 400 VALIDATION_ERROR. Every result carries
``properties.phone`` and ``email`` when set (``mobilephone`` when the
request's ``properties`` ask for it), so a batched answer can be split back
per lead.

Limits (``HubSpotQuota``): searches 4 per second per token (429
``policyName: SECONDLY``); every call 100 per rolling 10 s
(``TEN_SECONDLY_ROLLING``) and 250,000 per day (``DAILY``) per portal.
As HubSpot does, search answers carry no ``X-HubSpot-RateLimit-*`` headers;
the other endpoints (``GET /crm/v3/objects/contacts/{id}``) do.
Public apps' OAuth: ``hubspot_oauth.py``.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from ..contacts import PHONE_PROPERTIES, Contact, ContactBook, phone_forms
from ..limits import DailyWindow, Keyed, Quota, Refusal, RollingWindow, take_all
from . import Route, SimRequest, SimResponse, Vendor, correlation_id, default_credentials
from .hubspot_oauth import TOKEN, expired, token

SEARCH = "/crm/v3/objects/contacts/search"
CONTACT = r"/crm/v3/objects/contacts/(?P<contact_id>(?!search$)[^/]+)"
MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 10, 25
MAX_IN_VALUES = 100
DEFAULT_PROPERTIES = ("firstname", "lastname", "email")
ALWAYS = ("phone", "email")  # the simulator always shows what it matched on
QUERY_PROPERTIES = ("firstname", "lastname", "email", "phone", "mobilephone", "company")
DEFAULT_TIME = "2024-01-15T09:30:00.000Z"
MAX_LIMIT = 200
_TOKEN = re.compile(r"[^\W_]+")


def error(status: int, message: str, category: str, **extra: Any) -> SimResponse:
    return SimResponse(status, {"status": "error", "message": message, "correlationId": correlation_id(),
                                "category": category, **extra})


def over_limit(policy: str = "SECONDLY") -> SimResponse:
    # the real answer has no `category`; HubSpot's Error schema requires one, so it is added
    return SimResponse(429, {"status": "error", "message": f"You have reached your {policy.lower()} limit.",
                             "errorType": "RATE_LIMIT", "correlationId": correlation_id(),
                             "policyName": policy, "category": "RATE_LIMITS"})


def unauthorized() -> SimResponse:
    return error(401, "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
                 "INVALID_AUTHENTICATION")


def server_error(status: int) -> SimResponse:
    return error(status, "internal error", "INTERNAL_ERROR")


class BadRequest(ValueError):
    pass


# -- filters ------------------------------------------------------------------
def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


def _equals(book: ContactBook, pos: int, name: str, value: Any) -> bool:
    if name in PHONE_PROPERTIES:
        return book.phone_matches(pos, name, value)
    return book.contacts[pos].get(name).casefold() == str(value).strip().casefold()


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text.casefold()


def _compare(stored: str, op: str, value: Any, high: Any = None) -> bool:
    if not stored:
        return False
    a, b = _number(stored), _number(str(value))
    if type(a) is not type(b):
        a, b = str(a), str(b)
    if op == "GT":
        return a > b
    if op == "GTE":
        return a >= b
    if op == "LT":
        return a < b
    if op == "LTE":
        return a <= b
    c = _number(str(high))
    return b <= a <= (c if type(c) is type(a) else str(c))  # BETWEEN


def _contains_token(stored: str, value: Any) -> bool:
    needle = str(value).strip().casefold()
    hay = [stored.casefold(), *_tokens(stored)]
    if "*" in needle:
        return any(fnmatch.fnmatchcase(t, needle) for t in hay)
    return needle in hay


def _matches(book: ContactBook, pos: int, f: dict[str, Any]) -> bool:
    name, op = f["propertyName"], f["operator"]
    stored = book.contacts[pos].get(name)
    if op == "EQ":
        return _equals(book, pos, name, f.get("value", ""))
    if op == "NEQ":
        return not _equals(book, pos, name, f.get("value", ""))
    if op == "HAS_PROPERTY":
        return bool(stored)
    if op == "NOT_HAS_PROPERTY":
        return not stored
    if op == "IN":
        return any(_equals(book, pos, name, v) for v in f.get("values") or ())
    if op == "NOT_IN":
        return not any(_equals(book, pos, name, v) for v in f.get("values") or ())
    if op == "CONTAINS_TOKEN":
        return _contains_token(stored, f.get("value", ""))
    if op == "NOT_CONTAINS_TOKEN":
        return not _contains_token(stored, f.get("value", ""))
    return _compare(stored, op, f.get("value", ""), f.get("highValue"))


OPERATORS = {"EQ", "NEQ", "HAS_PROPERTY", "NOT_HAS_PROPERTY", "IN", "NOT_IN", "CONTAINS_TOKEN",
             "NOT_CONTAINS_TOKEN", "GT", "GTE", "LT", "LTE", "BETWEEN"}


def _check_filters(groups: Any) -> list[list[dict[str, Any]]]:
    if not isinstance(groups, list):
        raise BadRequest("filterGroups must be a list")
    if len(groups) > MAX_GROUPS:
        raise BadRequest(f"{len(groups)} filterGroups given; at most {MAX_GROUPS} are allowed")
    total = sum(len(g["filters"]) for g in groups if isinstance(g, dict) and isinstance(g.get("filters"), list))
    if total > MAX_FILTERS:
        raise BadRequest(f"{total} filters given; at most {MAX_FILTERS} are allowed in all filterGroups")
    out = []
    for i, group in enumerate(groups):
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise BadRequest(f"filterGroups[{i}].filters must be a list")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise BadRequest(f"filterGroups[{i}]: {len(filters)} filters given; "
                             f"at most {MAX_FILTERS_PER_GROUP} are allowed in one filterGroup")
        for j, f in enumerate(filters):
            where = f"filterGroups[{i}].filters[{j}]"
            if not isinstance(f, dict) or not isinstance(f.get("propertyName"), str):
                raise BadRequest(f"{where}: propertyName is required")
            if f.get("operator") not in OPERATORS:
                raise BadRequest(f"{where}: unknown operator {f.get('operator')!r}")
            if f["operator"] in ("IN", "NOT_IN") and not isinstance(f.get("values"), list):
                raise BadRequest(f"{where}: {f['operator']} needs a list in `values`")
            if f["operator"] in ("IN", "NOT_IN") and len(f["values"]) > MAX_IN_VALUES:
                raise BadRequest(f"{where}: {len(f['values'])} values given; at most {MAX_IN_VALUES} are allowed")
        out.append(filters)
    return out


def _group_hits(book: ContactBook, filters: list[dict[str, Any]]) -> set[int]:
    """Filters in a group are ANDed; an EQ/IN filter narrows the candidates by index first."""
    candidates: Any = range(len(book))
    for f in filters:
        if f["operator"] == "EQ":
            candidates = book.positions(f["propertyName"], f.get("value"))
            break
        if f["operator"] == "IN":
            candidates = sorted({p for v in f["values"] for p in book.positions(f["propertyName"], v)})
            break
    return {p for p in candidates if all(_matches(book, p, f) for f in filters)}


def _query_hits(book: ContactBook, query: str) -> set[int]:
    """Every word of ``query`` prefixes a word of a searchable property (or is the phone)."""
    words = _tokens(query)
    forms = phone_forms(query)
    hits = set()
    for pos, c in enumerate(book.contacts):
        if any(book.phone_matches(pos, p, query) for p in PHONE_PROPERTIES if forms):
            hits.add(pos)
            continue
        tokens = [t for p in QUERY_PROPERTIES for t in _tokens(c.get(p))]
        if words and all(any(t.startswith(w) for t in tokens) for w in words):
            hits.add(pos)
    return hits


# -- the answer ---------------------------------------------------------------
def _object(c: Contact, wanted: list[str]) -> dict[str, Any]:
    created = c.get("createdate") or DEFAULT_TIME
    updated = c.get("lastmodifieddate") or created
    props = {name: c.get(name) for name in (*ALWAYS, *wanted) if c.get(name)}
    props.update(hs_object_id=c.id, createdate=created, lastmodifieddate=updated)
    return {"id": c.id, "properties": props, "createdAt": created, "updatedAt": updated, "archived": False}


def search(req: SimRequest, book: ContactBook) -> SimResponse:
    body = req.body
    if not isinstance(body, dict):
        return error(400, "Invalid input JSON: the request body must be a JSON object", "VALIDATION_ERROR")
    try:
        query = body.get("query")
        if "filterGroups" not in body and not query:
            raise BadRequest("filterGroups is required")
        groups = _check_filters(body.get("filterGroups", []))
        limit = int(body.get("limit", 10))
        offset = int(body.get("after") or 0)
        if not 0 <= limit <= MAX_LIMIT or offset < 0:
            raise BadRequest(f"limit must be 0..{MAX_LIMIT} and after a non-negative offset")
        wanted = body.get("properties") or list(DEFAULT_PROPERTIES)
        if not isinstance(wanted, list):
            raise BadRequest("properties must be a list of property names")
    except (BadRequest, TypeError, ValueError) as exc:
        return error(400, f"Invalid input: {exc}", "VALIDATION_ERROR")

    # groups are ORed; no groups = everyone
    hits: set[int] = set(range(len(book))) if not groups else set()
    for filters in groups:
        hits |= _group_hits(book, filters)
    if query:
        hits &= _query_hits(book, str(query))
    ordered = sorted(hits)
    page = ordered[offset:offset + limit]
    answer: dict[str, Any] = {"total": len(ordered),
                              "results": [_object(book.contacts[p], [str(w) for w in wanted]) for p in page]}
    if offset + limit < len(ordered):
        answer["paging"] = {"next": {"after": str(offset + limit), "link": f"?after={offset + limit}"}}
    return SimResponse(200, answer)


def read(req: SimRequest, book: ContactBook) -> SimResponse:
    """``GET /crm/v3/objects/contacts/{id}`` (``idProperty=email`` looks it up by email)."""
    by = req.query.get("idProperty") or "id"
    found = book.by_property(by, req.params["contact_id"])
    if not found:
        return error(404, "Object not found.", "OBJECT_NOT_FOUND")
    wanted = [p.strip() for p in req.query.get("properties", "").split(",") if p.strip()] or list(DEFAULT_PROPERTIES)
    return SimResponse(200, _object(found[0], wanted))


class HubSpotQuota(Quota):
    """Searches per second per token; every call per rolling 10 s and per day, per portal."""

    def __init__(self, limits, clock):
        super().__init__(limits, clock)
        per_second = limits.hubspot_search_per_second
        self.secondly = Keyed(lambda: RollingWindow(per_second, 1.0)) if per_second else None
        self.ten_secondly = RollingWindow(limits.hubspot_ten_secondly, 10.0) if limits.hubspot_ten_secondly else None
        self.daily = DailyWindow(limits.hubspot_daily) if limits.hubspot_daily else None

    def admit(self, req: SimRequest, now: float) -> Refusal | None:
        secondly = None
        if self.secondly is not None and req.path == SEARCH:
            secondly = self.secondly(default_credentials(req) or "")
        policy = take_all(now, [("DAILY", self.daily, 1), ("TEN_SECONDLY_ROLLING", self.ten_secondly, 1),
                                ("SECONDLY", secondly, 1)])
        return None if policy is None else Refusal(policy, over_limit(policy))

    def headers(self, req: SimRequest, now: float) -> dict[str, str]:
        if req.path == SEARCH:
            return {}  # HubSpot sends none on search answers
        out = {}
        if self.daily is not None:
            out.update({"X-HubSpot-RateLimit-Daily": str(self.daily.limit),
                        "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily.limit - self.daily.used(now)))})
        if self.ten_secondly is not None:
            w = self.ten_secondly
            out.update({"X-HubSpot-RateLimit-Interval-Milliseconds": str(round(self.clock.real(w.period) * 1000)),
                        "X-HubSpot-RateLimit-Max": str(w.limit),
                        "X-HubSpot-RateLimit-Remaining": str(max(0, w.limit - w.used(now)))})
        return out

    def snapshot(self, now: float) -> dict[str, Any]:
        return {"daily_used": self.daily.used(now) if self.daily else None,
                "ten_secondly_used": self.ten_secondly.used(now) if self.ten_secondly else None,
                "search_tokens": self.secondly.keys() if self.secondly else None}


VENDOR = Vendor(
    name="hubspot",
    routes=(Route("POST", SEARCH, search, name="hubspot contacts search"),
            Route("GET", CONTACT, read, name="hubspot contact read")),
    over_limit=over_limit,
    unauthorized=unauthorized,
    server_error=server_error,
    quota=HubSpotQuota,
    token_routes=(Route("POST", TOKEN, token, name="hubspot oauth token"),),
    expired=expired,
)
