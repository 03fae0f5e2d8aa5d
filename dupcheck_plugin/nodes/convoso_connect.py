"""The ``convoso_connect`` node: render the adaptor's request, call the CRM."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from typing import Any, Mapping

import httpx

from ..adaptor.render import MASK, Rendered, RenderError
from ..connection.breaker import CircuitBreaker
from ..http.call import RetryPolicy, finish_answer, interpret, send
from ..http.client import make_client
from ..types import BuildContext, CrmAnswer, LeadContext, WorkflowView


class ConvosoConnect:
    """A :class:`~dupcheck_plugin.types.CrmNode`."""

    def __init__(self, node_id: str, config: Mapping[str, Any], build: BuildContext):
        self.id = node_id
        self.config = config
        self.adaptor = build.adaptor(config["adaptor"])
        settings = build.settings
        offline = bool(settings.get("offline"))
        environ = settings.get("environ") or os.environ
        self.bound = self.adaptor.bind(environ, preview=offline)
        self.origin = settings.get("crm_url") or config.get("url")
        self.method = config.get("method")
        self.body_format = config.get("post_data_type")
        self.response_format = config.get("response_data_type") or self.adaptor.response_format
        self.timeout = float(config.get("timeout", 10))
        self.connect_timeout = float(config.get("connect_timeout", 5))
        self.max_connections = int(config.get("max_connections", settings.get("max_connections", 64)))
        # a host's transport object (tests, proxies) wins over the configured kind
        self.transport = settings.get("http_transport") or config.get("transport", "aiohttp")
        r = config.get("retry", {})
        self.retry = RetryPolicy(attempts=r.get("attempts", 3), backoff=r.get("backoff", 0.2), max_wait=r.get("max_wait", 30.0))
        self.extra_headers = dict(config.get("headers", {}))
        b = config.get("breaker", {})
        self.breaker = CircuitBreaker(node_id, failures=b.get("failures", 5), cool_down=b.get("cool_down", 30.0))
        self.auth_real, self.auth_masked = self._auth(node_id, config.get("auth"), environ, offline)
        auth_secret = {config["auth"]["secret"]} if config.get("auth") else set()
        self.secret_names = frozenset(self.adaptor.secret_names | auth_secret)
        self._client: httpx.AsyncClient | None = None

    @staticmethod
    def _auth(node_id: str, auth: Mapping[str, Any] | None, environ: Mapping[str, str], offline: bool):
        """(real, masked) as {"headers": {...}, "query": {...}}."""
        if not auth:
            return {}, {}
        secret = environ.get(auth["secret"])
        if not secret:
            if not offline:
                from ..config.problems import ConfigError, Problem

                raise ConfigError([Problem(f"node {node_id}", ("config", "auth", "secret"),
                                           f"secret {auth['secret']} not set: export it as an environment variable",
                                           "secret_missing")])
            secret = MASK
        kind = auth["type"]

        def build(value: str) -> dict:
            if kind == "bearer":
                return {"headers": {"Authorization": f"Bearer {value}"}}
            if kind == "basic":
                token = base64.b64encode(value.encode()).decode() if value != MASK else MASK
                return {"headers": {"Authorization": f"Basic {token}"}}
            if kind == "header":
                return {"headers": {auth["name"]: value}}
            return {"query": {auth["name"]: value}}

        return build(secret), build(MASK)

    def _finish(self, r: Rendered, auth: Mapping[str, Any]) -> Rendered:
        headers = {**r.headers, **self.extra_headers, **auth.get("headers", {})}
        query = {**r.query, **auth.get("query", {})} if auth.get("query") else r.query
        r = replace(r, headers=headers, query=query,
                    method=self.method or r.method, body_format=self.body_format or r.body_format)
        return r.with_origin(self.origin)

    def render(self, lead: Mapping[str, Any]) -> tuple[Rendered, Rendered]:
        """(request to send, masked request) for one lead; raises RenderError."""
        real, masked = self.bound.render(lead)
        return self._finish(real, self.auth_real), self._finish(masked, self.auth_masked)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # created inside the running event loop
            self._client = make_client(transport=self.transport, max_connections=self.max_connections,
                                       timeout=self.timeout, connect_timeout=self.connect_timeout)
        return self._client

    async def run(self, lead: LeadContext) -> CrmAnswer:
        try:
            real, masked = self.render(lead.lead)
        except RenderError as exc:
            return CrmAnswer(status_code=None, headers={}, body=None, latency_ms=0.0,
                             error="render", error_detail=str(exc))
        return await send(self.client, real, masked, response_format=self.response_format,
                          rate_limits=self.adaptor.rate_limits, retry=self.retry, timeout=self.timeout,
                          response_key=self.config.get("response_key"), record_id_key=self.adaptor.record_id,
                          breaker=self.breaker)

    def health(self) -> dict[str, Any]:
        """This connection's state, for /healthz and /metrics."""
        return {"breaker": self.breaker.snapshot()}

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> CrmAnswer:
        it = interpret(status, headers, body, self.response_format, self.adaptor.rate_limits)
        return finish_answer(status=status, headers=headers, it=it, error=it.error, detail=it.detail,
                             latency_ms=0.0, request=None, attempts=1, response_key=self.config.get("response_key"),
                             record_id_key=self.adaptor.record_id)

    def preview(self, lead: Mapping[str, str]) -> Mapping[str, Any] | None:
        try:
            _, masked = self.render(lead)
        except RenderError:
            return None
        return masked.as_json()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def check(config: Mapping[str, Any], view: WorkflowView) -> list[tuple[tuple, str]]:
    adaptor, problems = view.resolve_adaptor(config["adaptor"])
    if adaptor is None and not problems:
        return [(("adaptor",), f"no adaptor named {config['adaptor']!r} (not a file next to the workflow, not a shipped adaptor)")]
    return [(("adaptor",), f"adaptor {config['adaptor']!r} is invalid: {p}") for p in problems]
