"""The ``convoso_connect`` node: render the adaptor's request, call the CRM."""

from __future__ import annotations

import os
from typing import Any, Mapping

import httpx

from ..adaptor.batch import BatchLead
from ..adaptor.render import Rendered, RenderError
from ..connection.auth import ConnectionAuth
from ..connection.breaker import CircuitBreaker
from ..connection.secrets import SecretMissing, Secrets
from ..connection.runtime import ConnectionRuntime
from ..http.call import RetryPolicy, finish_answer, interpret, send
from ..http.client import DEFAULT_TRANSPORT, make_client
from ..http.whole_response import MAX_ANSWER_BYTES
from ..http.wire import request_json, response_json
from ..types import BuildContext, CrmAnswer, CrmNode, LeadContext


class ConvosoConnect(CrmNode):
    """Renders the adaptor's request and calls the CRM."""

    def __init__(self, node_id: str, config: Mapping[str, Any], build: BuildContext):
        self.id = node_id
        self.config = config
        self.adaptor = build.adaptor(config["adaptor"])
        settings = build.settings
        offline = bool(settings.get("offline"))
        environ = settings.get("environ") or os.environ
        self.timeout = float(config.get("timeout", 10))
        self.secrets = Secrets(environ)
        self.auth = ConnectionAuth(node_id, config.get("auth"), self.secrets, offline=offline, timeout=self.timeout)
        self.offline = offline
        self._bound_secrets = self.auth.bind_environ(self.adaptor, environ)
        # adaptor secrets read from files: bound again when a file changes
        self._file_secrets = [n for n in self.adaptor.secret_names if not environ.get(n) and environ.get(f"{n}_FILE")]
        self.origin = settings.get("crm_url") or config.get("url") or self.auth.api_origin
        self.method = config.get("method")
        self.body_format = config.get("post_data_type")
        self.response_format = config.get("response_data_type") or self.adaptor.response_format
        self.connect_timeout = float(config.get("connect_timeout", 5))
        self.max_connections = int(config.get("max_connections", settings.get("max_connections", 64)))
        self.max_answer_bytes = int(config.get("max_answer_bytes", MAX_ANSWER_BYTES))
        # a host's transport object (tests, proxies) wins over the configured kind
        self.transport = settings.get("http_transport") or config.get("transport", DEFAULT_TRANSPORT)
        r = config.get("retry", {})
        # single_attempt: the host retries (Temporal's retry policy, built from this same table)
        attempts = 1 if settings.get("single_attempt") else r.get("attempts", 3)
        self.retry = RetryPolicy(attempts=attempts, backoff=r.get("backoff", 0.2), max_wait=r.get("max_wait", 30.0))
        self.extra_headers = dict(config.get("headers", {}))
        # no headers, method or body format of the connection's own to put on each request
        self._adds_nothing = not self.extra_headers and not self.method and not self.body_format
        b = config.get("breaker", {})
        self.breaker = CircuitBreaker(node_id, failures=b.get("failures", 5), cool_down=b.get("cool_down", 30.0))
        self.secret_names = frozenset(self.adaptor.secret_names | self.auth.secret_names)
        self._client: httpx.AsyncClient | None = None
        self.runtime = ConnectionRuntime(
            name=node_id, adaptor=self.adaptor, config=config, response_format=self.response_format,
            retry=self.retry, timeout=self.timeout, interactive=bool(settings.get("interactive")), breaker=self.breaker,
            auth=self.auth.httpx_auth, response_of=self._response,
            # one limiter per CRM account: the same origin and the same credentials (values or files)
            credentials=(self.origin or self.adaptor.request.origin, config.get("auth"),
                         sorted((n, environ.get(n) or environ.get(f"{n}_FILE")) for n in self.secret_names)))
        self._batched = self.runtime.max_leads > 1
        # bound to the origin requests go to: the URL is rendered as sent, not moved per lead
        self.bound = self.adaptor.bind(self._bound_secrets, preview=offline, batched=self._batched, origin=self.origin)

    def _rebind_if_changed(self) -> None:
        current = self.auth.bind_environ(self.adaptor, self.secrets.environ)
        if current != self._bound_secrets:
            self._bound_secrets = current
            self.bound = self.adaptor.bind(current, preview=self.offline, batched=self._batched, origin=self.origin)

    def _finish(self, r: Rendered, auth: Mapping[str, Any]) -> Rendered:
        """The adaptor's request (rendered for this connection's origin already) as this
        connection sends it: its headers, auth and method."""
        if not auth and self._adds_nothing:  # the common case: sent as rendered
            return r
        query = {**r.query, **auth["query"]} if auth.get("query") else r.query
        auth_headers = auth.get("headers") or {}
        headers = {**r.headers, **self.extra_headers, **auth_headers} if self.extra_headers or auth_headers else r.headers
        return Rendered(method=self.method or r.method, url=r.url, headers=headers, query=query,
                        body_format=self.body_format or r.body_format, body=r.body)

    def render(self, lead: Mapping[str, Any]) -> tuple[Rendered, Rendered]:
        """(request to send, masked request) for one lead; raises RenderError,
        or SecretMissing when a secret file went away."""
        real, masked, _ = self._render(lead, batched=False)
        return real, masked

    def _render(self, lead: Mapping[str, Any], batched: bool) -> tuple[Rendered, Rendered, BatchLead | None]:
        """(request to send, masked request, the lead as its batch renders it when ``batched``)."""
        if self._file_secrets:
            self._rebind_if_changed()
        if batched:
            real, masked, batch_lead = self.bound.render_for_batch(lead)
        else:
            (real, masked), batch_lead = self.bound.render(lead), None
        auth = self.auth.real()
        sent = self._finish(real, auth)
        if masked is real and auth == self.auth.masked:  # no secret in the request, nor in its auth
            return sent, sent, batch_lead
        return sent, self._finish(masked, self.auth.masked), batch_lead

    @property
    def lead_capacity(self) -> int:
        return self.runtime.lead_capacity

    @property
    def declared_rate(self) -> float | None:
        """Requests per second the connection's ``limits`` allow; None: unlimited."""
        limits = self.runtime.limits
        return limits.requests / limits.per_seconds if limits.requests else None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # created inside the running event loop
            self._client = make_client(transport=self.transport, max_connections=self.max_connections,
                                       timeout=self.timeout, connect_timeout=self.connect_timeout,
                                       max_answer_bytes=self.max_answer_bytes)
        return self._client

    async def run(self, lead: LeadContext) -> CrmAnswer:
        try:
            real, masked, batch_lead = self._render(lead.lead, self._batched)
        except RenderError as exc:
            return CrmAnswer(status_code=None, headers={}, body=None, latency_ms=0.0,
                             error="render", error_detail=str(exc))
        except SecretMissing as exc:
            return CrmAnswer(status_code=None, headers={}, body=None, latency_ms=0.0, attempts=0,
                             error="auth", error_detail=str(exc))
        return await self.runtime.call(self.client, real, masked, batch_lead)

    def _response(self, body: Any) -> Mapping[str, Any] | None:
        """The record's ``response`` for an answer's body: every secret this connection sends masked."""
        return response_json(body, self.secret_values())

    def secret_values(self) -> list[str]:
        """The current values of the secrets this connection sends (adaptor and auth),
        to mask wherever an answer might echo them."""
        values = []
        for name in self.secret_names:
            try:
                values.append(self.secrets.get(name))
            except SecretMissing:
                pass
        return values

    def health(self) -> dict[str, Any]:
        """This connection's state, for /healthz and /metrics."""
        out: dict[str, Any] = {"breaker": self.breaker.snapshot()}
        oauth = self.auth.health()
        if oauth is not None:
            out["oauth"] = oauth
        return out

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> CrmAnswer:
        it = interpret(status, headers, body, self.response_format, self.adaptor.rate_limits)
        return finish_answer(status=status, headers=headers, it=it, error=it.error, detail=it.detail,
                             latency_ms=0.0, request=None, attempts=1, response_key=self.config.get("response_key"),
                             record_id_key=self.adaptor.record_id)

    def preview(self, lead: Mapping[str, str]) -> Mapping[str, Any] | None:
        try:
            _, masked = self.render(lead)
        except (RenderError, SecretMissing):
            return None
        return request_json(masked)

    async def aclose(self) -> None:
        await self.auth.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
