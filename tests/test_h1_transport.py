"""The HTTP/1.1 transport (http/h1.py) against real loopback servers: raw
asyncio servers that answer as each test scripts them (well, badly, late, or
not at all), on asyncio's own loop and on uvloop. Every wait is on an event
the server or the client signals, never on a clock; the few timeouts set are
ones that must run out (a server that never answers)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl

import httpx
import pytest
import uvloop

from dupcheck_plugin.http.h1 import H1Transport

from loopback import Server, answer

pytestmark = pytest.mark.e2e  # starts servers on loopback


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """Runs a coroutine to the end on one of the two loops dupcheck runs on."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def go(coro):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)
    return go


async def keep_answering(reader, writer, server: Server) -> None:
    """A well-behaved keep-alive server: each request answered with its path."""
    while await server.request(reader) is not None:
        writer.write(answer(server.requests[-1][0].split(b" ")[1]))


def client(transport: H1Transport, **timeouts: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeouts.pop("default", 10), **timeouts))


# -- keep-alive and the pool ------------------------------------------------------------------------------------

def test_sequential_requests_share_one_connection_and_go_out_as_httpx_built_them(run):
    async def go():
        async with Server(keep_answering) as server, client(H1Transport()) as c:
            got = [await c.post(f"{server.url}/search?q=a b", content=b'{"n": %d}' % i,
                                headers={"Authorization": "Bearer t"}) for i in range(3)]
            return server, got

    server, got = run(go())
    assert [r.content for r in got] == [b"/search?q=a%20b"] * 3
    assert server.accepted == 1
    line, headers, body = server.requests[2]
    assert line == b"POST /search?q=a%20b HTTP/1.1"
    assert headers[b"host"] == server.url.removeprefix("http://").encode()
    assert (headers[b"authorization"], headers[b"content-length"], body) == (b"Bearer t", b"8", b'{"n": 2}')


def test_each_request_goes_out_with_its_own_headers_when_they_change_between_requests(run):
    sent = [("t1", b"{}"), ("t2", b"{}"), ("t1", b'{"n": 10}'), ("t2", b"{}")]  # a token refreshed, a longer body

    async def go():
        async with Server(keep_answering) as server, client(H1Transport()) as c:
            for token, body in sent:
                await c.post(f"{server.url}/s", content=body, headers={"Authorization": f"Bearer {token}"})
            return server

    got = [(h[b"authorization"], h[b"content-length"], body) for _, h, body in run(go()).requests]
    assert got == [(f"Bearer {t}".encode(), str(len(b)).encode(), b) for t, b in sent]


def test_a_streamed_body_goes_out_whole_in_chunked_framing(run):
    async def go():
        async def read_chunked(reader, writer, server):
            head = await reader.readuntil(b"\r\n\r\n")
            framed = await reader.readuntil(b"0\r\n\r\n")
            writer.write(answer(head.split(b"\r\n")[0] + b" | " + framed))
            await reader.read()

        async def parts():
            yield b'{"a": '
            yield b'1}'

        async with Server(read_chunked) as server, client(H1Transport()) as c:
            return (await c.post(f"{server.url}/s", content=parts())).content

    assert run(go()) == b'POST /s HTTP/1.1 | 8\r\n{"a": 1}\r\n0\r\n\r\n'


def test_no_more_connections_than_max_connections_however_many_requests(run):
    async def go():
        all_open = asyncio.Event()

        async def answer_once_three_are_open(reader, writer, server):
            if server.open_now == 3:
                all_open.set()
            await all_open.wait()  # so the pool is made to hold three at once
            await keep_answering(reader, writer, server)

        async with Server(answer_once_three_are_open) as server, client(H1Transport(max_connections=3)) as c:
            got = await asyncio.gather(*(c.get(f"{server.url}/{i}") for i in range(40)))
            return server, got

    server, got = run(go())
    assert [r.content for r in got] == [f"/{i}".encode() for i in range(40)]
    assert (server.most_open, server.accepted) == (3, 3)


def test_waiting_for_a_free_connection_obeys_the_pool_timeout(run):
    async def go():
        async def never_answer(reader, writer, server):
            await server.request(reader)
            await reader.read()

        async with Server(never_answer) as server, client(H1Transport(max_connections=1), pool=0.05) as c:
            stuck = asyncio.create_task(c.get(f"{server.url}/a"))
            await server.requested.wait()  # the only connection is taken
            with pytest.raises(httpx.PoolTimeout):
                await c.get(f"{server.url}/b")
            stuck.cancel()
            return server

    assert run(go()).accepted == 1


def test_each_waiter_has_its_own_pool_timeout_and_one_served_in_time_is_not_failed(run):
    """Two requests wait for the one connection: the one that came second
    with the shorter pool timeout times out (PoolTimeout), the first, with
    a long one, gets the connection once it is free, its answer whole."""
    async def go():
        release = asyncio.Event()

        async def hold_then_answer(reader, writer, server):
            await server.request(reader)
            await release.wait()
            writer.write(answer(b"/a"))
            await keep_answering(reader, writer, server)

        async with Server(hold_then_answer) as server, client(H1Transport(max_connections=1), pool=10) as c:
            held = asyncio.create_task(c.get(f"{server.url}/a"))
            await server.requested.wait()  # the only connection is taken
            # tasks start in the order they are made: the patient one waits first (pool timeout 10 s),
            # the hasty one's earlier deadline comes after it
            patient = asyncio.create_task(c.get(f"{server.url}/patient"))
            hasty = asyncio.create_task(c.get(f"{server.url}/hasty", timeout=httpx.Timeout(10, pool=0.05)))
            with pytest.raises(httpx.PoolTimeout):
                await hasty
            release.set()
            return server, (await held).content, (await patient).content

    server, held, patient = run(go())
    assert (held, patient, server.accepted) == (b"/a", b"/patient", 1)
    assert [line for line, _, _ in server.requests] == [b"GET /a HTTP/1.1", b"GET /patient HTTP/1.1"]


def test_a_place_taken_from_another_hosts_idle_connection_is_counted_once(run):
    """At the cap, a request for host B closes host A's idle connection and
    connects in its place: the pool still counts one connection, so once B's
    is gone too, a request for A connects at once (it would wait for a place
    nobody holds, then time out, were the place counted twice)."""
    async def go():
        async def answer_and_close(reader, writer, server):
            await server.request(reader)
            writer.write(answer(b"b", "200 OK", "Connection: close"))
            await reader.read()

        async with Server(keep_answering) as a, Server(answer_and_close) as b, \
                client(H1Transport(max_connections=1), pool=5) as c:
            first = await c.get(f"{a.url}/1")  # A's connection, idle afterwards
            other = await c.get(f"{b.url}/x")  # closes A's idle connection; B's is closed after its answer
            again = await c.get(f"{a.url}/2")
            return a, b, [first.content, other.content, again.content]

    a, b, got = run(go())
    assert got == [b"/1", b"b", b"/2"]
    assert (a.accepted, b.accepted) == (2, 1)


def test_a_cancelled_request_closes_its_connection_and_frees_its_place(run):
    async def go():
        async def hold_the_first(reader, writer, server):
            if server.accepted == 1:
                await server.request(reader)
                await server.request(reader)  # returns None when the client closes
                return
            await keep_answering(reader, writer, server)

        async with Server(hold_the_first) as server, client(H1Transport(max_connections=1)) as c:
            first = asyncio.create_task(c.get(f"{server.url}/held"))
            await server.requested.wait()
            first.cancel()
            # the half-done exchange's connection was closed (the bound only stops a failing test hanging)
            await asyncio.wait_for(server.closed_by_client.wait(), 60)
            second = await c.get(f"{server.url}/next")  # in the place the first freed
            return server, first.cancelled(), second.content

    server, cancelled, content = run(go())
    assert (cancelled, content, server.accepted) == (True, b"/next", 2)


def test_an_idle_connection_older_than_keepalive_expiry_is_not_reused(run):
    async def go():
        async with Server(keep_answering) as server, client(H1Transport(keepalive_expiry=0)) as c:
            for i in range(2):
                await c.get(f"{server.url}/{i}")
            return server

    assert run(go()).accepted == 2


# -- how an answer ends -----------------------------------------------------------------------------------------

def test_chunked_and_close_delimited_bodies_are_read_whole(run):
    async def go():
        async def chunked_then_close_delimited(reader, writer, server):
            await server.request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
            writer.write(b"6\r\n world\r\n0\r\n\r\n")
            await server.request(reader)  # the same connection: a chunked answer keeps it
            writer.write(b"HTTP/1.1 200 OK\r\n\r\nuntil the ")
            await writer.drain()
            writer.write(b"end")

        async with Server(chunked_then_close_delimited) as server, client(H1Transport()) as c:
            return server, (await c.get(server.url)).content, (await c.get(server.url)).content

    server, chunked, delimited = run(go())
    assert (chunked, delimited, server.accepted) == (b"hello world", b"until the end", 1)


@pytest.mark.parametrize("head", [
    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",  # 1.0 without keep-alive
])
def test_an_answer_that_closes_the_connection_leaves_it_out_of_the_pool(run, head):
    async def go():
        async def answer_and_keep_reading(reader, writer, server):
            while await server.request(reader) is not None:
                writer.write(head.encode())  # and keeps the socket open: the client must not reuse it

        async with Server(answer_and_keep_reading) as server, client(H1Transport()) as c:
            return server, [(await c.get(server.url)).content for _ in range(2)]

    server, contents = run(go())
    assert (contents, server.accepted) == ([b"ok", b"ok"], 2)


@pytest.mark.parametrize("head,version,kept", [
    ("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "HTTP/1.0", False),
    ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", "HTTP/1.0", True),
    ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "HTTP/1.1", True),
    ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "HTTP/1.1", False),
])
def test_an_answer_reports_its_http_version_and_keeps_the_connection_only_when_it_says_so(run, head, version, kept):
    async def go():
        async def answer_and_keep_reading(reader, writer, server):
            while await server.request(reader) is not None:
                writer.write(head.encode())  # and keeps the socket open whatever it said

        async with Server(answer_and_keep_reading) as server, client(H1Transport()) as c:
            return server, [await c.get(server.url) for _ in range(3)]

    server, got = run(go())
    assert [(r.http_version, r.content) for r in got] == [(version, b"ok")] * 3
    assert server.accepted == (1 if kept else 3)


def test_an_http_1_0_server_that_closes_after_each_answer_is_read_as_http_1_0(run):
    zipped = gzip.compress(b'{"total": 1}')

    async def go():
        async def http_1_0(reader, writer, server):  # as an HTTP/1.0 server does: no length, close
            if await server.request(reader) is not None:
                gzipped = server.requests[-1][0].startswith(b"GET /z ")
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                             + (b"Content-Encoding: gzip\r\n\r\n" + zipped if gzipped else b"\r\n" + b'{"total": 1}'))
                await writer.drain()

        transport = H1Transport()
        async with Server(http_1_0) as server, client(transport) as c:
            got = [await c.get(f"{server.url}{path}") for path in ("/a", "/z", "/a")]
            return server, got, transport.idle_connections

    server, got, idle = run(go())
    assert [(r.http_version, r.json()) for r in got] == [("HTTP/1.0", {"total": 1})] * 3
    assert (server.accepted, idle) == (3, 0)


@pytest.mark.parametrize("method,status", [("HEAD", "200 OK"), ("GET", "204 No Content"),
                                           ("GET", "304 Not Modified")])
def test_answers_without_a_body_end_at_their_headers(run, method, status):
    async def go():
        async def announce_a_body(reader, writer, server):
            while await server.request(reader) is not None:
                writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 50\r\n\r\n".encode()
                             if method == "HEAD" else f"HTTP/1.1 {status}\r\n\r\n".encode())

        async with Server(announce_a_body) as server, client(H1Transport()) as c:
            got = [await c.request(method, server.url) for _ in range(2)]
            return server, [(r.status_code, r.content) for r in got]

    server, got = run(go())
    assert got == [(int(status[:3]), b"")] * 2 and server.accepted == 1


def test_a_head_answers_announced_body_does_not_confuse_the_next_answer_on_its_connection(run):
    async def go():
        async def head_then_get(reader, writer, server):
            await server.request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")  # a HEAD answer: no body follows
            await server.request(reader)
            writer.write(answer(b"hello"))
            await reader.read()

        async with Server(head_then_get) as server, client(H1Transport()) as c:
            head, get = await c.head(server.url), await c.get(server.url)
            return server, (head.status_code, head.content), (get.status_code, get.content)

    server, head, get = run(go())
    assert (head, get, server.accepted) == ((200, b""), (200, b"hello"), 1)


def test_an_answers_headers_read_as_httpx_reads_them(run):
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-RateLimit-Remaining: 9\r\n"
            b"Set-Cookie: a=1\r\nset-cookie: b=2\r\nX-Note: caf\xe9\r\nContent-Length: 2\r\n\r\n{}")

    async def go():
        async def answer_with_headers(reader, writer, server):
            while await server.request(reader) is not None:
                writer.write(head)

        async with Server(answer_with_headers) as server, client(H1Transport()) as c:
            return [await c.get(server.url) for _ in range(2)]

    expected = httpx.Headers([(b"Content-Type", b"application/json"), (b"X-RateLimit-Remaining", b"9"),
                              (b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"X-Note", b"caf\xe9"),
                              (b"Content-Length", b"2")])
    for r in run(go()):  # the second answer parsed on the connection's kept parser
        assert r.headers == expected and r.headers.raw == expected.raw
        assert r.headers.multi_items() == expected.multi_items() and dict(r.headers) == dict(expected)
        assert (r.headers["x-ratelimit-remaining"], r.headers["SET-COOKIE"], r.headers.get("x-missing")) == (
            "9", "a=1, b=2", None)
        assert (r.headers.encoding, r.headers["x-note"], r.json()) == ("iso-8859-1", "caf\xe9", {})


def test_an_interim_answer_is_skipped(run):
    async def go():
        async def continue_first(reader, writer, server):
            await server.request(reader)
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"final"))
            await reader.read()

        async with Server(continue_first) as server, client(H1Transport()) as c:
            r = await c.post(server.url, content=b"x")
            return r.status_code, r.content

    assert run(go()) == (200, b"final")


@pytest.mark.parametrize("wire,headers,body", [
    # bare LF line ends (an old server, a hand-written proxy)
    (b"HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 2\n\n{}",
     [(b"Content-Type", b"application/json"), (b"Content-Length", b"2")], b"{}"),
    # a header folded onto a second line (obs-fold)
    (b"HTTP/1.1 200 OK\r\nX-Note: a\r\n b\r\nContent-Length: 2\r\n\r\n{}",
     [(b"X-Note", b"a b"), (b"Content-Length", b"2")], b"{}"),
    # a space after a chunk's size
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 \r\n{}\r\n0\r\n\r\n",
     [(b"Transfer-Encoding", b"chunked")], b"{}"),
    # a control character in a header value
    (b"HTTP/1.1 200 OK\r\nX-Note: a\x01b\r\nContent-Length: 2\r\n\r\n{}",
     [(b"X-Note", b"a\x01b"), (b"Content-Length", b"2")], b"{}"),
], ids=["bare-lf", "folded-header", "chunk-size-space", "control-char"])
def test_a_loosely_framed_answer_httpx_and_aiohttp_read_is_read(run, wire, headers, body):
    """Answers a strict parser refuses but httpx's own transport and aiohttp (the
    default transport before h1) read, as they read them: llhttp's strict mode made
    every lead of such a CRM a connection error (found comparing the three transports
    on scripted answers)."""
    async def go():
        async def loose(reader, writer, server):
            while await server.request(reader) is not None:
                writer.write(wire)

        async with Server(loose) as server, client(H1Transport()) as c:
            return [await c.get(server.url) for _ in range(2)]  # the second on the kept parser

    for r in run(go()):
        assert (r.status_code, r.headers.raw, r.content) == (200, headers, body)


def test_a_gzipped_answer_is_decoded(run):
    async def go():
        async def gzipped(reader, writer, server):
            await server.request(reader)
            writer.write(answer(gzip.compress(b'{"total": 2}'), "200 OK", "Content-Encoding: gzip"))
            await reader.read()

        async with Server(gzipped) as server, client(H1Transport()) as c:
            r = await c.get(server.url)
            return r.json(), r.headers["content-encoding"]

    assert run(go()) == ({"total": 2}, "gzip")


# -- a server that closes, fails or stays silent -----------------------------------------------------------------

def test_an_idle_connection_the_server_closed_is_never_handed_out(run):
    async def go():
        async def answer_then_close(reader, writer, server):
            await server.request(reader)
            writer.write(answer())  # no "Connection: close": the client learns it from the socket

        transport = H1Transport()
        async with Server(answer_then_close) as server, client(transport) as c:
            await c.post(server.url, content=b"1")
            async def seen_closed():
                while transport.idle_connections:
                    await asyncio.sleep(0.01)
            # the client saw the close (the bound only stops a failing test hanging)
            await asyncio.wait_for(seen_closed(), 60)
            second = await c.post(server.url, content=b"2")  # a POST: not retried, so it must not meet the dead one
            return server, second.status_code

    server, status = run(go())
    assert (status, server.accepted, len(server.requests)) == (200, 2, 2)


def test_a_post_not_yet_sent_on_a_connection_the_server_just_closed_goes_on_a_new_one(run):
    """The keep-alive race where nothing was sent: the server's end of the
    connection is read in the same loop turn in which a request takes the
    connection from the pool (its closing is seen, its loss not yet). The
    request never went out, so even a POST is sent on a new connection.
    (Taking it with no turn in between writes the POST before the close is
    read: that one may have been received and stays refused, as above.)"""
    async def go(turns):
        async def answer_then_close(reader, writer, server):
            await server.request(reader)
            writer.write(answer())  # no "Connection: close": the client learns it from the socket

        async with Server(answer_then_close) as server, client(H1Transport()) as c:
            await c.post(server.url, content=b"1")
            for _ in range(turns):  # the close is read after one turn: a turn or more lands in the window
                await asyncio.sleep(0)
            second = await c.post(server.url, content=b"2")
            return second.status_code, server.accepted, [body for _, _, body in server.requests]

    for turns in range(1, 5):
        assert run(go(turns)) == (200, 2, [b"1", b"2"]), turns


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_kept_alive_connection_closed_before_answering_is_retried_only_for_an_idempotent_method(run, method):
    """The keep-alive race, made certain: the server reads the second request
    and closes without a byte. It may have acted on it, so a POST (a search,
    a create) is not sent again behind the caller's back."""
    async def go():
        async def drop_the_second(reader, writer, server):
            if server.accepted == 1:
                await server.request(reader)
                writer.write(answer())
                await server.request(reader)
                return  # closed without answering
            await keep_answering(reader, writer, server)

        async with Server(drop_the_second) as server, client(H1Transport()) as c:
            await c.request(method, server.url, content=b"1")
            try:
                outcome = (await c.request(method, server.url, content=b"2")).status_code
            except httpx.HTTPError as exc:
                outcome = type(exc)
            return server, outcome

    server, outcome = run(go())
    sent = [body for _, _, body in server.requests]
    if method == "GET":
        assert (outcome, sent, server.accepted) == (200, [b"1", b"2", b"2"], 2)
    else:
        assert (outcome, sent, server.accepted) == (httpx.RemoteProtocolError, [b"1", b"2"], 1)


@pytest.mark.parametrize("wire", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Le",
])
def test_an_answer_cut_short_is_a_transport_error(run, wire):
    async def go():
        async def cut(reader, writer, server):
            await server.request(reader)
            writer.write(wire)

        async with Server(cut) as server, client(H1Transport()) as c:
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await c.get(server.url)
            return server

    run(go())


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_an_answer_larger_than_the_cap_is_not_read_further_and_the_next_request_goes_on(run, framing):
    """A URL that serves a file, or a runaway answer: read up to the cap, then
    a clear error and the connection closed, never the process's memory."""
    async def go():
        async def big_then_small(reader, writer, server):
            while (got := await server.request(reader)) is not None:
                size = int(got[2])
                if framing == "length":
                    writer.write(answer(b"x" * size))
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    for start in range(0, size, 1000):
                        chunk = b"y" * min(1000, size - start)
                        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    writer.write(b"0\r\n\r\n")
                await writer.drain()

        async with Server(big_then_small) as server, client(H1Transport(max_answer_bytes=64 * 1024)) as c:
            try:
                await c.post(server.url, content=b"200000")
                raise AssertionError("a 200 KB answer was read whole under a 64 KiB cap")
            except httpx.RemoteProtocolError as exc:
                error = str(exc)
            under = await c.post(server.url, content=b"60000")  # under the cap: read whole
            return error, len(under.content), server.accepted

    error, size, accepted = run(go())
    assert "larger than" in error and "not read further" in error
    assert (size, accepted) == (60000, 2)  # the big answer's connection was closed, not reused


def test_the_default_cap_reads_a_large_batch_answer_and_stops_a_runaway_one(run):
    async def go():
        async def sized(reader, writer, server):
            while (got := await server.request(reader)) is not None:
                writer.write(answer(b"z" * int(got[2])))
                await writer.drain()

        async with Server(sized) as server, client(H1Transport()) as c:
            big = await c.post(server.url, content=str(4 * 2**20).encode())  # a large batch answer
            with pytest.raises(httpx.RemoteProtocolError, match="larger than 16 MiB"):
                await c.post(server.url, content=str(17 * 2**20).encode())
            return len(big.content)

    assert run(go()) == 4 * 2**20


def test_a_malformed_answer_is_a_remote_protocol_error(run):
    async def go():
        async def garbage(reader, writer, server):
            await server.request(reader)
            writer.write(b"SMTP ready\r\n\r\n")
            await reader.read()

        async with Server(garbage) as server, client(H1Transport()) as c:
            with pytest.raises(httpx.RemoteProtocolError):
                await c.get(server.url)

    run(go())


def test_no_answer_in_time_is_a_read_timeout(run):
    async def go():
        async def silent(reader, writer, server):
            await server.request(reader)
            await reader.read()

        async with Server(silent) as server, client(H1Transport(), read=0.1) as c:
            with pytest.raises(httpx.ReadTimeout):
                await c.get(server.url)

    run(go())


def test_a_refused_connection_is_a_connect_error(run):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/x"

    async def go():
        async with client(H1Transport(max_connections=1)) as c:
            for _ in range(2):  # the failed connect gave its place back
                with pytest.raises(httpx.ConnectError):
                    await c.get(url)

    run(go())


def test_a_url_that_is_not_http_is_unsupported(run):
    async def go():
        async with client(H1Transport()) as c:
            with pytest.raises(httpx.UnsupportedProtocol):
                await c.get("ftp://127.0.0.1/x")

    run(go())


def test_a_line_break_in_a_header_value_is_refused_not_sent(run):
    async def go():
        async with Server(keep_answering) as server, client(H1Transport()) as c:
            with pytest.raises(httpx.LocalProtocolError):
                await c.get(server.url, headers={"X-Name": "a\r\nX-Injected: 1"})
            return server

    assert run(go()).requests == []


# what RFC 9110 5.5 allows in a field value: no control character but HTAB (h11 lets 0x01-0x08,
# 0x0e-0x1f and DEL through); a name is a token (as h11 checks)
CONTROLS = [chr(c) for c in range(0x20) if c != 0x09] + ["\x7f"]


def test_a_control_character_in_a_header_is_refused_before_anything_is_sent(run):
    async def go():
        refused = []
        async with Server(keep_answering) as server, client(H1Transport()) as c:
            for ch in CONTROLS:
                for headers in ({"X-Name": f"Ann{ch}Lee"}, {f"X-Na{ch}me": "Ann"}):
                    with pytest.raises(httpx.LocalProtocolError) as got:
                        await c.get(server.url, headers=headers)
                    refused.append(str(got.value))
            for name in ("X Name", "X:Name", "X\tName", "X(Name)"):
                with pytest.raises(httpx.LocalProtocolError):
                    await c.get(server.url, headers={name: "Ann"})
            await c.get(f"{server.url}/tab", headers={"X-Name": "Ann\tLee"})  # HTAB is allowed
            return server, refused

    server, refused = run(go())
    assert [(line, h[b"x-name"]) for line, h, _ in server.requests] == [(b"GET /tab HTTP/1.1", b"Ann\tLee")]
    assert server.accepted == 1  # the refused requests did not even open a connection
    assert all("Ann" not in message for message in refused)  # a value can be a secret: never in the error
    assert "'X-Name'" in refused[0]


# -- TLS --------------------------------------------------------------------------------------------------------

def test_https_with_a_certificate_the_client_trusts_and_not_one_it_does_not(run):
    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)

    async def go():
        async with Server(keep_answering, tls=server_context) as server:
            async with client(H1Transport(ssl_context=trusting)) as c:
                got = [(await c.get(f"{server.url}/{i}")).content for i in range(2)]
            accepted = server.accepted
            async with client(H1Transport()) as c:  # certifi's authorities: the test CA is not one
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await c.get(server.url)
            return accepted, got

    assert run(go()) == (1, [b"/0", b"/1"])  # over one kept-alive connection
