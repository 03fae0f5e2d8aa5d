"""A rendered request as it goes on the wire (httpx's URL rules), for
sending it and for showing it in a decision record."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Iterable

import httpx

from .. import jsontext
from ..adaptor.render import MASK, Rendered
from ..adaptor.urlquote import quote_plus as _quote

RESPONSE_BODY_BYTES = 64 * 1024  # what a decision record keeps of a CRM answer's body
MIN_SECRET_CHARS = 4  # shorter values would mask ordinary text ("1", "yes") rather than a secret


def full_url(r: Rendered) -> str:
    """The URL as sent: a query written in the URL merged with the query table,
    exactly as ``str(httpx.URL(r.url).copy_merge_params(r.query))`` writes it.
    httpx re-parses and re-quotes the whole URL character by character (a
    batched SOQL query is 10,000 of them), so the part before the query is
    parsed once per URL and the query string written directly."""
    if not r.query:
        return r.url
    base, written, fragment, _ = _url_parts(r.url)
    return f"{base}?{_planned(r, written) or _query_string(r)}{fragment}"


def sent_url(r: Rendered) -> httpx.URL:
    """``full_url(r)`` as the ``httpx.URL`` a request is sent to, without httpx parsing it again.

    httpx's parse checks and re-quotes every character (3 ms for a batch's 14,000-character
    SOQL URL, 30 us per lead; 75 us for one lead's); the query :func:`full_url` writes is
    percent-encoded ASCII that this parse keeps as it is, and the rest of the URL was parsed by
    httpx once. httpx has no public constructor from parsed parts: the URL gets the parse
    result httpx's own ``__init__`` would have made (``tests/test_wire_url.py`` holds the two
    equal). A URL of the adaptor's own (no query table) is parsed by httpx, once per URL."""
    if not r.query:
        return _parsed_url(r.url) if len(r.url) <= CACHED_URL_CHARS else httpx.URL(r.url)
    base, written, fragment, parsed = _url_parts(r.url)
    query = _planned(r, written) or _query_string(r)
    if parsed is None or len(base) + len(query) + len(fragment) + 1 > MAX_URL_CHARS:
        return httpx.URL(f"{base}?{query}{fragment}")  # httpx refuses a URL that long, and says so
    return _WrittenURL(parsed, query)


class _WrittenURL(httpx.URL):
    """``parsed`` (an httpx.URL without a query) with ``query`` as it is: see :func:`sent_url`.
    httpx makes a plain ``httpx.URL`` of it for a request (``Request`` copies a URL's parse)."""

    def __init__(self, parsed: httpx.URL, query: str):  # pylint: disable=super-init-not-called
        self._uri_reference = parsed._uri_reference._replace(query=query)


CACHED_URL_CHARS = 2048  # longer: parsed every time (a URL written whole per lead is not worth keeping)
MAX_URL_CHARS = 65_536  # httpx.URL refuses longer


@lru_cache(maxsize=1024)
def _parsed_url(url: str) -> httpx.URL:
    return httpx.URL(url)


def _planned(r: Rendered, in_url: dict[str, list[str]]) -> str | None:
    """The query as the request's compiled plan wrote it (its template's text quoted once,
    the lead's values per lead: ``render._written_query``), when it is this very table's and
    the URL holds no query to merge; else None (:func:`_query_string` writes it)."""
    planned = r.written
    if planned is None or planned[0] is not r.query or in_url:
        return None
    return planned[1]


def _query_string(r: Rendered) -> str:
    """The merged query, written as httpx writes it."""
    written = _url_parts(r.url)[1]
    params = {**written, **{str(k): _param_values(v) for k, v in r.query.items()}}  # httpx's merge: ours win
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, values in params.items() for v in values)


@lru_cache(maxsize=1024)
def _url_parts(url: str) -> tuple[str, dict[str, list[str]], str, httpx.URL | None]:
    """(scheme://host/path as httpx normalises it, the query written in it, "#fragment" or "",
    the URL parsed by httpx without its query, or None where httpx's parse has not the shape
    :class:`_WrittenURL` needs)."""
    parsed = httpx.URL(url)
    written: dict[str, list[str]] = {}
    for k, v in parsed.params.multi_items():
        written.setdefault(k, []).append(v)
    base = str(parsed.copy_with(query=None, fragment=None))
    without_query = parsed.copy_with(query=None)
    reusable = hasattr(getattr(without_query, "_uri_reference", None), "_replace")
    return base, written, str(without_query)[len(base):], without_query if reusable else None


def _param_values(value: Any) -> list[str]:
    """A query value as httpx's QueryParams holds it: a list of strings (JSON-style booleans, None empty)."""
    return [param_str(v) for v in value] if isinstance(value, (list, tuple)) else [param_str(value)]


def param_str(value: Any) -> str:
    """One query or form value as httpx writes it (JSON-style booleans, None empty)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def request_json(r: Rendered, url: str | None = None) -> dict[str, Any]:
    """method, url (with its query), headers, body: the record's ``request``; ``url``:
    ``full_url(r)`` when the caller has it already."""
    return {"method": r.method, "url": full_url(r) if url is None else url, "headers": r.headers, "body": r.body}


@lru_cache(maxsize=64)
def _escaped(secret: str) -> str:
    """A secret as it reads inside a JSON string (a connection has a few: written once each)."""
    return json.dumps(secret, ensure_ascii=False)[1:-1]


def response_json(body: Any, secrets: Iterable[str] = (), limit: int = RESPONSE_BODY_BYTES) -> dict[str, Any] | None:
    """The record's ``response``: the answer's body as the rules read it, as
    JSON text (a body that is text as it is), every secret value masked, cut
    to ``limit`` UTF-8 bytes: ``{"body", "truncated", "bytes"}`` (``bytes``:
    the whole text's length). None when the answer has no body."""
    if body is None:
        return None
    text = body if isinstance(body, str) else jsontext.dumps(body)
    for value in secrets:  # masked before the cut: half a secret must not survive at the end
        if len(value) >= MIN_SECRET_CHARS:
            text = text.replace(value, MASK)
            escaped = _escaped(value)
            if escaped != value:
                text = text.replace(escaped, MASK)
    data = text.encode("utf-8", "backslashreplace")  # a lone surrogate cannot be stored as UTF-8
    truncated = len(data) > limit
    shown = data[:limit].decode("utf-8", "ignore") if truncated else data.decode("utf-8")
    return {"body": shown.replace("\x00", "\\x00"), "truncated": truncated, "bytes": len(data)}
