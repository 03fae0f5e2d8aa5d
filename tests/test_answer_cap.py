"""Every transport reads at most ``max_answer_bytes`` of a CRM answer's body (as sent,
and its gzip or deflate body once decoded): a URL that serves a file, a
runaway answer or a small gzip bomb ends in a clear connection error, never
in the process's memory. Real HTTP over loopback: a server that writes the
answer it is told to (``/<name>`` picks one of ANSWERS)."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import httpx
import pytest

from dupcheck_plugin.host import Host
from dupcheck_plugin.http.client import make_client
from dupcheck_plugin.testing import MemoryStore

from conftest import write_workflow
from loopback import Server

pytestmark = pytest.mark.e2e  # starts a server on loopback

TRANSPORTS = ["h1", "aiohttp", "httpx"]
KIB = 1024
SMALL = b'{"total": 1}'


def framed(body: bytes, *extra: bytes) -> bytes:
    return b"\r\n".join([b"HTTP/1.1 200 OK", b"Content-Type: application/json",
                         b"Content-Length: %d" % len(body), *extra]) + b"\r\n\r\n" + body


def chunked(body: bytes, *extra: bytes) -> list[bytes]:
    parts = [b"\r\n".join([b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked", *extra]) + b"\r\n\r\n"]
    for start in range(0, len(body), 64 * KIB):
        chunk = body[start:start + 64 * KIB]
        parts.append(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    return parts + [b"0\r\n\r\n"]


def answering(answers: dict[str, bytes | list[bytes]]):
    """A loopback.Server script: ``GET /<name>`` (or a POST to it) answered with ``answers[name]``
    (bytes, or a list of parts for a chunked answer)."""
    async def script(reader, writer, server: Server) -> None:
        while (got := await server.request(reader)) is not None:
            answer = answers[got[0].split(b" ")[1].lstrip(b"/").decode()]
            for part in (answer if isinstance(answer, list) else [answer]):
                writer.write(part)
                await writer.drain()
    return script


def fetch_each(transport: str, answers: dict, names: list[str], **cap) -> list:
    """Each name's answer through make_client(transport) in turn: its content, or the error raised."""
    async def go():
        async with Server(answering(answers)) as crm:
            client = make_client(transport=transport, **cap)
            out = []
            try:
                for name in names:
                    try:
                        out.append((await client.send_lean(client.build("GET", httpx.URL(f"{crm.url}/{name}"),
                                                                        {}))).content)
                    except httpx.HTTPError as exc:
                        out.append(exc)
            finally:
                await client.aclose()
            return out, crm.accepted

    return asyncio.run(go())


# 32 MiB of one byte: 32 KiB gzipped, under the cap as sent; twice the default cap decoded
BOMB = gzip.compress(b"0" * (32 * 2**20), 9)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_gzip_bomb_is_not_decoded_past_the_default_cap(transport):
    """Before: each transport decoded the 32 MiB whole (httpx's decoder has no cap)."""
    assert len(BOMB) < 64 * KIB
    answers = {"bomb": framed(BOMB, b"Content-Encoding: gzip"), "chunked-bomb": chunked(BOMB, b"Content-Encoding: gzip"),
               "small": framed(gzip.compress(SMALL), b"Content-Encoding: gzip")}
    (bomb, chunked_bomb, small), _ = fetch_each(transport, answers, ["bomb", "chunked-bomb", "small"])
    for error in (bomb, chunked_bomb):
        assert isinstance(error, httpx.RemoteProtocolError), error
        assert str(error) == "the answer is larger than 16 MiB once decoded (gzip); not decoded further"
    assert small == SMALL  # an ordinary gzipped answer is decoded as before


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_deflated_answer_is_decoded_up_to_the_cap(transport):
    """deflate as httpx reads it: zlib's format, or raw deflate; decoded to at most the cap."""
    raw = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw_deflated = raw.compress(SMALL) + raw.flush()
    answers = {"zlib": framed(zlib.compress(SMALL), b"Content-Encoding: deflate"),
               "raw": framed(raw_deflated, b"Content-Encoding: deflate"),
               "twice": framed(zlib.compress(gzip.compress(SMALL)), b"Content-Encoding: gzip, deflate"),
               "big": framed(zlib.compress(b"1" * (256 * KIB)), b"Content-Encoding: deflate"),
               "corrupt": framed(b"not deflate at all", b"Content-Encoding: deflate")}
    got, _ = fetch_each(transport, answers, ["zlib", "raw", "twice", "big", "corrupt"], max_answer_bytes=128 * KIB)
    assert got[:3] == [SMALL, SMALL, SMALL]
    assert isinstance(got[3], httpx.RemoteProtocolError)
    assert str(got[3]) == "the answer is larger than 128 KiB once decoded (deflate); not decoded further"
    # a malformed answer, as whole_response's other errors: a connection error (it was httpx.DecodingError,
    # which no layer read: the lead was rejected 6500, retryable, with a traceback)
    assert isinstance(got[4], httpx.RemoteProtocolError), got[4]
    assert str(got[4]).startswith("the answer's deflate body does not decode: ")


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_an_answer_larger_than_the_configured_cap_is_not_read_further_and_the_next_call_goes_on(transport, framing):
    """Before: aiohttp and httpx had no cap at all, h1 a fixed one."""
    big = b"x" * (200 * KIB)
    answers = {"big": framed(big) if framing == "length" else chunked(big), "under": framed(b"y" * (60 * KIB)),
               "small": framed(SMALL)}
    (error, under, small), accepted = fetch_each(transport, answers, ["big", "under", "small"],
                                                 max_answer_bytes=64 * KIB)
    assert isinstance(error, httpx.RemoteProtocolError), error
    assert str(error) == "the answer is larger than 64 KiB; not read further"
    assert (len(under), small) == (60 * KIB, SMALL)
    assert accepted == 2  # the big answer's connection was closed, not reused; the next two share one


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_the_cap_counts_the_body_alone_on_every_transport(transport, framing):
    """Before: h1 counted the head too, so a body just under the cap was refused on h1 alone."""
    pad = b"X-Pad: " + b"p" * (2 * KIB)  # head + body over the cap, the body alone at it
    at_cap, over_cap = b"a" * (64 * KIB), b"o" * (64 * KIB + 1)
    answers = {"at": framed(at_cap, pad) if framing == "length" else chunked(at_cap, pad),
               "over": framed(over_cap, pad) if framing == "length" else chunked(over_cap, pad)}
    (at, over), _ = fetch_each(transport, answers, ["at", "over"], max_answer_bytes=64 * KIB)
    assert at == at_cap
    assert isinstance(over, httpx.RemoteProtocolError) and str(over) == "the answer is larger than 64 KiB; not read further"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_runaway_head_is_not_read_whole_on_any_transport(transport):
    """The cap counts the body; a head larger than it (header after header) is refused too
    (aiohttp and httpx refuse a header line over 8 or 16 KiB, h1 a head over the cap)."""
    head = [b"X-Pad-%d: %s" % (i, b"h" * 1000) for i in range(200)]  # 200 KiB of headers
    answers = {"runaway": framed(SMALL, *head), "small": framed(SMALL)}
    (error, small), _ = fetch_each(transport, answers, ["runaway", "small"], max_answer_bytes=64 * KIB)
    assert isinstance(error, httpx.RemoteProtocolError), error
    assert small == SMALL


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_the_default_cap_stops_a_runaway_answer_on_every_transport(transport):
    """h1 had this (test_h1_transport); aiohttp and httpx read 17 MiB whole."""
    runaway = b"z" * (17 * 2**20)
    answers = {"runaway": chunked(runaway), "batch": framed(b"b" * (4 * 2**20))}
    (error, batch), _ = fetch_each(transport, answers, ["runaway", "batch"])
    assert isinstance(error, httpx.RemoteProtocolError) and str(error) == (
        "the answer is larger than 16 MiB; not read further"), error
    assert len(batch) == 4 * 2**20


ROW = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}
CORRUPT_GZIP = framed(b"not gzip at all", b"Content-Encoding: gzip")
ROOMY = framed(b'{"total": 1, "pad": "%s"}' % (b"p" * (100 * KIB)))


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("answer,detail", [
    (ROOMY, "RemoteProtocolError: the answer is larger than 64 KiB; not read further"),
    (CORRUPT_GZIP, "RemoteProtocolError: the answer's gzip body does not decode: Error -3 while decompressing data: "
                   "incorrect header check"),
], ids=["too-large", "corrupt-gzip"])
def test_the_lead_s_record_says_connection_for_an_answer_too_large_or_corrupt(tmp_path, transport, answer, detail):
    async def go():
        async with Server(answering({"search": answer})) as crm:
            (tmp_path / "acme.toml").write_text(
                f'name = "acme"\nresponse_format = "json"\n[fields]\nphone_number = {{ mapped_to = "phone", '
                f'required = true }}\n[request]\nmethod = "GET"\nurl = "{crm.url}/search"\n')
            wf = write_workflow(tmp_path, [ROW], adaptor="acme",
                                connect={"transport": transport, "max_answer_bytes": 64 * KIB,
                                         "retry": {"attempts": 2, "backoff": 0.01}})
            async with Host.open(str(wf), store=MemoryStore()) as host:
                return await host.decide({"phone_number": "5550100101"})

    record = asyncio.run(go())
    assert (record["crm"]["error"], record["crm"]["attempts"]) == ("connection", 2), record
    assert record["crm"]["error_detail"] == detail
    assert record["action"] != "duplicate"  # the answer was never read: the rules did not see "total": 1
