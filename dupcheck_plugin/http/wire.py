"""A rendered request as it goes on the wire (httpx's URL rules), for
sending it and for showing it in a decision record."""

from __future__ import annotations

import json
from typing import Any, Iterable

import httpx

from .. import jsontext
from ..adaptor.render import MASK, Rendered

RESPONSE_BODY_BYTES = 64 * 1024  # what a decision record keeps of a CRM answer's body
MIN_SECRET_CHARS = 4  # shorter values would mask ordinary text ("1", "yes") rather than a secret


def full_url(r: Rendered) -> str:
    """The URL as sent: a query written in the URL merged with the query table."""
    if not r.query:
        return r.url
    return str(httpx.URL(r.url).copy_merge_params(r.query))


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
