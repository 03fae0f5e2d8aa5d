"""An ``httpx`` transport that speaks HTTP/1.1 itself, on asyncio protocols.

Under httpx, aiohttp's own request path (session, request and response
objects, connector, header multidicts, timers) was the largest block of
``dupcheck run``'s CPU per lead. A CRM call needs much less: one request
written in one go, one small answer read whole, a keep-alive pool. This
module does that much with llhttp's parser (``httptools``, as ``serve``
uses) and works on uvloop and on asyncio's own loop.

- one pool per transport: at most ``max_connections`` open connections in
  all; idle ones kept per (scheme, host, port), closed once idle longer than
  ``keepalive_expiry``, never handed out once their peer closed them;
- httpx's timeouts: ``pool`` to wait for a free connection, ``connect`` to
  connect (TLS handshake included), ``read`` for each silence of the peer;
- a kept-alive connection the server closed before answering (the
  keep-alive race) is retried once on a new connection for an idempotent
  method only, as aiohttp does: a POST (a search, a create) is never sent
  twice behind the caller's back (its retry policy decides);
- a request cancelled or failed mid-exchange closes its connection: no
  half-read answer goes back to the pool;
- an answer whose body is larger than ``max_answer_bytes`` (16 MiB by
  default) as sent (its chunks' framing aside, as aiohttp and httpx count
  it), or once decoded, or whose head is, is not read further: a
  ``RemoteProtocolError``, its connection closed.

Errors are httpx's, as :mod:`.whole_response` lists them.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import Any

import httptools
import httpx

from ..adaptor.headers import unsendable
from ..errors import DupcheckError
from .deadlines import POOL_WAIT_CUT
from .whole_response import MAX_ANSWER_BYTES, ParsedHeaders, too_large, whole_response

# methods that may be sent again after a keep-alive race (RFC 9110 9.2.2)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# lengths of the header names the exchange looks at (a cheap test before lower())
_NOTED_LENGTHS = frozenset({len(b"content-length"), len(b"content-encoding"), len(b"transfer-encoding")})
_BLOCKS_KEPT = 256  # header blocks kept per transport (one per body length a client's POSTs have, say)


class _StaleConnection(DupcheckError):
    """A kept-alive connection closed by its peer before any byte of the answer.
    ``sent``: whether the request went out on it (else it may go out again on
    a new connection, whatever its method: the peer cannot have seen it)."""

    def __init__(self, sent: bool):
        super().__init__("stale connection")
        self.sent = sent


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one exchange at a time, its answer parsed
    by llhttp as it arrives. The parser is kept from one answer to the next
    (llhttp starts afresh after a whole message) except after a HEAD answer,
    whose announced body never comes: the next exchange gets a new one."""

    def __init__(self, pool: H1Transport, key: tuple):
        self.pool = pool
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.exchanges = 0  # answers completed on this connection
        self._max_answer = pool.max_answer_bytes  # the most of an answer's body read (and of its head)
        self.idle_since = 0.0
        self._waiter: asyncio.Future | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._keep = False
        self._timer: asyncio.TimerHandle | None = None  # the read timeout's watch
        self._timer_at = 0.0

    # -- asyncio.Protocol -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection's state is unknown
            return
        self._last_read = self.loop.time()
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if not self._waiter.done():
                self._fail(httpx.RemoteProtocolError(f"malformed answer: {exc!r}"))
            self.close()  # garbage after a complete answer, or a body past the cap (on_body): not reused
            return
        # the cap counts the body (on_body), as aiohttp and httpx do; a head is bounded by it too, counted
        # by the read while it lasts (so the read that ends it may take it past the cap by that read's size)
        if not self._headers_done:
            self._received += len(data)
            if self._received > self._max_answer:
                self._fail(too_large(self._max_answer))
                self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.pool._lost(self)  # idle: frees its place in the pool
            return
        if self._headers_done and not self._framed and exc is None:
            self._complete(keep=False)  # an answer delimited by the end of the connection
        elif not self._got_bytes and self.exchanges:
            self._fail(_StaleConnection(sent=True))
        elif exc is not None:
            self._fail(httpx.ReadError(str(exc) or type(exc).__name__))
        elif not self._got_bytes:
            self._fail(httpx.RemoteProtocolError("Server disconnected without sending a response."))
        else:
            self._fail(httpx.RemoteProtocolError("peer closed connection without sending complete message body"))

    # -- httptools callbacks --------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._waiter.done():
            self._keep = False  # a second answer to one request: not reused

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        self._headers.append((name, lower, value))  # as httpx.Headers keeps them (ParsedHeaders)
        if len(lower) in _NOTED_LENGTHS:
            if lower == b"content-encoding":
                self._coding = value
            elif lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
                self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._received = 0  # from here on_body counts the body
        if self._head_only:  # a HEAD answer announces a body it does not send
            self._complete(keep=self._parser.should_keep_alive())
            self._parser = None  # which this parser still waits for

    def on_body(self, body: bytes) -> None:
        self._received += len(body)
        if self._received > self._max_answer:
            exc = too_large(self._max_answer)
            self._fail(exc)
            raise exc  # stops the parser: data_received closes the connection
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._waiter.done():
            return
        parser = self._parser
        if parser.get_status_code() < 200:  # an interim answer (100 Continue): the real one follows
            self._headers, self._body, self._headers_done, self._framed, self._coding = [], [], False, False, None
            return
        self._complete(keep=parser.should_keep_alive())

    # -- the exchange ---------------------------------------------------------------------------------------
    def _complete(self, keep: bool) -> None:
        self._keep = keep
        self.exchanges += 1
        parser = self._parser
        self._waiter.set_result((parser.get_status_code(), self._headers, b"".join(self._body), self._coding,
                                 parser.get_http_version()))

    def _fail(self, exc: BaseException) -> None:
        self._keep = False
        if not self._waiter.done():
            self._waiter.set_exception(exc)

    def _watch(self, at: float) -> None:
        self._timer, self._timer_at = self.loop.call_at(at, self._check_silence), at

    def _check_silence(self) -> None:
        """The read timeout: the peer silent for ``read`` seconds (not the
        whole answer's time). The watch outlives the exchange that armed it
        (arming one per exchange cost more than the rest of the pool's work):
        it fires at the latest when the current exchange's silence could have
        run out, and arms itself again only while an exchange is in flight."""
        self._timer = None
        if self._waiter is None or self._waiter.done() or self.closed or self._read_timeout is None:
            return
        if self.loop.time() >= self._last_read + self._read_timeout:
            self._fail(httpx.ReadTimeout("no answer in time"))
        else:
            self._watch(self._last_read + self._read_timeout)

    def exchange(self, data: bytes, head_only: bool, read_timeout: float | None) -> asyncio.Future:
        """Write ``data`` (a whole request): the future of the whole answer,
        ``(status, header triples, body, Content-Encoding or None, HTTP version)`` (a plain
        function, not a coroutine: one frame less per request)."""
        if self.closed or self.transport.is_closing():  # closed by its peer before this request
            # (the peer's end read in this loop turn; connection_lost comes in the next)
            raise _StaleConnection(sent=False) if self.exchanges else httpx.RemoteProtocolError(
                "Server disconnected without sending a response.")
        if self._parser is None:
            self._parser = _new_parser(self)
        self._headers: list[tuple[bytes, bytes, bytes]] = []
        self._body: list[bytes] = []
        self._headers_done = self._framed = self._got_bytes = self._keep = False
        self._received = 0
        self._coding = None
        self._head_only = head_only
        waiter = self._waiter = self.loop.create_future()
        self.transport.write(data)
        self._read_timeout = read_timeout
        if read_timeout is not None:
            self._last_read = self.loop.time()
            deadline = self._last_read + read_timeout
            if self._timer is None or self._timer_at > deadline:
                if self._timer is not None:
                    self._timer.cancel()
                self._watch(deadline)
        return waiter

    def _closed(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def reusable(self) -> bool:
        return self._keep and not self.closed

    def close(self) -> None:
        self._closed()
        if self.transport is not None:
            self.transport.close()


class H1Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over a keep-alive pool of at most ``max_connections``
    connections (see the module's docstring)."""

    def __init__(self, *, max_connections: int = 64, keepalive_expiry: float | None = 5.0,
                 ssl_context: ssl.SSLContext | None = None, max_answer_bytes: int = MAX_ANSWER_BYTES):
        self.max_connections = max_connections
        self.max_answer_bytes = max_answer_bytes
        self.keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._idle: dict[tuple, collections.deque[_Connection]] = {}
        self._open = 0  # connections open or being opened
        # requests waiting for a place: (deadline or None, future), first come first served
        self._waiters: collections.deque[tuple[float | None, asyncio.Future]] = collections.deque()
        self._sweep: asyncio.TimerHandle | None = None  # the pool timeouts' one timer (see _sweep_waiters)
        self._sweep_at = 0.0
        self._all: set[_Connection] = set()
        self._blocks: dict[tuple, tuple[bytes, bool]] = {}  # see _request_bytes
        self._last_url: httpx.URL | None = None  # the last request's URL and its pool key
        self._last_key: tuple = ()

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:  # certifi's CA bundle, as httpx verifies; made on first https use
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url is self._last_url:  # a client's URL object is the same for every request without a query
            key = self._last_key
        else:
            scheme = url.scheme
            if scheme not in _DEFAULT_PORTS:
                raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme}://': {url}")
            key = (scheme, url.raw_host, url.port or _DEFAULT_PORTS[scheme])
            self._last_url, self._last_key = url, key
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        try:
            body = request.content
        except httpx.RequestNotRead:  # a streamed body: sent whole all the same
            body = await request.aread()
        data = _request_bytes(request, body, self._blocks)
        method = request.method
        idle = self._idle.get(key)
        conn = self._take_idle(idle) if idle else None  # the common case, without a coroutine
        if conn is None:
            conn = await self._acquire(key, timeouts)
        try:
            try:
                status, headers, body, coding, version = await conn.exchange(data, method == "HEAD", timeouts.get("read"))
            except _StaleConnection as stale:
                if stale.sent and method not in _IDEMPOTENT:
                    raise httpx.RemoteProtocolError(
                        "the server closed a kept-alive connection before answering; "
                        f"a {method} is not sent again (it may have been received)") from None
                self._discard(conn, keep_slot=True)  # its place goes to the new connection
                conn = await self._connect(key, timeouts.get("connect"))
                status, headers, body, coding, version = await conn.exchange(data, method == "HEAD", timeouts.get("read"))
        except BaseException:
            self._discard(conn)  # mid-exchange (a failure, a cancel): never back to the pool
            raise
        self._release(conn)
        return whole_response(status, ParsedHeaders(headers), body, request, coding, version, self.max_answer_bytes)

    # -- the pool -------------------------------------------------------------------------------------------
    async def _acquire(self, key: tuple, timeouts: dict[str, Any]) -> _Connection:
        """A connection for ``key`` when none is idle: a new one, or one handed over."""
        if self._open < self.max_connections:
            self._open += 1  # a free place
        elif not self._close_idle_elsewhere():  # (which, when it can, hands us that connection's place)
            slot = await self._wait_for_slot(timeouts.get("pool"))
            if slot is not None:
                if slot.key == key and not slot.closed:
                    return slot  # a connection handed over as it came back
                self._discard(slot, keep_slot=True)  # another host's: its place is ours
        return await self._connect(key, timeouts.get("connect"))

    def _take_idle(self, idle: collections.deque[_Connection]) -> _Connection | None:
        expiry = self.keepalive_expiry
        if expiry is not None:
            too_old = idle[0].loop.time() - expiry
            while idle and idle[0].idle_since <= too_old:  # the oldest are on the left
                self._discard(idle.popleft())
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be closed by now
            if not conn.closed:
                return conn
            self._discard(conn)
        return None

    def _close_idle_elsewhere(self) -> bool:
        """At the cap: close another host's idle connection, its place taken (True)."""
        for idle in self._idle.values():
            if idle:
                self._discard(idle.popleft(), keep_slot=True)
                return True
        return False

    async def _wait_for_slot(self, timeout: float | None) -> _Connection | None:
        """Wait for a place in the pool: a connection handed over, or None
        (a place freed, ours to connect); httpx.PoolTimeout after ``timeout``."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        deadline = None if timeout is None else loop.time() + timeout
        self._waiters.append((deadline, waiter))
        if deadline is not None and (self._sweep is None or self._sweep_at > deadline):
            self._arm_sweep(loop, deadline)
        try:
            return await waiter
        except BaseException:  # cancelled, or failed by the sweep (PoolTimeout)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                got = waiter.result()  # handed a place just as we were cancelled: pass it on
                if got is None:
                    self._free_slot()
                else:
                    self._release(got)
            else:
                waiter.cancel()
            POOL_WAIT_CUT.set(self.max_connections)
            raise

    def _arm_sweep(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep, self._sweep_at = loop.call_at(at, self._sweep_waiters, loop), at

    def _sweep_waiters(self, loop: asyncio.AbstractEventLoop) -> None:
        """The pool timeout of every waiter, from one timer (a timer per
        waiting request cost more than the rest of its wait): fail the
        waiters whose deadline has come, then sleep until the next one's.
        The timer is set for the earliest deadline when a waiter comes (not
        moved as waiters are served), so it fires at most once per waiter."""
        self._sweep = None
        now, next_at = loop.time(), None
        for deadline, waiter in self._waiters:
            if deadline is None or waiter.done():
                continue
            if deadline <= now:
                waiter.set_exception(httpx.PoolTimeout("no free connection in time"))
            elif next_at is None or deadline < next_at:
                next_at = deadline
        self._waiters = collections.deque(w for w in self._waiters if not w[1].done())
        if next_at is not None:
            self._arm_sweep(loop, next_at)

    def _next_waiter(self) -> asyncio.Future | None:
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    def _free_slot(self) -> None:
        """A place in the pool freed: to the first waiter, or counted free."""
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(None)
        else:
            self._open -= 1

    async def _connect(self, key: tuple, timeout: float | None) -> _Connection:
        """A new connection in a place already counted (given back on failure)."""
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        tls = self.ssl_context if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, key), host.decode("ascii"), port,
                    ssl=tls, server_hostname=host.decode("ascii") if tls else None)
        except BaseException as exc:
            self._free_slot()
            if isinstance(exc, TimeoutError):
                raise httpx.ConnectTimeout(f"no connection to {host.decode()}:{port} in {timeout} s") from None
            if isinstance(exc, OSError):  # refused, unresolvable, unreachable, TLS refused
                raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
            raise
        self._all.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        """Back to the pool after a whole answer: to a waiter for its host, idle, or closed."""
        if not conn.reusable:
            self._discard(conn)
            return
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(conn)  # the waiter reuses it, or closes it and takes its place
            return
        conn.idle_since = conn.loop.time()
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = collections.deque()
        idle.append(conn)

    def _discard(self, conn: _Connection, keep_slot: bool = False) -> None:
        """Close ``conn`` and free its place (``keep_slot``: the caller takes it)."""
        if conn not in self._all:
            return  # already discarded
        self._all.discard(conn)
        conn.close()
        if not keep_slot:
            self._free_slot()

    def _lost(self, conn: _Connection) -> None:
        """An idle connection closed by its peer: out of the pool now."""
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
            self._discard(conn)

    @property
    def idle_connections(self) -> int:
        """Connections kept alive, waiting for a request."""
        return sum(len(idle) for idle in self._idle.values())

    async def aclose(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conn in list(self._all):
            self._discard(conn)
        self._idle.clear()


def _new_parser(conn: _Connection) -> httptools.HttpResponseParser:
    """llhttp's response parser, as lenient as aiohttp's (and h11, under httpx's own transport):
    bare LF line ends, folded headers, control characters in a header value and a space after a
    chunk's size are read, not refused (strict, a CRM answering so failed every call)."""
    parser = httptools.HttpResponseParser(conn)
    parser.set_dangerous_leniencies(lenient_headers=True, lenient_optional_cr_before_lf=True,
                                    lenient_spaces_after_chunk_size=True)
    return parser


_header_line = b": ".join  # (name, value) -> b"name: value", in C


def _check_header(name: bytes, value: bytes) -> None:
    """httpx.LocalProtocolError for a header that cannot be sent (adaptor.headers' rule)."""
    problem = unsendable(name.decode("latin-1"), value.decode("latin-1"))
    if problem is not None:
        raise httpx.LocalProtocolError(problem)


def _header_block(request: httpx.Request, raw: list[tuple[bytes, bytes]]) -> tuple[bytes, bool]:
    """(the header lines as httpx encoded them, ``Host`` and ``Content-Length``
    included; whether the body goes chunked). Refuses a header that cannot be sent."""
    for name, value in raw:
        _check_header(name, value)
    lines = b"\r\n".join(map(_header_line, raw))
    return lines, b"chunked" in lines and "chunked" in request.headers.get("Transfer-Encoding", "")


def _request_bytes(request: httpx.Request, body: bytes, blocks: dict[tuple, tuple[bytes, bool]]) -> bytes:
    """The whole request, to be written at once: request line, headers, body.
    ``blocks``: header blocks already built, by their header pairs (a client
    sends the same headers every time, but for a POST's ``Content-Length``):
    a look-up costs half of building and checking one."""
    raw = request.headers.raw
    key = tuple(raw)
    block = blocks.get(key)
    if block is None:
        block = _header_block(request, raw)
        if len(blocks) >= _BLOCKS_KEPT:
            blocks.clear()
        blocks[key] = block
    lines, chunked = block
    if chunked:  # a streamed body, read whole: sent as one chunk
        body = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    return b"".join((request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n",
                     lines, b"\r\n\r\n", body))
