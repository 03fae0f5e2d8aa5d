"""A rendered request as it goes on the wire (httpx's URL rules), for
sending it and for showing it in a decision record."""

from __future__ import annotations

from typing import Any

import httpx

from ..adaptor.render import Rendered


def full_url(r: Rendered) -> str:
    """The URL as sent: a query written in the URL merged with the query table."""
    if not r.query:
        return r.url
    return str(httpx.URL(r.url).copy_merge_params(r.query))


def request_json(r: Rendered) -> dict[str, Any]:
    """method, url (with its query), headers, body: the record's ``request``."""
    return {"method": r.method, "url": full_url(r), "headers": r.headers, "body": r.body}
