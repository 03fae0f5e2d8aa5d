"""A lead's value that cannot go into a request header (a control character
rendered into it by the adaptor) is refused before anything is sent, on every
transport: the lead gets a clear decision record (rejected, 6023, crm.error
"render"), it is not retried, and the circuit breaker does not count it as
the CRM failing. Real HTTP over loopback: the server shows what it received."""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap

import httpx
import pytest

from dupcheck_plugin.adaptor.render import Rendered
from dupcheck_plugin.host import Host
from dupcheck_plugin.http.call import send
from dupcheck_plugin.testing import MemoryStore

from conftest import write_workflow
from loopback import Server, answer

pytestmark = pytest.mark.e2e  # starts a server on loopback

ROW = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}


async def knows_every_phone(reader, writer, server: Server) -> None:
    """A loopback.Server script: a CRM that knows every phone (``{"total": 1}``)."""
    while await server.request(reader) is not None:
        writer.write(answer(b'{"total": 1}', "200 OK", "Content-Type: application/json"))


def workflow(tmp_path, url: str, transport: str):
    (tmp_path / "acme.toml").write_text(textwrap.dedent(f"""\
        name = "acme"
        response_format = "json"
        [fields]
        phone_number = {{ mapped_to = "phone", required = true }}
        first_name = "first_name"
        [request]
        method = "POST"
        url = "{url}"
        [request.headers]
        X-Lead-Name = "{{{{ first_name }}}}"
        [request.body]
        phone = "{{{{ phone }}}}"
        """))
    # failures = 2: two leads refused in a row would open the breaker if they counted as CRM failures
    return write_workflow(tmp_path, [ROW], adaptor="acme",
                          connect={"transport": transport, "breaker": {"failures": 2, "cool_down": 600}})


# every control but HTAB (NUL is refused at intake), on every transport: before the client checked
# with adaptor/headers' rule, aiohttp raised ValueError out of the node for "\x01" or "\n" (6500,
# a traceback) and h11 under httpx let 0x01-0x08, 0x0e-0x1f and DEL go out
CONTROLS = ["\x01", "\n", "\r", "\x0b", "\x0c", "\x1f", "\x7f"]


@pytest.mark.parametrize("transport", ["h1", "aiohttp", "httpx"])
@pytest.mark.parametrize("controls", [CONTROLS[:1], CONTROLS], ids=["one", "all"])
def test_a_lead_value_with_a_control_character_in_a_header_is_refused_before_sending(tmp_path, transport, controls):
    async def go():
        async with Server(knows_every_phone) as crm:
            wf = workflow(tmp_path, f"{crm.url}/search", transport)
            async with Host.open(str(wf), store=MemoryStore()) as host:
                refused = [await host.decide({"phone_number": f"555010010{i}", "first_name": f"Ann{ch}Lee"})
                           for i, ch in enumerate(controls)]
                sent = len(crm.requests)
                known = await host.decide({"phone_number": "5550100109", "first_name": "Ann\tLee"})
            return refused, sent, known, crm

    refused, sent, known, crm = asyncio.run(go())
    assert sent == 0  # the CRM never received a request for the refused leads
    for record in refused:
        assert (record["action"], record["success"], record["code"], record["decided_by"]) == (
            "rejected", False, 6023, "intake"), record
        assert (record["crm"]["error"], record["crm"]["called"], record["crm"]["attempts"]) == ("render", False, 0)
        detail = record["crm"]["error_detail"]
        assert detail.startswith("request not sent: ") and record["detail"] == f"Invalid lead: {detail}", record
        # the one rule (adaptor/headers) names the header, never its value (h11 showed the value)
        assert "'X-Lead-Name'" in detail and "control character" in detail, detail
        assert "Ann" not in json.dumps(record["crm"])
    # not counted as the CRM failing: the breaker (2 failures) is still closed for the next lead
    assert (known["action"], known["crm"]["error"], known["crm"]["attempts"]) == ("duplicate", None, 1)
    assert len(crm.requests) == 1 and crm.requests[0][1][b"x-lead-name"] == b"Ann\tLee"


@pytest.mark.parametrize("transport", ["h1", "aiohttp", "httpx"])
def test_a_lead_value_that_is_not_ascii_in_a_header_is_refused_before_sending(tmp_path, transport):
    """httpx encodes a header value as ASCII: "José" raised UnicodeEncodeError out of the
    node (6500, retryable, a traceback in the log) on every transport."""
    async def go():
        async with Server(knows_every_phone) as crm:
            wf = workflow(tmp_path, f"{crm.url}/search", transport)
            async with Host.open(str(wf), store=MemoryStore()) as host:
                refused = await host.decide({"phone_number": "5550100101", "first_name": "José"})
                sent = len(crm.requests)
                known = await host.decide({"phone_number": "5550100102", "first_name": "Jose"})
            return refused, sent, known

    refused, sent, known = asyncio.run(go())
    assert sent == 0
    assert (refused["action"], refused["code"], refused["decided_by"], refused["retryable"]) == (
        "rejected", 6023, "intake", False), refused
    assert (refused["crm"]["error"], refused["crm"]["called"], refused["crm"]["attempts"]) == ("render", False, 0)
    assert "'X-Lead-Name'" in refused["crm"]["error_detail"] and "ASCII" in refused["crm"]["error_detail"]
    assert (known["action"], known["crm"]["attempts"]) == ("duplicate", 1)


@pytest.mark.parametrize("transport", ["h1", "aiohttp", "httpx"])
def test_a_header_value_goes_without_its_leading_and_trailing_spaces_on_every_transport(tmp_path, transport):
    """RFC 9110 5.5: a field value has no leading or trailing whitespace. Before: h1 and aiohttp sent
    "X-Fixed:   bar " as written, and h11 under httpx refused it: every lead rejected 6023, the
    value in its record's detail. The server's raw head shows what went out."""
    heads: list[bytes] = []

    async def keeps_raw_heads(reader, writer, server: Server) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            heads.append(head)
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            writer.write(answer(b'{"total": 1}', "200 OK", "Content-Type: application/json"))

    async def go():
        async with Server(keeps_raw_heads) as crm:
            wf = workflow(tmp_path, f"{crm.url}/search", transport)
            adaptor = tmp_path / "acme.toml"
            adaptor.write_text(adaptor.read_text().replace('[request.headers]\n', '[request.headers]\nX-Fixed = "  bar "\n'))
            async with Host.open(str(wf), store=MemoryStore()) as host:
                return [await host.decide({"phone_number": f"555010010{i}", "first_name": name})
                        for i, name in enumerate([" Ann Lee\t", "Bob"])]

    records = asyncio.run(go())
    assert [(r["action"], r["crm"]["error"]) for r in records] == [("duplicate", None)] * 2, records
    sent = [[line for line in head.split(b"\r\n") if line.lower().startswith(b"x-")] for head in heads]
    assert [sorted(lines) for lines in sent] == [[b"X-Fixed: bar", b"X-Lead-Name: Ann Lee"],
                                                 [b"X-Fixed: bar", b"X-Lead-Name: Bob"]]


class CountingGate:
    """A connection's limiter as exchange() sees it: counts the slots taken."""

    def __init__(self):
        self.slots = 0

    @contextlib.asynccontextmanager
    async def slot(self):
        self.slots += 1
        yield

    def observe(self, status, headers, it):
        pass


def test_a_hosts_own_httpx_client_gets_the_same_rule_before_a_slot_is_taken():
    """http.call.send with a host's own httpx.AsyncClient (not the connection's lean
    client): httpx's default transport (h11) let 0x01 out, and the refusal of a line
    break came from inside the limiter's slot, spending one of the CRM's quota."""
    async def go():
        async with Server(knows_every_phone) as crm:
            gate = CountingGate()
            async with httpx.AsyncClient() as client:
                outcomes = []
                for name in ("Ann\x01Lee", "Ann\nLee", "Ann\tLee"):
                    req = Rendered("POST", f"{crm.url}/search", {"X-Lead-Name": name}, {}, "json", {"phone": "1"})
                    outcomes.append(await send(client, req, req, response_format="json", gate=gate))
            return outcomes, gate.slots, crm.requests

    (control, line_break, tab), slots, requests = asyncio.run(go())
    for refused in (control, line_break):
        assert (refused.error, refused.attempts, refused.status_code) == ("render", 0, None), refused
        assert refused.error_detail.startswith("request not sent: ") and "'X-Lead-Name'" in refused.error_detail
    assert (tab.error, tab.attempts, tab.status_code) == (None, 1, 200)
    assert slots == 1  # the one request sent took the one slot
    assert len(requests) == 1 and requests[0][1][b"x-lead-name"] == b"Ann\tLee"
