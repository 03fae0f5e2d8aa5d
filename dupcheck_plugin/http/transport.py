"""An ``httpx`` transport over aiohttp, lean.

httpx-aiohttp's transport cost as much CPU per request as aiohttp itself
(header objects rebuilt both ways, a URL re-parsed, a streamed body read
back in chunks through two layers). CRM answers are small JSON documents
read whole, so this one hands aiohttp the header pairs as they are and the
URL as already encoded, reads the body in one go and builds the
``httpx.Response`` from aiohttp's raw headers and bytes (a ``Content-Encoding``
httpx announced is decoded by :mod:`.whole_response`). At most
``max_answer_bytes`` of a body are read, and decoded.

aiohttp's errors become httpx's as :mod:`.whole_response` lists them.
"""

from __future__ import annotations

import aiohttp
import httpx
import yarl

from .whole_response import MAX_ANSWER_BYTES, too_large, whole_response

# aiohttp error -> httpx error; the first that matches wins (timeouts are
# OSErrors and ClientConnectionErrors too, so they come first)
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # not HTTP, or a malformed answer
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.NetworkError),
)


def _httpx_error(exc: aiohttp.ClientError) -> httpx.TransportError:
    for theirs, ours in _ERRORS:
        if isinstance(exc, theirs):
            return ours(str(exc) or type(exc).__name__)
    return httpx.NetworkError(str(exc))


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (made on first use, inside the running loop): no
    cookies, no redirects, no decompression (httpx decodes), ``max_connections``
    connections at most."""

    def __init__(self, *, max_connections: int = 64, keepalive_expiry: float | None = 5.0,
                 max_answer_bytes: int = MAX_ANSWER_BYTES):
        self.max_connections = max_connections
        self.max_answer_bytes = max_answer_bytes
        self.keepalive_expiry = keepalive_expiry
        # certifi's CA bundle, as httpx verifies (aiohttp alone would take the system's)
        self.ssl_context = httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple, aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=self.keepalive_expiry,
                                         ssl=self.ssl_context)
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                              auto_decompress=False)
        return self._session

    def _timeout(self, t: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (t.get("connect"), t.get("read"), t.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            # httpx's connect -> the socket connect, read -> each socket read, pool -> waiting for a connection
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(sock_connect=key[0], sock_read=key[1], connect=key[2])
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        try:
            data = request.content or None
        except httpx.RequestNotRead:
            data = await request.aread() or None
        try:
            # httpx has already percent-encoded the URL (and yarl keeps what it parsed: no cache of ours)
            url = yarl.URL(str(request.url), encoded=True)
            async with session.request(request.method, url, headers=headers, data=data,
                                       allow_redirects=False, timeout=self._timeout(request.extensions.get("timeout", {}))
                                       ) as resp:
                content = await self._read(resp)
                status, raw, coding = resp.status, resp.raw_headers, resp.headers.get("Content-Encoding")
                version = f"{resp.version.major}.{resp.version.minor}"
        except aiohttp.ClientError as exc:
            raise _httpx_error(exc) from exc
        return whole_response(status, raw, content, request, coding, version, self.max_answer_bytes)

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        """The whole body, at most ``max_answer_bytes`` of it: past that, its connection closed."""
        limit = self.max_answer_bytes
        length = resp.content_length
        if length is not None and length <= limit:
            return await resp.read()  # the common case: aiohttp reads no further than the length
        if length is None:  # chunked, or delimited by the end of the connection: counted as it comes
            chunks, size = [], 0
            while chunk := await resp.content.readany():
                size += len(chunk)
                if size > limit:
                    break
                chunks.append(chunk)
            else:
                return b"".join(chunks)
        resp.close()  # not read further: the connection is not reused
        raise too_large(limit)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
