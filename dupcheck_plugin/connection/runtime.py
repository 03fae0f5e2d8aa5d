"""What a ``convoso_connect`` node needs at run time for its connection.

The node renders; this object decides how the rendered request reaches the
CRM: from the answer cache, through the batcher, or alone -- always through
the connection's shared limiter (one per credentials, see :mod:`.registry`).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, Callable, Mapping

from ..adaptor.batch import BatchLead
from ..adaptor.render import Rendered
from ..http.call import Exchange, RetryPolicy, answer_of, exchange, not_sent
from ..http.client import refusal
from ..http.wire import request_json
from ..types import CrmAnswer
from .batcher import Batcher, finish_for
from .cache import AnswerCache
from .limiter import ConnectionLimiter, Limits
from .registry import credentials_key, shared


class ConnectionRuntime:
    def __init__(self, *, name: str, adaptor: Any, config: Mapping[str, Any], credentials: tuple,
                 response_format: str, retry: RetryPolicy, timeout: float, interactive: bool = False,
                 breaker: Any = None, auth: Any = None,
                 response_of: Callable[[Any], Mapping[str, Any] | None] | None = None):
        self.name = name
        self.adaptor = adaptor
        override = config.get("limits")
        self.limits = Limits() if override is False else Limits.merged(adaptor.limits, override)
        self.limits_off = override is False  # nor are the CRM's quota headers read
        self.key = credentials_key(*credentials)
        self.response_format = response_format
        self.retry = retry
        self.timeout = timeout
        self.response_key = config.get("response_key")
        self.interactive = interactive
        self.breaker = breaker
        self.auth = auth  # an httpx.Auth that adds (and refreshes) the OAuth token, or None
        self.response_of = response_of  # an answer's body -> the record's ``response`` (secrets masked)
        batch = config.get("batch", True)
        self.batch_spec = adaptor.batch if batch is not False else None
        self.max_leads = 1
        if self.batch_spec is not None:
            wanted = batch.get("max_leads") if isinstance(batch, Mapping) else None
            self.max_leads = min(self.batch_spec.max_leads, wanted or self.batch_spec.max_leads)
        # batches in flight at once: the CRM's concurrency cap, else a few (the limiter paces them)
        self.dispatchers = min(self.limits.concurrency or 4, 4)
        self.cache_config = config.get("cache")
        self._client: Any = None  # the node's HTTP client, handed over on each call
        self._limiter_of: tuple[Any, Any] = (None, None)  # (event loop, its shared limiter)
        self._batcher_of: tuple[Any, Any] = (None, None)  # (event loop, its batcher)

    @property
    def lead_capacity(self) -> int:
        """Leads worth having in flight so that every batch can fill."""
        return self.max_leads * (self.dispatchers + 1) if self.max_leads > 1 else 0

    @property
    def limiter(self) -> ConnectionLimiter:
        """The connection's limiter, shared by every user of the same credentials in this loop."""
        loop = asyncio.get_running_loop()
        if self._limiter_of[0] is not loop:  # looked up once per loop, not per lead
            self._limiter_of = (loop, shared("limiter", self.key, lambda: ConnectionLimiter(
                self.name, self.limits, interactive=self.interactive, quota_headers=not self.limits_off)))
        return self._limiter_of[1]

    def _batcher(self) -> Batcher:
        loop = asyncio.get_running_loop()
        if self._batcher_of[0] is not loop:  # looked up once per loop, not per lead
            self._batcher_of = (loop, shared("batcher", f"{self.key}:{id(self)}", lambda: Batcher(
                self.batch_spec, self.limiter, max_leads=self.max_leads, dispatchers=self.dispatchers,
                send=self._exchange, finish=finish_for(self.response_key, self.adaptor.record_id, self.response_of))))
        return self._batcher_of[1]

    def _cache(self) -> AnswerCache | None:
        if not self.cache_config:
            return None
        return shared("cache", f"{self.key}:{self.adaptor.source}:{self.response_key}",
                      lambda: AnswerCache(self.cache_config["ttl"], self.cache_config.get("max_entries", 100_000)))

    async def _exchange(self, request: Rendered, url: Any, gate: Any):
        return await exchange(self._client, request, response_format=self.response_format,
                              rate_limits=self.adaptor.rate_limits, retry=self.retry, timeout=self.timeout, gate=gate,
                              breaker=self.breaker, auth=self.auth, url=url)

    async def call(self, client: Any, real: Rendered, masked: Rendered,
                   lead: BatchLead | None = None) -> CrmAnswer:
        """The CRM's answer for one lead (``lead``: the lead as a batch renders it, for batching)."""
        cache = self._cache()
        if cache is not None:
            hit = cache.get(real)
            if hit is not None:
                return replace(hit, cached=True, attempts=0, latency_ms=0.0, request=request_json(masked), batch_size=1,
                               response=self.response_of(hit.body) if self.response_of and hit.body is not None else None)
        self._client = client
        if self.max_leads > 1 and lead is not None:
            problem = refusal(client, real.headers)
            if problem is not None:  # as exchange() refuses it alone: before a slot is taken for it
                return answer_of(Exchange(None, {}, None, "render", not_sent(problem), 0, 0.0), real,
                                 masked, response_key=self.response_key, record_id_key=self.adaptor.record_id,
                                 response_of=self.response_of)
            answer = await self._batcher().ask(lead, real, masked)
        else:
            # send()'s two steps, without its coroutine
            x = await exchange(client, real, response_format=self.response_format, rate_limits=self.adaptor.rate_limits,
                               retry=self.retry, timeout=self.timeout, gate=self.limiter, breaker=self.breaker,
                               auth=self.auth)
            answer = answer_of(x, real, masked, response_key=self.response_key, record_id_key=self.adaptor.record_id,
                               response_of=self.response_of)
        if cache is not None:
            cache.put(real, answer)
        return answer
