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
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .. import codes
from . import convoso as cv
from .logs import access_logged, log_access, mask_query

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499  # nginx's status for "the client went away before the answer": not a server error
HEADER_TIMEOUT_S = 10.0  # a request line and headers not received by then: the connection is closed
BODY_TIMEOUT_S = 30.0  # a body not received by then: 408
# a request line + headers longer than this is answered 400 (uvicorn's, text/plain); set above the
# query-string limit so a long (Convoso-style, lead-in-the-URL) query reaches the app and its 414
MAX_HEAD_BYTES = cv.MAX_BODY_BYTES + 64 * 1024
URL_PARSE_MAX = 65535  # httptools.parse_url refuses longer URLs


def header_timeout_protocol(seconds: float = HEADER_TIMEOUT_S, max_head_bytes: int = MAX_HEAD_BYTES) -> type:
    """uvicorn's httptools protocol (llhttp: a C parser, a fraction of h11's
    CPU per request), closing a connection whose request line and headers
    have not all arrived ``seconds`` after it opened (or after the previous
    answer): half-sent requests cannot hold connections for ever. llhttp has
    no size limit of its own: a request line + headers over ``max_head_bytes``
    is answered 400 and the connection closed, as h11's
    ``max_incomplete_event_size`` did (counted per read: at most one read over)."""

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer = None
        _seen_cycle = None
        _head_bytes = 0  # bytes read while the request line and headers are incomplete (at most one read more)
        _in_head = True

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
            if self._in_head and not self.transport.is_closing():  # all of this read was request line/headers
                self._head_bytes += len(data)
                if self._head_bytes > max_head_bytes:
                    self.send_400_response("Request line and headers too large.")

        # llhttp's callbacks: where a request's head starts and ends
        def on_message_begin(self) -> None:
            self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            cycle = self.cycle
            path, mark, query = self.url.partition(b"?")
            if len(self.url) <= URL_PARSE_MAX or len(path) > URL_PARSE_MAX:
                super().on_headers_complete()
            else:
                # httptools.parse_url takes 64 KiB at most: a longer (lead-in-the-URL) query is put back
                # after it, so the app sees it and answers it (its own limit: 414) rather than a bare 400
                self.url = path + mark
                super().on_headers_complete()
                self.scope["query_string"] = query  # the request's task has not run yet
            if self.cycle is not cycle and self.scope["method"] != "HEAD":  # a new request (its task not run yet)
                self.cycle.transport = HeadWithBody(self.transport, self.loop)

        def on_message_complete(self) -> None:
            self._in_head = True  # the next bytes are the next request's
            super().on_message_complete()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


class HeadWithBody:
    """The transport as one request's response cycle sees it: the status line
    and headers uvicorn writes on ``http.response.start`` are held and go out
    with the body's first write, in one send() instead of two (at saturation
    uvicorn's send was ~11% of serve's event loop, mostly those syscalls). A
    head whose body is not written in the same step (a streamed body, a
    response that fails) goes alone at the loop's next turn; a HEAD request's
    transport is not wrapped at all."""

    __slots__ = ("_transport", "_loop", "_head")

    def __init__(self, transport, loop):
        self._transport, self._loop, self._head = transport, loop, None

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif data.startswith(b"HTTP/") and data != CONTINUE:  # the response's head: wait for its body
            self._head = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"  # uvicorn's interim answer to Expect: 100-continue


def uvicorn_options(header_timeout_s: float = HEADER_TIMEOUT_S, *, uvloop: bool = True) -> dict[str, Any]:
    """uvicorn's settings for ``dupcheck serve`` (tests start theirs with them too): the
    guarded httptools protocol, uvloop when it is installed and ``uvloop`` (asyncio
    otherwise; about 12% less CPU per insert at 200 connections; the Temporal engine keeps
    asyncio's loop, as ``run`` does: its SDK is tested there), no uvicorn access log (it
    would print the raw query, the token with it: :class:`Guard` writes ours), no Server
    header."""
    return {"http": header_timeout_protocol(header_timeout_s), "loop": "auto" if uvloop else "asyncio",
            "lifespan": "on", "access_log": False,
            "log_config": None, "server_header": False, "proxy_headers": False}


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
            if access_logged():  # the query is parsed and masked for the log only
                query = scope.get("query_string", b"").decode("latin-1")
                log_access(method=scope.get("method"), path=path[:200], status=status,
                           ms=round((time.perf_counter() - started) * 1000, 2),
                           query=mask_query(parse_qsl(query, keep_blank_values=True)), **fields)
