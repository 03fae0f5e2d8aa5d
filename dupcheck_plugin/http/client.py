"""One ``httpx.AsyncClient`` per connection, reused for every lead.

The transport is swappable: ``aiohttp`` (httpx-aiohttp) did 5-7x the request
rate of httpx's own transport on loopback on these machines (see
``benchmarks/``); ``httpx`` is there for when aiohttp misbehaves.
"""

from __future__ import annotations

import httpx


def make_client(*, transport: str | httpx.AsyncBaseTransport = "aiohttp", max_connections: int = 64,
                timeout: float = 10.0, connect_timeout: float = 5.0) -> httpx.AsyncClient:
    """``transport``: ``"aiohttp"``, ``"httpx"``, or a transport object a host
    hands in (``httpx.MockTransport`` in a test, a proxying one)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    timeouts = httpx.Timeout(timeout, connect=connect_timeout)
    if isinstance(transport, httpx.AsyncBaseTransport):
        return httpx.AsyncClient(transport=transport, timeout=timeouts, trust_env=False)
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=timeouts, trust_env=False)
    return httpx.AsyncClient(limits=limits, timeout=timeouts, trust_env=False)
