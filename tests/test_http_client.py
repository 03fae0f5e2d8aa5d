"""The CRM client keeps no cookies: each lead's call goes out as the adaptor
renders it, whatever an earlier answer set (real HTTP over loopback)."""

from __future__ import annotations

import asyncio

import httpx
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


@pytest.mark.parametrize("transport", ["h1", "aiohttp", "httpx"])
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


# -- the lean send: the same request AsyncClient would build, sent through the transport ---------------------

JSON_BODY = {"filterGroups": [{"filters": [{"propertyName": "phone", "value": "+1 555 0100 ü"}]}], "limit": 10}


@pytest.mark.parametrize("method,headers,body", [
    ("POST", {"Authorization": "Bearer t", "Content-Type": "application/json"}, ("json", JSON_BODY)),
    ("post", {"Accept": "application/xml"}, ("json", JSON_BODY)),  # the adaptor's Accept replaces httpx's
    ("POST", {"X-Key": "k"}, ("form", {"phone": "+15550100", "flag": True, "none": None, "many": ["a", "b"]})),
    ("GET", {"X-Key": "k"}, ("none", None)),
    ("POST", {}, ("none", None)),  # httpx sends Content-Length: 0
])
def test_a_built_request_is_the_one_async_client_builds(method, headers, body):
    from dupcheck_plugin.adaptor.render import Rendered
    from dupcheck_plugin.http.call import encode_body

    fmt, value = body
    rendered = Rendered(method=method, url="http://crm.test:8080/v3/search?x=1", headers=headers, query={},
                        body=value, body_format=fmt)
    content, content_type = encode_body(rendered)
    client = make_client()
    url = httpx.URL(rendered.url)
    ours = client.build(method, url, headers, content, content_type)
    kwargs = {"json": value} if fmt == "json" else {"data": value} if fmt == "form" else {}
    theirs = client.build_request(method, url, headers=headers, **kwargs)
    assert (ours.method, ours.url, ours.content) == (theirs.method, theirs.url, theirs.content)
    assert sorted(ours.headers.multi_items()) == sorted(theirs.headers.multi_items())
    assert ours.extensions == theirs.extensions  # the client's timeouts
    # made without httpx.Request.__init__ (client._read_request): what it and read() would have made
    made = httpx.Request(ours.method, url, headers=ours.headers, stream=httpx.ByteStream(ours.content),
                         extensions=ours.extensions)
    made.read()
    assert type(ours) is httpx.Request and type(ours.url) is httpx.URL and type(ours.stream) is type(made.stream)
    assert {k: v for k, v in vars(ours).items() if k not in ("headers", "stream")} \
        == {k: v for k, v in vars(made).items() if k not in ("headers", "stream")}
    assert ours.headers.raw == made.headers.raw and b"".join(ours.stream) == b"".join(made.stream) == ours.content


def test_a_request_to_a_url_written_by_the_plan_gets_a_plain_httpx_url():
    from dupcheck_plugin.adaptor.render import Rendered
    from dupcheck_plugin.http.wire import sent_url

    rendered = Rendered(method="GET", url="http://crm.test/q", headers={}, query={"q": "SELECT 'x' (1)"},
                        body=None, body_format="none")
    written = sent_url(rendered)
    assert type(written) is not httpx.URL  # the plan's own: see wire.sent_url
    request = make_client().build("GET", written, {})
    assert type(request.url) is httpx.URL and request.url == httpx.URL(str(written))
    assert request.url.params["q"] == "SELECT 'x' (1)"


def _answer(status: int = 200, body: bytes = b'{"total": 1}', **headers: str) -> web.Response:
    return web.Response(status=status, body=body, headers=headers)


async def _serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/x"


@pytest.mark.parametrize("transport", ["h1", "aiohttp", "httpx"])
def test_a_gzipped_answer_is_decoded_and_headers_come_as_sent(transport):
    import gzip

    async def handler(request: web.Request) -> web.Response:
        return _answer(body=gzip.compress(b'{"total": 2}'), **{"Content-Encoding": "gzip", "X-Thing": "a"})

    async def go():
        runner, url = await _serve(handler)
        client = make_client(transport=transport)
        try:
            plain = await client.send_lean(client.build("GET", httpx.URL(url), {}))
            return plain.status_code, plain.json(), plain.headers["x-thing"], plain.headers["content-encoding"]
        finally:
            await client.aclose()
            await runner.cleanup()

    assert asyncio.run(go()) == (200, {"total": 2}, "a", "gzip")


@pytest.mark.parametrize("transport", ["h1", "aiohttp", "httpx"])
@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_an_answer_says_the_http_version_its_server_spoke(transport, version):
    async def speak(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/%s 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{\"total\": 1}" % version.encode())
        await writer.drain()
        writer.close()

    async def go():
        server = await asyncio.start_server(speak, "127.0.0.1", 0)
        client = make_client(transport=transport)
        try:
            url = httpx.URL(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x")
            got = await client.send_lean(client.build("GET", url, {}))
            return got.http_version, got.json()
        finally:
            await client.aclose()
            server.close()
            await server.wait_closed()

    assert asyncio.run(go()) == (f"HTTP/{version}", {"total": 1})


@pytest.mark.parametrize("transport", ["h1", "aiohttp", "httpx"])
def test_what_went_wrong_is_told_apart_as_httpx_tells_it(transport):
    """A refused connection is a ConnectError (not a timeout), no answer in
    time a ReadTimeout, a connection dropped before the answer a transport
    error: the pipeline's "connection" and "timeout" rest on these."""
    import socket

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return _answer()

    async def drop(request: web.Request) -> web.Response:
        request.transport.close()
        await asyncio.sleep(1)
        return _answer()

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}/x"

    async def outcome(url: str, timeout: float = 30) -> type[BaseException]:
        client = make_client(transport=transport, timeout=timeout, connect_timeout=timeout)
        try:
            await client.send_lean(client.build("POST", httpx.URL(url), {}, b"{}", "application/json"))
        except httpx.HTTPError as exc:
            return type(exc)
        finally:
            await client.aclose()
        raise AssertionError("no error")

    async def go():
        hanging, hang_url = await _serve(hang)
        dropping, drop_url = await _serve(drop)
        try:
            # the hanging server never answers: any timeout runs out; the others fail at once
            return await outcome(refused), await outcome(hang_url, timeout=0.3), await outcome(drop_url)
        finally:
            await hanging.cleanup()
            await dropping.cleanup()

    was_refused, hung, dropped = asyncio.run(go())
    assert issubclass(was_refused, httpx.ConnectError)
    assert issubclass(hung, httpx.ReadTimeout)
    assert issubclass(dropped, httpx.TransportError) and not issubclass(dropped, httpx.TimeoutException)


def test_an_auth_flow_is_driven_as_async_client_drives_it():
    """The lean send drives an httpx.Auth's flow: it may answer a 401 by
    sending the request again with a new token (OAuth's refresh)."""
    seen: list[str] = []

    def crm(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        ok = request.headers["Authorization"] == "Bearer fresh"
        return httpx.Response(200 if ok else 401, json={"ok": ok})

    class Refreshing(httpx.Auth):
        async def async_auth_flow(self, request):
            request.headers["Authorization"] = "Bearer stale"
            response = yield request
            if response.status_code == 401:
                request.headers["Authorization"] = "Bearer fresh"
                yield request

    async def go():
        client = make_client(transport=httpx.MockTransport(crm))
        resp = await client.send_lean(client.build("GET", httpx.URL("http://crm.test/x"), {}), Refreshing())
        await client.aclose()
        return resp.status_code, resp.json()

    assert asyncio.run(go()) == (200, {"ok": True})
    assert seen == ["Bearer stale", "Bearer fresh"]


@pytest.mark.parametrize("masked_query", [{"q": "SELECT 'x' FROM Lead", "n": 1}, {"q": "SELECT 'x' FROM Lead", "key": "****"}])
def test_the_recorded_url_is_the_masked_one_whether_or_not_it_is_the_one_sent(masked_query):
    from dupcheck_plugin.adaptor.render import Rendered
    from dupcheck_plugin.http.call import send
    from dupcheck_plugin.http.wire import full_url

    async def echo_url(request: web.Request) -> web.Response:
        return _answer(body=str(request.url).encode())

    async def go():
        runner, url = await _serve(echo_url)
        real_query = {**masked_query, "key": "s3cr3t"} if "key" in masked_query else dict(masked_query)
        real = Rendered("GET", url + "?a=1", {}, real_query, "none", None)
        masked = Rendered("GET", url + "?a=1", {}, masked_query, "none", None)
        client = make_client()
        try:
            return real, masked, await send(client, real, masked, response_format="text")
        finally:
            await client.aclose()
            await runner.cleanup()

    real, masked, answer = asyncio.run(go())
    assert answer.body == full_url(real)  # what the server saw
    assert answer.request["url"] == full_url(masked)
    assert ("s3cr3t" in answer.request["url"]) is False


def test_requests_of_one_header_set_each_carry_their_own_length_and_headers():
    """The headers a client keeps per header set and body length are copied into each
    request: a request changed on its way out (an OAuth token added) changes no other."""
    client = make_client()
    url = httpx.URL("http://crm.test/v3/search")
    first = client.build("POST", url, {"Accept": "application/json"}, b"abc", "application/json")
    first.headers["Authorization"] = "Bearer added-on-the-way"
    longer = client.build("POST", url, {"Accept": "application/json"}, b"abcde", "application/json")
    again = client.build("POST", url, {"Accept": "application/json"}, b"xyz", "application/json")
    empty = client.build("POST", url, {"Accept": "application/json"})
    assert [r.headers["Content-Length"] for r in (first, longer, again, empty)] == ["3", "5", "3", "0"]
    assert "Authorization" not in again.headers and "Authorization" not in longer.headers
    assert again.headers.get_list("Content-Length") == ["3"] and again.content == b"xyz"
