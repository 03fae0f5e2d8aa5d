"""HTTP plumbing shared by the endpoints: JSON answers, error handlers, and
the outermost guard (access log, request metrics, no traceback ever answered)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Mapping
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from uvicorn.protocols.http.h11_impl import H11Protocol

from .. import codes
from . import convoso as cv
from .logs import log_access, mask_query

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499  # nginx's status for "the client went away before the answer": not a server error
HEADER_TIMEOUT_S = 10.0  # a request line and headers not received by then: the connection is closed
BODY_TIMEOUT_S = 30.0  # a body not received by then: 408


def header_timeout_protocol(seconds: float = HEADER_TIMEOUT_S) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request line and
    headers have not all arrived ``seconds`` after it opened (or after the
    previous answer): half-sent requests cannot hold connections for ever."""

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer = None
        _seen_cycle = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.cycle is self._seen_cycle and not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:
                self._arm()  # waiting for (the rest of) a request's headers
            super().data_received(data)
            if self.cycle is not self._seen_cycle:  # the headers are in: a request started
                self._seen_cycle = self.cycle
                self._disarm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    # ensure_ascii: any text the store or a CRM handed back serialises, whatever it holds
    return Response(json.dumps(body, separators=(",", ":")), status, headers, media_type="application/json")


def log_fields(request: Request) -> dict[str, Any]:
    return request.scope.setdefault("dupcheck.log", {})


def refusal_handler(request: Request, exc: Exception) -> Response:
    log_fields(request)["code"] = exc.code
    return json_response(200, cv.error_body(exc.code, exc.text, exc.detail))  # Convoso answers failures with HTTP 200


def api_error_handler(request: Request, exc: Exception) -> Response:
    log_fields(request)["code"] = exc.code
    return json_response(exc.status, cv.error_body(exc.code, exc.text))


def http_error_handler(request: Request, exc: Exception) -> Response:
    text = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, str(exc.detail))
    return json_response(exc.status_code, cv.error_body(exc.status_code, text), exc.headers)


class Guard:
    """Outermost: times the request, writes the JSON access log (token never,
    phones masked), counts it, and turns any uncaught error into a JSON 500
    without a traceback in the answer."""

    def __init__(self, app, metrics, routes: frozenset[str]):
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        fields: dict[str, Any] = {}
        scope["dupcheck.log"] = fields
        status = 0

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except ClientDisconnect:  # the caller left mid-body: nothing to answer, nothing went wrong here
            status = status or CLIENT_CLOSED
            fields["disconnected"] = True
        except Exception:  # noqa: BLE001 - logged with its traceback; the caller gets JSON
            log.exception("unhandled error", extra={"fields": {"path": scope.get("path", "")[:200]}})
            if not status:
                await json_response(500, cv.error_body(codes.INTERNAL.code, codes.INTERNAL.text))(
                    scope, receive, send_status)
        finally:
            path = scope.get("path", "")
            route = path if path in self.routes else "other"
            self.metrics.requests.labels(route, str(status)).inc()
            query = scope.get("query_string", b"").decode("latin-1")
            log_access(method=scope.get("method"), path=path[:200], status=status,
                       ms=round((time.perf_counter() - started) * 1000, 2),
                       query=mask_query(parse_qsl(query, keep_blank_values=True)), **fields)
