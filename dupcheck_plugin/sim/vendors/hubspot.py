"""HubSpot CRM v3 contacts search (``POST /crm/v3/objects/contacts/search``).

Answers follow HubSpot's published schemas (CollectionResponseWithTotalSimplePublicObject
and Error). One liberty: phone filters match any normal form of the number
(HubSpot compares stored strings), so a contact stored as "(555) 010-0002"
is found by "+15550100002" and by "5550100002".
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from ..contacts import PHONE_PROPERTIES, Contact, ContactBook, phone_forms
from . import Route, SimRequest, SimResponse, Vendor, correlation_id

SEARCH = "/crm/v3/objects/contacts/search"
DEFAULT_PROPERTIES = ("firstname", "lastname", "email")
ALWAYS = ("phone", "email")  # the simulator always shows what it matched on
QUERY_PROPERTIES = ("firstname", "lastname", "email", "phone", "mobilephone", "company")
DEFAULT_TIME = "2024-01-15T09:30:00.000Z"
MAX_LIMIT = 200
_TOKEN = re.compile(r"[^\W_]+")


def error(status: int, message: str, category: str, **extra: Any) -> SimResponse:
    return SimResponse(status, {"status": "error", "message": message, "correlationId": correlation_id(),
                                "category": category, **extra})


def over_limit() -> SimResponse:
    # the real answer has no `category`; HubSpot's Error schema requires one, so it is added
    return SimResponse(429, {"status": "error", "message": "You have reached your secondly limit.",
                             "errorType": "RATE_LIMIT", "correlationId": correlation_id(),
                             "policyName": "SECONDLY", "category": "RATE_LIMITS"})


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
    out = []
    for i, group in enumerate(groups):
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise BadRequest(f"filterGroups[{i}].filters must be a list")
        for j, f in enumerate(filters):
            where = f"filterGroups[{i}].filters[{j}]"
            if not isinstance(f, dict) or not isinstance(f.get("propertyName"), str):
                raise BadRequest(f"{where}: propertyName is required")
            if f.get("operator") not in OPERATORS:
                raise BadRequest(f"{where}: unknown operator {f.get('operator')!r}")
            if f["operator"] in ("IN", "NOT_IN") and not isinstance(f.get("values"), list):
                raise BadRequest(f"{where}: {f['operator']} needs a list in `values`")
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


VENDOR = Vendor(
    name="hubspot",
    routes=(Route("POST", SEARCH, search, name="hubspot contacts search"),),
    over_limit=over_limit,
    unauthorized=unauthorized,
    server_error=server_error,
)
