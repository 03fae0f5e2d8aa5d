"""The answer cache of a connection (optional, off by default).

The key is the rendered request itself (method, URL with its query, body):
adaptors render normalised values (E.164, national digits), so the same
phone written two ways is one key, and a lead whose email differs is not.
Only answers the rules may read are kept (no error, no 5xx); a TTL bounds
how stale an answer may be (``cachetools.TTLCache``).
"""

from __future__ import annotations

import json

from cachetools import TTLCache

from ..adaptor.render import Rendered
from ..http.wire import full_url
from ..types import CrmAnswer


def _key(req: Rendered) -> str:
    return json.dumps([req.method, full_url(req), req.body], sort_keys=True, default=str)


class AnswerCache:
    def __init__(self, ttl: float, max_entries: int = 100_000):
        self._answers: TTLCache = TTLCache(maxsize=max_entries, ttl=ttl)

    def get(self, req: Rendered) -> CrmAnswer | None:
        return self._answers.get(_key(req))

    def put(self, req: Rendered, answer: CrmAnswer) -> None:
        if answer.error is None and answer.status_code is not None and answer.status_code < 500:
            self._answers[_key(req)] = answer
