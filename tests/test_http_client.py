"""The CRM client keeps no cookies: each lead's call goes out as the adaptor
renders it, whatever an earlier answer set (real HTTP over loopback)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from dupcheck_plugin.http.client import make_client

pytestmark = pytest.mark.e2e  # starts a server on loopback


async def _serve_cookies() -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.Response:
        resp = web.json_response({"cookie": request.headers.get("Cookie")})
        resp.set_cookie("affinity", "node-7", path="/")
        return resp

    app = web.Application()
    app.router.add_get("/x", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/x"


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_a_set_cookie_is_not_sent_back_with_the_next_call(transport):
    async def go() -> list:
        runner, url = await _serve_cookies()
        client = make_client(transport=transport)
        try:
            first = await client.get(url)
            second = await client.get(url)
        finally:
            await client.aclose()
            await runner.cleanup()
        assert "affinity=node-7" in first.headers["set-cookie"]  # the server did set one
        return [first.json()["cookie"], second.json()["cookie"], len(client.cookies)]

    assert asyncio.run(go()) == [None, None, 0]


def test_its_cookies_cannot_be_set():
    with pytest.raises(TypeError, match="keeps no cookies"):
        make_client().cookies = {"a": "b"}
