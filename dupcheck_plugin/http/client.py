"""One ``httpx.AsyncClient`` per connection, reused for every lead.

The transport is swappable: ``h1`` (:mod:`.h1`, HTTP/1.1 spoken by us on
asyncio protocols with llhttp's parser) costs the least CPU per call;
``aiohttp`` (our lean transport over aiohttp, :mod:`.transport`) did 5-7x the
request rate of httpx's own transport on loopback on these machines (see
``benchmarks/``); ``httpx`` is httpx's own.

CRM APIs are stateless (a token in a header, no session), so the client
keeps no cookies: a ``Set-Cookie`` (a load balancer's, say) is neither
parsed nor sent back with the next lead's call. Both layers' cookie jars cost
CPU on every answer for nothing.

Each lead's call goes through :meth:`CrmClient.send_lean` rather than
``AsyncClient.send``: httpx's request and response objects and its
transports as they are, without the machinery a CRM call does not use
(redirects, event hooks, cookies, header merging and re-encoding per
request, a log line per request). What is the same for every lead (the
client's default headers merged with the adaptor's, ``Host``,
``Content-Type``) is built once per distinct set of headers.
"""

from __future__ import annotations

from typing import Mapping

import httpx

from ..adaptor.headers import unsendable
from .whole_response import MAX_ANSWER_BYTES, WholeResponse, too_large, whole_response

DEFAULT_TRANSPORT = "h1"  # the least CPU per call (the schemas' default says the same)
_HEADS_KEPT = 256  # distinct header sets kept per client (an adaptor usually sends one)
_LENGTHS_KEPT = 64  # distinct body lengths kept per header set (a phone search has a few)
_BODY_METHODS = ("POST", "PUT", "PATCH")  # httpx sends Content-Length: 0 without a body
_OWS = " \t"  # the whitespace around a header value (RFC 9110 5.6.3)


class _NoCookies(httpx.Cookies):
    """An always empty jar: answers' cookies are not kept."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


_NO_COOKIES = _NoCookies()


class _Head:
    """One distinct set of request headers, as sent: with the ``Content-Length`` of each body
    length seen (a request copies them; ``Headers.__setitem__`` per request cost more)."""

    def __init__(self, headers: httpx.Headers, method: str):
        self.headers = headers
        # httpx writes a Content-Length for a body, and 0 for a POST, PUT or PATCH without one
        self.sized = "Content-Length" not in headers and "Transfer-Encoding" not in headers
        self.sized_empty = self.sized and method in _BODY_METHODS
        self._by_length: dict[int, httpx.Headers] = {}

    def for_body(self, has_body: bool, length: int) -> httpx.Headers:
        if not (self.sized_empty or (has_body and self.sized)):
            return self.headers
        headers = self._by_length.get(length)
        if headers is None:
            if len(self._by_length) >= _LENGTHS_KEPT:
                self._by_length.clear()
            headers = self._by_length[length] = httpx.Headers([*self.headers.raw, (b"Content-Length", b"%d" % length)])
        return headers


def _read_request(method: str, url: httpx.URL, headers: httpx.Headers, body: bytes,
                  extensions: dict) -> httpx.Request:
    """``httpx.Request(method, url, headers=headers, stream=httpx.ByteStream(body),
    extensions=extensions)`` after its ``read()``: the same object, made without
    ``__init__`` converting what is converted already (``method`` is upper case,
    ``headers`` an ``httpx.Headers``) and without ``read()`` asking
    ``isinstance(stream, typing.Iterable)`` (a typing alias's ABC check) of a stream
    that is bytes: ~1,300 instructions less a lead of an unbatched run (callgrind,
    whole process: 565,800 -> 564,500, two runs each). httpx 0.28's attributes (pinned; ``tests/test_http_client.py``
    holds the two equal)."""
    request = httpx.Request.__new__(httpx.Request)
    request.method = method
    request.url = url if type(url) is httpx.URL else httpx.URL(url)  # a _WrittenURL: a plain one, as httpx copies it
    request.headers = httpx.Headers(headers)  # its own: an auth flow sets its header on the request
    request.extensions = dict(extensions)
    request.stream = httpx.ByteStream(body)
    request._content = body  # pylint: disable=protected-access
    return request


def unsendable_headers(headers: Mapping[str, str]) -> str | None:
    """Why ``headers`` cannot be sent (adaptor.headers' rule, naming the first that cannot), or None."""
    return next(filter(None, (unsendable(name, value) for name, value in headers.items())), None)


def _trimmed(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` without the spaces and tabs around their values: RFC 9110 (5.5) says a field value
    has none (a parser drops them); h11 refused such a value, h1 and aiohttp sent it as written."""
    return {name: value.strip(_OWS) for name, value in headers.items()}


class CrmClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` without cookie handling, with a lean send (see
    the module's docstring)."""

    def __init__(self, *, transport: httpx.AsyncBaseTransport, timeout: httpx.Timeout):
        super().__init__(transport=transport, timeout=timeout, trust_env=False)
        self.crm_transport = transport
        self._extensions = {"timeout": timeout.as_dict()}
        self._heads: dict[tuple, _Head] = {}
        self._sendable: set[tuple] = set()  # header sets refusal() found sendable
        self._last_url: httpx.URL | None = None
        self._last_netloc = b""

    def _head(self, method: str, url: httpx.URL, headers: Mapping[str, str], content_type: str | None) -> "_Head":
        """The client's default headers updated with ``headers``, then
        ``Content-Type`` and ``Host`` as httpx would add them: built once per
        distinct set."""
        if url is not self._last_url:  # a URL without a query is the same object for every lead
            self._last_url, self._last_netloc = url, url.netloc
        key = (method, self._last_netloc, tuple(headers.items()), content_type)
        head = self._heads.get(key)
        if head is None:
            # every transport's rule, checked here (once per distinct set) so that call.exchange refuses
            # the lead (crm.error "render") before it takes a limiter slot: aiohttp raised ValueError for
            # a line break or "\x01", h11 lets 0x01-0x08, 0x0e-0x1f and DEL go out (h1 checks its header
            # blocks too, for the headers the client or an httpx.Auth adds)
            if (problem := unsendable_headers(headers)) is not None:
                raise httpx.LocalProtocolError(problem)
            merged = httpx.Headers(self.headers)
            merged.update(_trimmed(headers))  # ASCII now (the rule above): httpx's encoding cannot fail
            if content_type is not None and "Content-Type" not in merged:
                merged["Content-Type"] = content_type
            raw = merged.raw if "Host" in merged else [(b"Host", self._last_netloc), *merged.raw]
            head = _Head(httpx.Headers(raw), method)
            if len(self._heads) >= _HEADS_KEPT:
                self._heads.clear()
            self._heads[key] = head
        return head

    def refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why ``headers`` cannot be sent (what :meth:`build` would refuse), or None; checked once
        per distinct set. The batcher asks before a lead joins a batch: a lead whose request
        cannot be sent takes no limiter slot."""
        key = tuple(headers.items())
        if key in self._sendable:
            return None
        problem = unsendable_headers(headers)
        if problem is None:
            if len(self._sendable) >= _HEADS_KEPT:
                self._sendable.clear()
            self._sendable.add(key)
        return problem

    def build(self, method: str, url: httpx.URL, headers: Mapping[str, str], content: bytes | None = None,
              content_type: str | None = None) -> httpx.Request:
        """The ``httpx.Request`` ``AsyncClient.build_request`` would make for
        a body already encoded (``content_type``: the type its encoding says,
        unless ``headers`` name one)."""
        method = method.upper()
        head = self._head(method, url, headers, content_type)
        body = content or b""
        return _read_request(method, url, head.for_body(content is not None, len(body)), body, self._extensions)

    async def send_lean(self, request: httpx.Request, auth: httpx.Auth | None = None) -> httpx.Response:
        """Send ``request`` through the transport and read the whole answer;
        ``auth`` (an ``httpx.Auth``: the OAuth token) is driven as
        ``AsyncClient.send`` drives it: it may send the request again."""
        if auth is None:  # the common case: _send_read's steps, without its coroutine
            response = await self.crm_transport.handle_async_request(request)
            response.request = request
            return response if isinstance(response, WholeResponse) else await _read_whole(response)
        flow = auth.async_auth_flow(request)
        try:
            request = await flow.__anext__()
            while True:
                response = await self._send_read(request)
                try:
                    request = await flow.asend(response)
                except StopAsyncIteration:
                    return response
        finally:
            await flow.aclose()

    async def _send_read(self, request: httpx.Request) -> httpx.Response:
        response = await self.crm_transport.handle_async_request(request)
        response.request = request
        return response if isinstance(response, WholeResponse) else await _read_whole(response)

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, value) -> None:
        raise TypeError("a CRM client keeps no cookies")


async def _read_whole(response: httpx.Response) -> httpx.Response:
    """``response`` read whole (a WholeResponse is already: our transports read it so); closed
    when reading fails."""
    try:
        await response.aread()
    except BaseException:
        await response.aclose()
        raise
    return response


def refusal(client: httpx.AsyncClient, headers: Mapping[str, str]) -> str | None:
    """Why ``client`` would not send ``headers``, or None: a CrmClient's check (kept per
    distinct set), the same rule for any other httpx client (a host's own)."""
    return client.refusal(headers) if isinstance(client, CrmClient) else unsendable_headers(headers)


class _ReadWhole(httpx.AsyncBaseTransport):
    """httpx's own transport, its answer read whole as ours read it: at most ``max_answer_bytes``
    of the body as sent, and decoded (httpx's own read has no cap)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, max_answer_bytes: int):
        self.transport, self.max_answer_bytes = transport, max_answer_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.transport.handle_async_request(request)
        limit, chunks, size = self.max_answer_bytes, [], 0
        try:
            async for chunk in response.stream:
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)  # aclose below: the connection is not reused
                chunks.append(chunk)
        finally:
            await response.aclose()
        version = response.extensions.get("http_version", b"HTTP/1.1").decode("ascii").removeprefix("HTTP/")
        return whole_response(response.status_code, response.headers, b"".join(chunks), request,
                              response.headers.get("Content-Encoding"), version, limit)

    async def aclose(self) -> None:
        await self.transport.aclose()


def make_client(*, transport: str | httpx.AsyncBaseTransport = DEFAULT_TRANSPORT, max_connections: int = 64,
                timeout: float = 10.0, connect_timeout: float = 5.0,
                max_answer_bytes: int = MAX_ANSWER_BYTES) -> CrmClient:
    """``transport``: ``"h1"``, ``"aiohttp"``, ``"httpx"``, or a transport
    object a host hands in (``httpx.MockTransport`` in a test, a proxying one);
    ``max_answer_bytes``: the most of an answer our transports read, and decode."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    timeouts = httpx.Timeout(timeout, connect=connect_timeout)
    if isinstance(transport, httpx.AsyncBaseTransport):
        return CrmClient(transport=transport, timeout=timeouts)
    if transport == "h1":
        from .h1 import H1Transport

        return CrmClient(transport=H1Transport(max_connections=max_connections,
                                               keepalive_expiry=limits.keepalive_expiry,
                                               max_answer_bytes=max_answer_bytes), timeout=timeouts)
    if transport == "aiohttp":
        from .transport import AiohttpTransport

        return CrmClient(transport=AiohttpTransport(max_connections=max_connections,
                                                    keepalive_expiry=limits.keepalive_expiry,
                                                    max_answer_bytes=max_answer_bytes), timeout=timeouts)
    # what AsyncClient(limits=...) would make for itself, read whole with the cap
    httpx_transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    return CrmClient(transport=_ReadWhole(httpx_transport, max_answer_bytes), timeout=timeouts)
