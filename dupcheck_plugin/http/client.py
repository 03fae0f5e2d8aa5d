"""One ``httpx.AsyncClient`` per connection, reused for every lead.

The transport is swappable: ``aiohttp`` (httpx-aiohttp) did 5-7x the request
rate of httpx's own transport on loopback on these machines (see
``benchmarks/``); ``httpx`` is there for when aiohttp misbehaves.

CRM APIs are stateless (a token in a header, no session), so the client
keeps no cookies: a ``Set-Cookie`` (a load balancer's, say) is neither
parsed nor sent back with the next lead's call. Both layers' cookie jars cost
CPU on every answer for nothing.
"""

from __future__ import annotations

import httpx


class _NoCookies(httpx.Cookies):
    """An always empty jar: answers' cookies are not kept."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


_NO_COOKIES = _NoCookies()


class CrmClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` without cookie handling (see the module's docstring)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, value) -> None:
        raise TypeError("a CRM client keeps no cookies")


def _aiohttp_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    def session() -> aiohttp.ClientSession:  # made on first use, inside the running loop
        connector = aiohttp.TCPConnector(keepalive_timeout=limits.keepalive_expiry, ssl=transport.ssl_context,
                                         limit=limits.max_connections)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    transport = AiohttpTransport(limits=limits, client=session)
    return transport


def make_client(*, transport: str | httpx.AsyncBaseTransport = "aiohttp", max_connections: int = 64,
                timeout: float = 10.0, connect_timeout: float = 5.0) -> httpx.AsyncClient:
    """``transport``: ``"aiohttp"``, ``"httpx"``, or a transport object a host
    hands in (``httpx.MockTransport`` in a test, a proxying one)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    timeouts = httpx.Timeout(timeout, connect=connect_timeout)
    if isinstance(transport, httpx.AsyncBaseTransport):
        return CrmClient(transport=transport, timeout=timeouts, trust_env=False)
    if transport == "aiohttp":
        return CrmClient(transport=_aiohttp_transport(limits), timeout=timeouts, trust_env=False)
    return CrmClient(limits=limits, timeout=timeouts, trust_env=False)
