"""Zoho CRM v8 search: ``GET /crm/v8/{Leads,Contacts}/search``.

One of ``criteria``, ``email``, ``phone``, ``word`` (Zoho's precedence, in
that order) selects records; the answer is ``{"data": [...], "info": {...}}``,
or **HTTP 204 with an empty body** when nothing matches. Errors follow the
published schemas (``{"status": "error", "code", "message", "details"}``);
over the API limit: 429 ``TOO_MANY_REQUESTS``.

``criteria`` is parsed properly: ``((Field:op:value)and|or(...))`` with
``\\(``, ``\\)``, ``\\,`` and ``\\\\`` escapes; operators ``equals``,
``not_equal``, ``starts_with``, ``in`` (comma-separated). It compares the
stored text (case-insensitively), so a phone typed "(555) 010-0002" is
found by that text only. One liberty: the ``phone`` parameter matches a
number in any normal form.

Every contact of the book is a Lead and a Contact. Leads: ``customer`` in
``lifecyclestage`` is a converted lead (``$converted``; hidden unless
``converted=true|both``, as in Zoho); Lead_Status comes from the stage.
A book column named like a Zoho field (``Lead_Status``, ``Home_Phone`` ...) wins.

Batching: ``criteria`` holds at most 10 conditions
(``((Phone:equals:a)or(Phone:equals:b)...)``; more answers 400
``CRITERIA_LIMIT_EXCEEDED`` in the v8 spec's shape; the spec's own number is
15, older versions and docs say 10, and 10 is the safe one), and an ``in``
condition at most 100 values (400 ``INVALID_QUERY`` "Only 100 values are
allowed in "IN" criteria", as the spec says). Records carry ``Phone`` and
``Mobile``, so a batched answer can be split back per lead.

Limits (``ZohoQuota``): calls in flight per org (``zoho_concurrency``, 10
for Standard) and API credits per rolling 24 h (``zoho_daily_credits``, one
per search); over either: 429 ``TOO_MANY_REQUESTS``. Tokens:
``POST /oauth/v2/token`` (grant_type=refresh_token, client_id,
client_secret, refresh_token; form body or query string) answers
``access_token``, ``expires_in`` (``zoho_token_lifetime``, one hour),
``api_domain`` (the simulator), ``token_type``, ``scope``; a refused grant
answers HTTP 200 with ``{"error": "invalid_code"}`` as Zoho's accounts
server does. An expired token answers 401 ``INVALID_TOKEN``.
"""

from __future__ import annotations

import re
import zlib
from typing import Any, Callable

from ..contacts import Contact, ContactBook
from ..limits import DAY, Quota, Refusal, RollingWindow, take_all
from ..oauth import TokenDesk, form, refresh_grant
from . import Route, SimRequest, SimResponse, Vendor

SEARCH = r"/crm/v(?P<version>\d+)/(?P<module>[A-Za-z_]+)/search"
TOKEN = "/oauth/v2/token"
MAX_CONDITIONS = 10
MAX_IN_VALUES = 100
MODULES = ("Leads", "Contacts")
MAX_PER_PAGE = 200
CREATED = "2024-01-15T09:30:00-05:00"
OWNER = {"name": "Sam Seller", "id": "4150868000000225013", "email": "sam.seller@example.com"}
LEAD_STATUS = {"customer": "Contacted", "opportunity": "Pre-Qualified", "salesqualifiedlead": "Pre-Qualified",
               "marketingqualifiedlead": "Contacted", "subscriber": "Contact in Future"}
# criteria field names -> book names (other names: a book column of that name)
FIELDS = {"phone": "Phone", "mobile": "Mobile", "email": "Email", "first_name": "First_Name",
          "last_name": "Last_Name", "full_name": "Full_Name", "id": "id", "lead_status": "Lead_Status"}


def error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> SimResponse:
    return SimResponse(status, {"status": "error", "code": code, "message": message, "details": details or {}})


def over_limit() -> SimResponse:
    return error(429, "TOO_MANY_REQUESTS", "please check if the API limit is exceeded")


def unauthorized() -> SimResponse:
    return error(401, "INVALID_TOKEN", "invalid oauth token")


def server_error(status: int) -> SimResponse:
    return error(status, "INTERNAL_ERROR", "Internal Server Error")


def record_id(contact_id: str) -> str:
    digits = "".join(ch for ch in contact_id if ch.isdigit()) or str(zlib.crc32(contact_id.encode()))
    return "4150868" + digits[-12:].rjust(12, "0")


def record(c: Contact, module: str) -> dict[str, Any]:
    stage = c.get("lifecyclestage").casefold()
    first, last = c.get("firstname"), c.get("lastname")
    r: dict[str, Any] = {
        "id": record_id(c.id), "Owner": dict(OWNER), "First_Name": first or None, "Last_Name": last or None,
        "Full_Name": " ".join(x for x in (first, last) if x) or None,
        "Phone": c.phone or None, "Mobile": c.get("mobilephone") or None, "Email": c.email or None,
        "Created_Time": CREATED, "Modified_Time": CREATED, "$approved": True,
    }
    if module == "Leads":
        r.update({"Lead_Status": LEAD_STATUS.get(stage, "Not Contacted"), "$converted": stage == "customer"})
    else:
        r.update({"Home_Phone": None, "Other_Phone": None, "Email_Opt_Out": False})
    for name, value in c.properties.items():  # book columns named like Zoho fields
        if name[:1].isupper() or name.startswith("$"):
            r[name] = {"true": True, "false": False}.get(value.strip().lower(), value)
    return r


# -- criteria -------------------------------------------------------------------
class BadCriteria(ValueError):
    pass


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.DOTALL)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if text[i] == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(text[i])
        i += 1
    parts.append("".join(cur))
    return parts


Predicate = Callable[[dict[str, Any]], bool]


def parse_criteria(text: str) -> tuple[Predicate, list[int]]:
    """The criteria's predicate and, per condition, how many values it holds."""
    conditions: list[int] = []
    pred, end = _group(text, 0, conditions)
    if end != len(text):
        raise BadCriteria(f"unexpected text after position {end}")
    return pred, conditions


def _group(text: str, i: int, conditions: list[int]) -> tuple[Predicate, int]:
    """``(cond)`` or ``(group op group op ...)`` starting at ``text[i] == "("``."""
    if i >= len(text) or text[i] != "(":
        raise BadCriteria(f"expected ( at position {i}")
    if text[i + 1:i + 2] == "(":
        preds, ops = [], []
        pred, i = _group(text, i + 1, conditions)
        preds.append(pred)
        while text[i:i + 1] != ")":
            m = re.match(r"(and|or)", text[i:], re.IGNORECASE)
            if not m:
                raise BadCriteria(f"expected and/or at position {i}")
            ops.append(m.group(1).lower())
            pred, i = _group(text, i + m.end(), conditions)
            preds.append(pred)
        if len(set(ops)) > 1:
            raise BadCriteria("mixing and/or needs parentheses")
        combine = any if ops and ops[0] == "or" else all
        return (lambda r: combine(p(r) for p in preds)), i + 1
    j = i + 1
    while j < len(text) and text[j] != ")":
        j += 2 if text[j] == "\\" else 1
    if j >= len(text):
        raise BadCriteria("unbalanced parentheses")
    return _condition(text[i + 1:j], conditions), j + 1


def _condition(raw: str, conditions: list[int]) -> Predicate:
    bits = raw.split(":", 2)
    if len(bits) != 3 or not bits[0] or not bits[1]:
        raise BadCriteria(f"expected Field:operator:value, got {_unescape(raw)!r}")
    field, op, value = bits[0].strip(), bits[1].strip().lower(), bits[2]
    if len(_split_unescaped(value, "(")) > 1:
        raise BadCriteria("unescaped ( in a value")
    if op != "in" and len(_split_unescaped(value, ",")) > 1:
        raise BadCriteria("unescaped , in a value")
    name = FIELDS.get(field.lower(), field)
    conditions.append(len(_split_unescaped(value, ",")) if op == "in" else 1)
    if op in ("equals", "not_equal", "starts_with"):
        want = _unescape(value).casefold()
        if op == "starts_with":
            return lambda r: isinstance(r.get(name), str) and r[name].casefold().startswith(want)
        hit = (lambda r: _text(r.get(name)) == want)
        return hit if op == "equals" else (lambda r: not hit(r))
    if op == "in":
        wants = {_unescape(v).strip().casefold() for v in _split_unescaped(value, ",")}
        return lambda r: _text(r.get(name)) in wants
    raise BadCriteria(f"operator {op!r} is not supported here")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).casefold()


# -- the search -----------------------------------------------------------------
def search(req: SimRequest, book: ContactBook) -> SimResponse:
    module = next((m for m in MODULES if m.lower() == req.params["module"].lower()), None)
    if module is None:
        return error(400, "INVALID_MODULE", "the module name given seems to be invalid", {"resource_path_index": 0})
    q = req.query
    try:
        per_page = int(q.get("per_page") or MAX_PER_PAGE)
        page = int(q.get("page") or 1)
    except ValueError:
        return error(400, "INVALID_REQUEST", "per_page and page must be integers", {})
    if not (1 <= per_page <= MAX_PER_PAGE and page >= 1):
        return error(400, "INVALID_REQUEST", f"per_page must be 1..{MAX_PER_PAGE}", {})
    converted = q.get("converted", "false").lower()
    if converted not in ("true", "false", "both"):
        return error(400, "INVALID_REQUEST", "converted must be true, false or both", {})

    if q.get("criteria"):
        try:
            pred, conditions = parse_criteria(q["criteria"])
        except BadCriteria:
            return error(400, "INVALID_QUERY", "Invalid query formed", {"api_name": "criteria", "param_name": "criteria"})
        if len(conditions) > MAX_CONDITIONS:
            return error(400, "CRITERIA_LIMIT_EXCEEDED",
                         f"no of criterium that can be given exceed the limit {MAX_CONDITIONS}", {})
        if max(conditions) > MAX_IN_VALUES:
            return error(400, "INVALID_QUERY", f'Only {MAX_IN_VALUES} values are allowed in "IN" criteria',
                         {"api_name": "criteria", "param_name": "criteria"})
        hits = [c for c in book if pred(record(c, module))]
    elif q.get("email"):
        hits = book.by_property("email", q["email"])
    elif q.get("phone"):
        hits = book.find(phone=q["phone"])  # any phone property, any normal form
    elif q.get("word"):
        word = q["word"].casefold()
        hits = [c for c in book if any(word in str(v).casefold() for v in record(c, module).values() if isinstance(v, str))]
    else:
        return error(400, "EXPECTED_PARAM_MISSING", "One of the expected parameter is missing",
                     {"param_names": ["criteria", "email", "phone", "word"]})

    records = [record(c, module) for c in hits]
    if module == "Leads" and converted != "both":
        records = [r for r in records if r["$converted"] == (converted == "true")]
    if not records:
        return SimResponse(204, None)  # Zoho: nothing matched, nothing in the body
    start = (page - 1) * per_page
    chunk = records[start:start + per_page]
    if not chunk:
        return SimResponse(204, None)
    info = {"per_page": per_page, "count": len(chunk), "page": page, "more_records": start + per_page < len(records)}
    return SimResponse(200, {"data": chunk, "info": info})


# -- OAuth and limits --------------------------------------------------------------
def token(req: SimRequest, desk: TokenDesk) -> SimResponse:
    wrong = refresh_grant(desk, form(req.body, req.query))
    if wrong:  # Zoho's accounts server says so in a 200
        return SimResponse(200, {"error": {"grant_type": "unsupported_grant_type", "client": "invalid_client",
                                           "refresh_token": "invalid_code"}[wrong]})
    access, expires = desk.issue("zoho", "1000.", desk.limits.zoho_token_lifetime)
    body = {"access_token": access, "scope": "ZohoCRM.modules.ALL", "api_domain": req.base_url(),
            "token_type": "Bearer"}
    if expires is not None:
        body["expires_in"] = expires
    return SimResponse(200, body)


class ZohoQuota(Quota):
    """Calls in flight per org, and API credits per rolling 24 h."""

    def __init__(self, limits, clock):
        super().__init__(limits, clock)
        self.cap = limits.zoho_concurrency
        self.in_flight = 0
        self.credits = RollingWindow(limits.zoho_daily_credits, DAY) if limits.zoho_daily_credits else None

    def admit(self, req: SimRequest, now: float) -> Refusal | None:
        if self.cap is not None and self.in_flight >= self.cap:
            return Refusal("CONCURRENCY", over_limit())
        policy = take_all(now, [("CREDITS", self.credits, 1)])
        if policy is not None:
            return Refusal(policy, over_limit())
        self.in_flight += 1
        return None

    def finish(self, req: SimRequest) -> None:
        self.in_flight = max(0, self.in_flight - 1)  # limits changed mid-flight: a fresh quota

    def snapshot(self, now: float) -> dict[str, Any]:
        return {"in_flight": self.in_flight, "credits_used": self.credits.used(now) if self.credits else None}


VENDOR = Vendor(
    name="zoho",
    routes=(Route("GET", SEARCH, search, name="zoho module search"),),
    over_limit=over_limit,
    unauthorized=unauthorized,
    server_error=server_error,
    quota=ZohoQuota,
    token_routes=(Route("POST", TOKEN, token, name="zoho oauth token"),),
)
