"""Salesforce REST API: SOQL query and SOSL parameterized search.

``GET /services/data/vNN.N/query?q=SELECT ... FROM Lead WHERE ...`` answers
``{"totalSize", "done", "records": [{"attributes": {"type", "url"}, "Id", ...}]}``;
``GET /services/data/vNN.N/parameterizedSearch/?q=...&sobject=Lead`` answers
``{"searchRecords": [...]}``; errors are a JSON list ``[{"message", "errorCode"}]``
(over the API limit: 403 ``REQUEST_LIMIT_EXCEEDED``).

Every contact of the book is a Lead and a Contact. The query's WHERE clause
is parsed properly (string literals with their backslash escapes, IN lists,
AND / OR / NOT, parentheses, LIKE) and compared as SOQL does: text equal
case-insensitively, as stored, so "(555) 010-0002" is found by that text
and not by "+15550100002". SOSL is a search index and finds a phone number
in any punctuation, as Salesforce's does.

Field values: Phone, MobilePhone, Email, FirstName, LastName from the book;
DoNotCall from ``dnc``; Lead Status and IsConverted from ``lifecyclestage``
(``customer`` is a converted Lead). A book column named like a Salesforce
field (``Status``, ``IsConverted``, ``HomePhone`` ...) wins.

Batching: one query asks about many phones with ``WHERE Phone IN ('..', '..')``;
each record holds the fields the query selects (select ``Phone`` and
``MobilePhone`` to split the answer per lead). A URI longer than 16,384
bytes answers 414, URI plus headers longer than that 431 (Salesforce's
documented limits); always enforced.

Limits (``SalesforceQuota``): API requests per org in a rolling 24 h
(``salesforce_daily``); past it, 403 ``REQUEST_LIMIT_EXCEEDED`` with no
Retry-After. Every answer carries ``Sforce-Limit-Info: api-usage=USED/LIMIT``.
Tokens: ``salesforce_oauth.py``.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Callable

from ..contacts import Contact, ContactBook, phone_forms
from ..limits import DAY, Quota, Refusal, RollingWindow, take_all
from . import Route, SimRequest, SimResponse, Vendor
from .salesforce_oauth import TOKEN, token

QUERY = r"/services/data/v(?P<version>\d+\.\d+)/query/?"
SEARCH = r"/services/data/v(?P<version>\d+\.\d+)/parameterizedSearch/?"
OBJECTS = {"Lead": "00Q", "Contact": "003"}
MAX_ROWS = 2000
URI_LIMIT = 16_384  # bytes, for the URI and for URI + headers
MODIFIED = "2024-01-15T09:30:00.000+0000"
PHONE_FIELDS = ("Phone", "MobilePhone", "HomePhone", "OtherPhone")
# lifecyclestage -> Lead Status (Salesforce's default picklist)
STATUS = {"customer": "Closed - Converted", "opportunity": "Working - Contacted",
          "salesqualifiedlead": "Working - Contacted"}


def error(status: int, code: str, message: str) -> SimResponse:
    return SimResponse(status, [{"message": message, "errorCode": code}])


def over_limit() -> SimResponse:
    return error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def unauthorized() -> SimResponse:
    return error(401, "INVALID_SESSION_ID", "Session expired or invalid")


def server_error(status: int) -> SimResponse:
    return error(status, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support.")


def too_long(req: SimRequest) -> SimResponse | None:
    uri = len(req.target.encode())
    if uri > URI_LIMIT:
        return error(414, "URI_TOO_LONG", f"The length of the URI ({uri:,} bytes) exceeds the {URI_LIMIT:,} byte limit.")
    headers = sum(len(k) + len(v) + 4 for k, v in req.headers.items())
    if uri + headers > URI_LIMIT:
        return error(431, "REQUEST_HEADER_FIELDS_TOO_LARGE",
                     f"The URI and headers ({uri + headers:,} bytes) exceed the {URI_LIMIT:,} byte limit.")
    return None


class Malformed(ValueError):
    def __init__(self, message: str, code: str = "MALFORMED_QUERY"):
        super().__init__(message)
        self.code = code


# -- records --------------------------------------------------------------------
def record_id(obj: str, contact_id: str) -> str:
    """An 18-character Salesforce-style id: key prefix + the contact's id."""
    core = re.sub(r"[^A-Za-z0-9]", "", contact_id)[-12:].rjust(12, "0")
    return f"{OBJECTS[obj]}{core}AAA"


def _typed(value: str) -> Any:
    low = value.strip().lower()
    return low == "true" if low in ("true", "false") else value


def fields_of(c: Contact, obj: str) -> dict[str, Any]:
    stage = c.get("lifecyclestage").casefold()
    first, last = c.get("firstname"), c.get("lastname")
    f: dict[str, Any] = {
        "Id": record_id(obj, c.id), "FirstName": first or None, "LastName": last or None,
        "Name": " ".join(x for x in (first, last) if x) or None,
        "Phone": c.phone or None, "MobilePhone": c.get("mobilephone") or None, "Email": c.email or None,
        "DoNotCall": c.dnc, "HasOptedOutOfEmail": False, "LastModifiedDate": MODIFIED, "CreatedDate": MODIFIED,
    }
    if obj == "Lead":
        f.update(Status=STATUS.get(stage, "Open - Not Contacted"), IsConverted=stage == "customer")
    else:
        f.update(HomePhone=None, OtherPhone=None)
    for name, value in c.properties.items():  # book columns named like Salesforce fields
        if name[:1].isupper():
            f[name] = _typed(value)
    return f


def known_fields(book: ContactBook, obj: str) -> dict[str, Any]:
    """Every field a record of ``obj`` may have (the book may add columns)."""
    known = dict.fromkeys(fields_of(Contact("0"), obj))
    for c in book:
        known.update(dict.fromkeys(k for k in c.properties if k[:1].isupper()))
    return known


def _record(c: Contact, obj: str, version: str, wanted: list[str]) -> dict[str, Any]:
    values = fields_of(c, obj)
    out: dict[str, Any] = {"attributes": {"type": obj, "url": f"/services/data/v{version}/sobjects/{obj}/{values['Id']}"}}
    for name in wanted:
        key = next((k for k in values if k.lower() == name.lower()), name)
        out[key] = values.get(key)
    return out


def _canonical(name: str, values: dict[str, Any], obj: str) -> str:
    """The declared spelling of a field (names are case-insensitive in SOQL);
    INVALID_FIELD for a field the object does not have."""
    for key in values:
        if key.lower() == name.lower():
            return key
    raise Malformed(f"No such column '{name}' on entity '{obj}'. If you are attempting to use a custom field, "
                    "be sure to append the '__c' after the custom field name.", "INVALID_FIELD")


# -- SOQL -----------------------------------------------------------------------
_ESCAPES = {"n": "\n", "N": "\n", "r": "\r", "R": "\r", "t": "\t", "T": "\t", "b": "\b", "B": "\b",
            "f": "\f", "F": "\f", '"': '"', "'": "'", "\\": "\\"}
_TOKEN = re.compile(r"\s+|(?P<num>-?\d+(?:\.\d+)?)\b|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)|(?P<op><>|!=|<=|>=|[=<>(),])")


def tokenize(q: str) -> list[tuple[str, Any]]:
    """[(kind, value)] with kinds num, word, op and str; a str's value is its
    characters as [(raw | lit | esc, text)]: escapes decoded (lit), ``\\%`` and
    ``\\_`` kept apart (esc) so LIKE can tell them from its wildcards."""
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(q):
        if q[i] == "'":
            j, buf = i + 1, []
            while True:
                if j >= len(q):
                    raise Malformed("unterminated string literal")
                ch = q[j]
                if ch == "\\":
                    nxt = q[j + 1:j + 2]
                    if nxt in _ESCAPES:
                        buf.append(("lit", _ESCAPES[nxt]))
                    elif nxt in ("%", "_"):
                        buf.append(("esc", nxt))  # a literal % or _ (meaningful in LIKE only)
                    else:
                        raise Malformed(f"Invalid string literal '\\{nxt}'. Illegal character sequence '\\{nxt}' in string literal.")
                    j += 2
                    continue
                if ch == "'":
                    break
                buf.append(("raw", ch))
                j += 1
            out.append(("str", buf))
            i = j + 1
            continue
        m = _TOKEN.match(q, i)
        if not m:
            raise Malformed(f"unexpected character {q[i]!r} at {i}")
        if m.lastgroup:
            out.append((m.lastgroup, m.group(m.lastgroup)))
        i = m.end()
    return out


def _text(parts: list[tuple[str, str]]) -> str:
    return "".join(v for _, v in parts)


def _like(parts: list[tuple[str, str]]) -> re.Pattern[str]:
    rx = "".join(".*" if (k, v) == ("raw", "%") else "." if (k, v) == ("raw", "_") else re.escape(v) for k, v in parts)
    return re.compile(rx, re.IGNORECASE | re.DOTALL)


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]):
        self.t, self.i = tokens, 0
        self.used: list[str] = []  # every field the query names

    def peek(self, word: str | None = None) -> bool:
        if self.i >= len(self.t):
            return False
        kind, value = self.t[self.i]
        if word is None:
            return True
        return (kind == "word" and value.upper() == word) or (kind == "op" and value == word)

    def take(self, word: str | None = None) -> tuple[str, Any]:
        if self.i >= len(self.t) or (word is not None and not self.peek(word)):
            got = self.t[self.i][1] if self.i < len(self.t) else "end of query"
            raise Malformed(f"unexpected token: '{got}'" + (f" (expected {word})" if word else ""))
        tok = self.t[self.i]
        self.i += 1
        return tok

    def ident(self) -> str:
        kind, value = self.take()
        if kind != "word":
            raise Malformed(f"unexpected token: '{value}'")
        return value

    # SELECT a, b FROM Obj [WHERE expr] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST]] [LIMIT n] [OFFSET n]
    def query(self) -> dict[str, Any]:
        self.take("SELECT")
        fields = [self.ident()]
        while self.peek(","):
            self.take(",")
            fields.append(self.ident())
        self.take("FROM")
        obj = self.ident()
        where = None
        order: tuple[str, bool] | None = None
        limit = offset = None
        if self.peek("WHERE"):
            self.take("WHERE")
            where = self.expr()
        if self.peek("ORDER"):
            self.take("ORDER")
            self.take("BY")
            field, desc = self.ident(), False
            if self.peek("ASC") or self.peek("DESC"):
                desc = self.take()[1].upper() == "DESC"
            if self.peek("NULLS"):
                self.take("NULLS")
                self.take()
            order = (field, desc)
        if self.peek("LIMIT"):
            self.take("LIMIT")
            limit = self.number()
        if self.peek("OFFSET"):
            self.take("OFFSET")
            offset = self.number()
        if self.peek():
            raise Malformed(f"unexpected token: '{self.t[self.i][1]}'")
        return {"fields": fields, "object": obj, "where": where, "order": order, "limit": limit, "offset": offset or 0}

    def number(self) -> int:
        kind, value = self.take()
        if kind != "num" or "." in value or int(value) < 0:
            raise Malformed(f"unexpected token: '{value}'")
        return int(value)

    def expr(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self.conj()]
        while self.peek("OR"):
            self.take("OR")
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def conj(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self.neg()]
        while self.peek("AND"):
            self.take("AND")
            parts.append(self.neg())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def neg(self) -> Callable[[dict[str, Any]], bool]:
        if self.peek("NOT"):
            self.take("NOT")
            inner = self.neg()
            return lambda r: not inner(r)
        if self.peek("("):
            self.take("(")
            inner = self.expr()
            self.take(")")
            return inner
        return self.condition()

    def value(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return _text(value)
        if kind == "num":
            return float(value)
        if kind == "word" and value.upper() in ("TRUE", "FALSE"):
            return value.upper() == "TRUE"
        if kind == "word" and value.upper() == "NULL":
            return None
        raise Malformed(f"unexpected token: '{value}'")

    def condition(self) -> Callable[[dict[str, Any]], bool]:
        field = self.ident()
        self.used.append(field)
        negate = False
        if self.peek("NOT"):
            self.take("NOT")
            negate = True
            if not self.peek("IN"):
                raise Malformed("NOT is only allowed before IN here")
        if self.peek("IN"):
            self.take("IN")
            self.take("(")
            values = [self.value()]
            while self.peek(","):
                self.take(",")
                values.append(self.value())
            self.take(")")
            return lambda r: (any(_equal(r.get(field.lower()), v) for v in values)) != negate
        if self.peek("LIKE"):
            self.take("LIKE")
            kind, parts = self.take()
            if kind != "str":
                raise Malformed("LIKE needs a string literal")
            rx = _like(parts)
            return lambda r: isinstance(r.get(field.lower()), str) and rx.fullmatch(r[field.lower()]) is not None
        kind, op = self.take()
        if kind != "op" or op not in ("=", "!=", "<>", "<", ">", "<=", ">="):
            raise Malformed(f"unexpected token: '{op}'")
        value = self.value()
        if op == "=":
            return lambda r: _equal(r.get(field.lower()), value)
        if op in ("!=", "<>"):
            return lambda r: not _equal(r.get(field.lower()), value)
        cmp = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}[op]
        return lambda r: r.get(field.lower()) is not None and value is not None and \
            cmp(str(r[field.lower()]).casefold(), str(value).casefold())


def _equal(stored: Any, value: Any) -> bool:
    if value is None or value == "":  # SOQL: '' and null both mean "no value"
        return stored is None or stored == ""
    if stored is None:
        return False
    if isinstance(value, bool) or isinstance(stored, bool):
        return isinstance(value, bool) and isinstance(stored, bool) and stored == value
    if isinstance(value, float):
        try:
            return float(stored) == value
        except (TypeError, ValueError):
            return False
    return str(stored).casefold() == str(value).casefold()


def query(req: SimRequest, book: ContactBook) -> SimResponse:
    refused = too_long(req)
    if refused:
        return refused
    q = req.query.get("q", "")
    if not q.strip():
        return error(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        parser = _Parser(tokenize(q))
        parsed = parser.query()
        obj = next((o for o in OBJECTS if o.lower() == parsed["object"].lower()), None)
        if obj is None:
            raise Malformed(f"sObject type '{parsed['object']}' is not supported.", "INVALID_TYPE")
        known = known_fields(book, obj)
        for name in parsed["fields"] + parser.used + ([parsed["order"][0]] if parsed["order"] else []):
            _canonical(name, known, obj)  # raises INVALID_FIELD
        rows = []
        for c in book:
            lowered = {k.lower(): v for k, v in fields_of(c, obj).items()}
            if parsed["where"] is None or parsed["where"](lowered):
                rows.append((c, lowered))
        if parsed["order"]:
            key, desc = parsed["order"][0].lower(), parsed["order"][1]
            rows.sort(key=lambda row: (row[1].get(key) is None, str(row[1].get(key) or "").casefold()), reverse=desc)
        rows = rows[parsed["offset"]:]
        if parsed["limit"] is not None:
            rows = rows[:parsed["limit"]]
        records = [_record(c, obj, req.params["version"], parsed["fields"]) for c, _ in rows[:MAX_ROWS]]
    except Malformed as exc:
        return error(400, exc.code, str(exc))
    return SimResponse(200, {"totalSize": len(rows), "done": len(rows) <= MAX_ROWS, "records": records})


# -- SOSL parameterized search ------------------------------------------------------
SEARCH_GROUPS = ("ALL", "NAME", "EMAIL", "PHONE", "SIDEBAR")


def search_terms(q: str) -> list[list[tuple[str, str | None]]]:
    """OR-groups of AND-ed terms ``(text, fnmatch pattern or None)``. A
    "quoted phrase" is literal; a bare word may hold * and ? wildcards; a
    backslash makes the next character literal; ( ) { } [ ] group (ignored)."""
    groups: list[list[tuple[str, str | None]]] = [[]]
    i = 0
    while i < len(q):
        ch = q[i]
        if ch.isspace():
            i += 1
            continue
        if ch == '"':
            j, buf = i + 1, []
            while j < len(q) and q[j] != '"':
                if q[j] == "\\" and j + 1 < len(q):
                    j += 1
                buf.append(q[j])
                j += 1
            if j >= len(q):
                raise Malformed("unterminated phrase", "MALFORMED_SEARCH")
            groups[-1].append(("".join(buf), None))
            i = j + 1
            continue
        j, text, pat, wild = i, [], [], False
        while j < len(q) and not q[j].isspace() and q[j] != '"':
            c = q[j]
            if c == "\\" and j + 1 < len(q):
                text.append(q[j + 1])
                pat.append(f"[{q[j + 1]}]" if q[j + 1] in "*?[" else q[j + 1])
                j += 2
                continue
            j += 1
            if c in "(){}[]":
                continue
            wild = wild or c in "*?"
            text.append(c)
            pat.append(c)
        word = "".join(text)
        if word.upper() == "OR":
            groups.append([])
        elif word and word.upper() != "AND":
            groups[-1].append((word, "".join(pat).casefold() if wild else None))
        i = j
    return [g for g in groups if g]


def _term_hits(term: str, pattern: str | None, group: str, values: dict[str, Any]) -> bool:
    texts: list[str] = []
    if group in ("ALL", "PHONE", "SIDEBAR") and pattern is None:
        # the search index knows a phone number in every punctuation
        forms = phone_forms(term) if any(ch.isdigit() for ch in term) else frozenset()
        if forms and any(forms & phone_forms(str(values[f])) for f in PHONE_FIELDS if values.get(f)):
            return True
    if group in ("ALL", "EMAIL", "SIDEBAR"):
        texts.append(str(values.get("Email") or ""))
    if group in ("ALL", "NAME", "SIDEBAR"):
        texts += [str(values.get("FirstName") or ""), str(values.get("LastName") or ""), str(values.get("Name") or "")]
    needle = term.casefold()
    for text in (t.casefold() for t in texts if t):
        if pattern is not None:
            if fnmatch.fnmatchcase(text, pattern) or any(fnmatch.fnmatchcase(w, pattern) for w in text.split()):
                return True
        elif text == needle or needle in text.split():
            return True
    return False


def parameterized_search(req: SimRequest, book: ContactBook) -> SimResponse:
    refused = too_long(req)
    if refused:
        return refused
    q = req.query.get("q", "")
    if len(q.strip().strip('"')) < 2:
        return error(400, "INVALID_SEARCH", "search term must be longer than one character")
    group = req.query.get("in", "ALL").upper()
    if group not in SEARCH_GROUPS:
        return error(400, "INVALID_SEARCH", f"Invalid search scope: {req.query.get('in')}")
    obj_name = req.query.get("sobject", "Lead")
    obj = next((o for o in OBJECTS if o.lower() == obj_name.lower()), None)
    if obj is None:
        return error(400, "INVALID_TYPE", f"sObject type '{obj_name}' is not supported.")
    wanted = [f.strip() for f in req.query.get(f"{obj}.fields", req.query.get("fields", "Id")).split(",") if f.strip()]
    if "id" not in (w.lower() for w in wanted):
        wanted.insert(0, "Id")
    try:
        known = known_fields(book, obj)
        for name in wanted:
            _canonical(name, known, obj)
        limit = int(req.query.get("overallLimit") or req.query.get("defaultLimit") or MAX_ROWS)
        groups = search_terms(q)
        records = []
        for c in book:
            values = fields_of(c, obj)
            if any(all(_term_hits(t, p, group, values) for t, p in terms) for terms in groups):
                records.append(_record(c, obj, req.params["version"], wanted))
            if len(records) >= limit:
                break
    except ValueError as exc:
        code = exc.code if isinstance(exc, Malformed) else "INVALID_SEARCH"
        return error(400, code, str(exc))
    return SimResponse(200, {"searchRecords": records})


class SalesforceQuota(Quota):
    """API requests per org per rolling 24 h, told on every answer."""

    def __init__(self, limits, clock):
        super().__init__(limits, clock)
        self.daily = RollingWindow(limits.salesforce_daily, DAY) if limits.salesforce_daily else None

    def admit(self, req: SimRequest, now: float) -> Refusal | None:
        policy = take_all(now, [("REQUEST_LIMIT_EXCEEDED", self.daily, 1)])
        return None if policy is None else Refusal(policy, over_limit())  # no Retry-After: it will not clear soon

    def headers(self, req: SimRequest, now: float) -> dict[str, str]:
        if self.daily is None:
            return {}
        return {"Sforce-Limit-Info": f"api-usage={self.daily.used(now)}/{self.daily.limit}"}

    def snapshot(self, now: float) -> dict[str, Any]:
        return {"daily_used": self.daily.used(now) if self.daily else None}


VENDOR = Vendor(
    name="salesforce",
    routes=(
        Route("GET", QUERY, query, name="salesforce query"),
        Route("GET", SEARCH, parameterized_search, name="salesforce parameterizedSearch"),
    ),
    over_limit=over_limit,
    unauthorized=unauthorized,
    server_error=server_error,
    quota=SalesforceQuota,
    token_routes=(Route("POST", TOKEN, token, name="salesforce oauth2 token"),),
)
