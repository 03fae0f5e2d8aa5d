"""A rendered request as it goes on the wire (httpx's URL rules), for
sending it and for showing it in a decision record."""

from __future__ import annotations

import json
import string
from functools import lru_cache
from typing import Any, Iterable

import httpx

from .. import jsontext
from ..adaptor.render import MASK, Rendered

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
    base, written, fragment = _url_parts(r.url)
    params = {**written, **{str(k): _param_values(v) for k, v in r.query.items()}}  # httpx's merge: ours win
    return f"{base}?{'&'.join(f'{_quote(k)}={_quote(v)}' for k, values in params.items() for v in values)}{fragment}"


@lru_cache(maxsize=1024)
def _url_parts(url: str) -> tuple[str, dict[str, list[str]], str]:
    """(scheme://host/path as httpx normalises it, the query written in it, "#fragment" or "")."""
    parsed = httpx.URL(url)
    written: dict[str, list[str]] = {}
    for k, v in parsed.params.multi_items():
        written.setdefault(k, []).append(v)
    base = str(parsed.copy_with(query=None, fragment=None))
    return base, written, str(parsed.copy_with(query=None))[len(base):]


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


class _QuotePlus(dict):
    """A ``str.translate`` table writing text as ``urllib.parse.quote_plus`` does (httpx's
    query encoding): unreserved ASCII as is, a space as ``+``, the rest as %XX of UTF-8."""

    def __missing__(self, code: int) -> str:
        # strict UTF-8: a lone surrogate raises UnicodeEncodeError, as quote_plus does
        quoted = "".join(f"%{b:02X}" for b in chr(code).encode("utf-8"))
        if code < 0x3000:  # keep the table small: other scripts are rare in a query, and cheap enough
            self[code] = quoted
        return quoted


_QUOTE_TABLE = _QuotePlus({ord(c): c for c in string.ascii_letters + string.digits + "_.-~"})
_QUOTE_TABLE[ord(" ")] = "+"


def _quote(text: str) -> str:
    return text.translate(_QUOTE_TABLE)


def request_json(r: Rendered) -> dict[str, Any]:
    """method, url (with its query), headers, body: the record's ``request``."""
    return {"method": r.method, "url": full_url(r), "headers": r.headers, "body": r.body}


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
            escaped = json.dumps(value, ensure_ascii=False)[1:-1]  # as it reads inside a JSON string
            if escaped != value:
                text = text.replace(escaped, MASK)
    data = text.encode("utf-8", "backslashreplace")  # a lone surrogate cannot be stored as UTF-8
    truncated = len(data) > limit
    shown = data[:limit].decode("utf-8", "ignore") if truncated else data.decode("utf-8")
    return {"body": shown.replace("\x00", "\\x00"), "truncated": truncated, "bytes": len(data)}
