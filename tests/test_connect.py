"""The convoso_connect node and the CRM call, piece by piece: auth kinds,
overrides, retries and Retry-After, answer parsing, and the engine's
last-resort handling. The requests are captured by httpx's MockTransport
(these are unit tests of what is sent; the pipeline tests use real HTTP)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from email.utils import formatdate

import httpx
import pytest

from dupcheck_plugin.adaptor.model import RateLimitRule
from dupcheck_plugin.config.problems import ConfigError
from dupcheck_plugin.host import Commit, Host
from dupcheck_plugin.http.call import interpret, retry_after_seconds
from dupcheck_plugin.http.response import parse_body, UnparsableBody
from dupcheck_plugin.store.writer import StoreWriter

from conftest import write_workflow

ROW = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}


def engine_with(tmp_path, connect: dict, environ: dict, answers=None) -> tuple[Host, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    answers = list(answers or [])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if answers:
            return answers.pop(0)
        return httpx.Response(200, json={"total": 0, "results": []})

    wf = write_workflow(tmp_path, [ROW], connect=connect)
    engine = Host.open(str(wf), db=str(tmp_path / "d.db"), environ={"HUBSPOT_TOKEN": "hs-secret", **environ},
                       http_transport=httpx.MockTransport(handler))
    return engine, seen


def evaluate(engine: Host, lead: dict) -> dict:
    """The decision record of one lead, not stored (the host API's steps)."""
    async def go():
        async with engine:
            intake = engine.workflow.admit(lead)
            decision, answer = await engine.workflow.evaluate(intake)
            return engine.workflow.record(intake, decision, answer)

    return asyncio.run(go())


@pytest.mark.parametrize("auth,where,expected", [
    ({"type": "bearer", "secret": "TOK"}, ("header", "authorization"), "Bearer s3cr3t"),
    ({"type": "basic", "secret": "TOK"}, ("header", "authorization"), "Basic " + base64.b64encode(b"s3cr3t").decode()),
    ({"type": "header", "secret": "TOK", "name": "X-Api-Key"}, ("header", "x-api-key"), "s3cr3t"),
    ({"type": "query", "secret": "TOK", "name": "api_key"}, ("query", "api_key"), "s3cr3t"),
])
def test_auth_kinds_send_the_secret_and_record_it_masked(tmp_path, auth, where, expected):
    engine, seen = engine_with(tmp_path, {"auth": auth, "headers": {"X-Source": "dupcheck"}}, {"TOK": "s3cr3t"})
    record = evaluate(engine, {"phone_number": "5550100170"})
    (request,) = seen
    kind, name = where
    sent = request.headers.get(name) if kind == "header" else request.url.params.get(name)
    assert sent == expected
    assert request.headers["x-source"] == "dupcheck"
    assert "s3cr3t" not in json.dumps(record) and base64.b64encode(b"s3cr3t").decode() not in json.dumps(record)
    assert "****" in json.dumps(record["request"])


def test_the_record_keeps_the_answer_body_with_the_connections_secrets_masked(tmp_path):
    """A CRM that echoes what it was sent (an error page, a paging link) must not put a secret in the store."""
    echo = {"total": 1, "results": [{"properties": {"firstname": "Zoë"}}],
            "debug": {"auth": "Bearer s3cr3t-token", "hubspot": "hs-secret-value"},
            "paging": {"next": {"link": "https://crm.example/next?hapikey=hs-secret-value&after=1"}}}
    engine, _ = engine_with(tmp_path, {"auth": {"type": "bearer", "secret": "TOK"}},
                            {"TOK": "s3cr3t-token", "HUBSPOT_TOKEN": "hs-secret-value"},
                            [httpx.Response(200, json=echo)])
    record = evaluate(engine, {"phone_number": "5550100171"})
    response = record["response"]
    assert response["truncated"] is False and response["bytes"] == len(response["body"].encode())
    body = json.loads(response["body"])
    assert body["results"] == echo["results"]  # what the rules read, as they read it
    assert body["debug"]["auth"] == "Bearer ****" and "****" in body["paging"]["next"]["link"]
    assert "s3cr3t-token" not in json.dumps(record) and "hs-secret-value" not in json.dumps(record)


def test_a_large_answer_body_is_cut_at_64_kib_and_says_so(tmp_path):
    big = {"total": 0, "results": [], "padding": "é" * 50_000}  # 100 KB of UTF-8, 2 bytes a character
    engine, _ = engine_with(tmp_path, {}, {}, [httpx.Response(200, json=big)])
    record = evaluate(engine, {"phone_number": "5550100172"})
    response = record["response"]
    assert response["truncated"] is True and response["bytes"] > 100_000
    assert len(response["body"].encode()) <= 64 * 1024 and response["body"].startswith('{"total":0')
    assert record["action"] == "created"  # the rules read the whole answer: only the record's copy is cut


def test_a_missing_auth_secret_is_a_config_error(tmp_path):
    wf = write_workflow(tmp_path, [ROW], connect={"auth": {"type": "bearer", "secret": "NOT_SET_ANYWHERE"}})
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        Host.open(str(wf), db=str(tmp_path / "d.db"), environ={"HUBSPOT_TOKEN": "x"})


def test_connection_overrides_method_body_format_and_url(tmp_path):
    engine, seen = engine_with(tmp_path, {"method": "PUT", "post_data_type": "form", "url": "https://sandbox.example.com:8443"}, {})
    evaluate(engine, {"phone_number": "5550100170"})
    (request,) = seen
    assert request.method == "PUT"
    assert str(request.url).startswith("https://sandbox.example.com:8443/crm/v3/objects/contacts/search")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"


def test_response_key_hands_down_only_that_part(tmp_path):
    answer = httpx.Response(200, json={"envelope": {"total": 2}, "total": 0})
    engine, _ = engine_with(tmp_path, {"response_key": "envelope"}, {}, [answer])
    record = evaluate(engine, {"phone_number": "5550100170"})
    assert record["action"] == "duplicate"  # total read from the envelope, not the top level


def test_retry_after_is_honoured_then_the_answer_decides(tmp_path):
    answers = [httpx.Response(429, headers={"Retry-After": "0.05"}, json={"errorType": "RATE_LIMIT"}),
               httpx.Response(200, json={"total": 1, "results": [{"id": "5"}]})]
    engine, seen = engine_with(tmp_path, {"retry": {"attempts": 3, "backoff": 0}}, {}, answers)
    t0 = time.perf_counter()
    record = evaluate(engine, {"phone_number": "5550100170"})
    assert time.perf_counter() - t0 >= 0.05
    assert len(seen) == 2 and record["crm"]["attempts"] == 2 and record["action"] == "duplicate"
    assert record["crm_record_id"] == "5"


def test_a_retry_after_longer_than_max_wait_gives_up_at_once(tmp_path):
    answers = [httpx.Response(429, headers={"Retry-After": "3600"}, json={})] * 3
    engine, seen = engine_with(tmp_path, {"retry": {"attempts": 3, "max_wait": 1}}, {}, answers)
    record = evaluate(engine, {"phone_number": "5550100170"})
    assert len(seen) == 1 and record["crm"]["error"] == "rate_limited"
    assert record["crm"]["attempts"] == 1  # one request was made, not retry.attempts


def test_retry_after_as_http_date_and_garbage():
    future = formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_seconds(httpx.Headers({"Retry-After": future}), "Retry-After") <= 30
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"}), "Retry-After") is None
    assert retry_after_seconds(httpx.Headers({}), "Retry-After") is None


def test_interpret_classifies_answers():
    limits = (RateLimitRule(status=403, key="0.errorCode", value="REQUEST_LIMIT_EXCEEDED"),)
    assert interpret(403, {}, b'[{"errorCode": "REQUEST_LIMIT_EXCEEDED"}]', "json", limits).error == "rate_limited"
    assert interpret(403, {}, b'[{"errorCode": "INSUFFICIENT_ACCESS"}]', "json", limits).error is None
    assert interpret(502, {}, b"<html>bad gateway</html>", "json").error == "http_status"
    assert interpret(200, {}, b"{not json", "json").error == "unparsable"
    four = interpret(404, {}, b"not json at all", "json")
    assert four.error is None and four.body == "not json at all"  # a 4xx body stays readable text
    assert interpret(204, {}, b"", "json").body is None


def test_xml_and_text_answers_parse():
    xml = b'<r xmlns="urn:x"><total>2</total><c id="1">a</c><c id="2"/></r>'
    assert parse_body(xml, "xml", 200) == {"total": "2", "c": [{"@id": "1", "#text": "a"}, {"@id": "2"}]}
    with pytest.raises(UnparsableBody):
        parse_body(b"<r><unclosed></r>", "xml", 200)
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(UnparsableBody):  # entity declarations are refused (billion laughs)
        parse_body(bomb, "xml", 200)
    assert parse_body("Zoë".encode("latin-1"), "text", 200) == "Zoë"
    assert parse_body(b"found", "text", 200) == "found"


def test_a_node_that_raises_still_gives_the_lead_one_retryable_decision(tmp_path):
    engine, _ = engine_with(tmp_path, {}, {})

    async def broken(lead):
        raise RuntimeError("plugin bug")

    engine.nodes["crm"].run = broken
    record = evaluate(engine, {"phone_number": "5550100170"})
    assert (record["action"], record["code"], record["retryable"]) == ("rejected", 6500, True)
    assert record["text"] == "Internal error, retry later" and "plugin bug" in record["detail"]


def test_a_workflow_without_a_duplicate_check_creates_with_defaults(tmp_path):
    wf = tmp_path / "only_connect.toml"
    wf.write_text('[[nodes]]\nid = "crm"\ntype = "convoso_connect"\nconfig = { adaptor = "hubspot_contacts_search" }\n')
    calls = []
    engine = Host.open(str(wf), db=str(tmp_path / "d.db"), environ={"HUBSPOT_TOKEN": "x"},
                       http_transport=httpx.MockTransport(
                           lambda r: calls.append(r) or httpx.Response(200, json={"total": 5})))
    record = evaluate(engine, {"phone_number": "5550100170"})
    assert len(calls) == 1  # the connect node is a sink: it runs
    assert (record["action"], record["status"], record["checked"]) == ("created", "NEW", False)


class FlakyStore:
    """Refuses any batch that holds a record marked bad."""

    def __init__(self):
        self.stored = []

    def apply(self, commits):
        if any(c.record.get("bad") for c in commits):
            raise ValueError("bad record")
        self.stored += [c.record for c in commits]
        return [str(c.record["n"]) for c in commits]

    def close(self):
        pass


def test_writer_isolates_a_bad_record_from_its_batch():
    store = FlakyStore()
    writer = StoreWriter(store)

    async def go():
        return await asyncio.gather(*(writer.submit(Commit({"n": i, "bad": i == 3})) for i in range(8)),
                                    return_exceptions=True)

    results = asyncio.run(go())
    writer.close()
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == ["0", "1", "2", "4", "5", "6", "7"]
    assert sorted(r["n"] for r in store.stored) == [0, 1, 2, 4, 5, 6, 7]


def test_a_lead_that_found_no_free_connection_says_so_and_is_not_counted_against_the_crm(crm_sim, tmp_path):
    """One connection, two leads, a CRM that holds every call: the first lead's call times out at
    the CRM, the second's deadline passes while it waits for that connection. Before, both read
    "no answer within 0.5s" and both counted as CRM failures: two, and the breaker (2 failures)
    opened against the CRM for a wait in dupcheck's own pool."""
    wf = write_workflow(tmp_path, [{"key": "total", "match": "gt", "value": 0, "create_lead": False,
                                    "add_to_dnc": False, "success": False}],
                        connect={"url": crm_sim.url, "timeout": 0.5, "max_connections": 1, "retry": {"attempts": 1},
                                 "breaker": {"failures": 2, "cool_down": 600}})

    async def two_leads():
        async with Host.open(wf, db=tmp_path / "d.db", environ={"HUBSPOT_TOKEN": "t"}) as host:
            # answered: the breaker, which lets one call out until the CRM has answered once, lets both go
            assert (await host.decide({"phone_number": "5550109999"}))["crm"]["error"] is None
            crm_sim.set_knobs(hold=True)
            records = await asyncio.gather(*(host.decide({"phone_number": f"555010{i:04d}"}) for i in range(2)))
            return records, host.health()["crm"]["breaker"]

    try:
        records, breaker = asyncio.run(two_leads())
    finally:
        crm_sim.set_knobs(hold=False)
    sent, waited = sorted((r["crm"] for r in records), key=lambda crm: "not sent" in (crm["error_detail"] or ""))
    assert sent["error"] == "timeout" and sent["error_detail"] == "no answer within 0.5s", sent
    assert waited["error"] == "timeout" and waited["error_detail"].startswith(
        "not sent: no connection was free within 0.5s (all 1 of this node's max_connections were in use)"), waited
    assert breaker["state"] == "closed" and breaker["times_opened"] == 0, breaker


def test_a_pool_wait_cut_earlier_in_the_task_does_not_label_a_later_crm_timeout(crm_sim, tmp_path):
    """A task that survived a cut pool wait (a cancel it caught) keeps the mark; its next call,
    which the CRM leaves unanswered, is a CRM timeout and counts for the breaker."""
    from dupcheck_plugin.http.deadlines import POOL_WAIT_CUT

    wf = write_workflow(tmp_path, [{"key": "total", "match": "gt", "value": 0, "create_lead": False,
                                    "add_to_dnc": False, "success": False}],
                        connect={"url": crm_sim.url, "timeout": 0.3, "retry": {"attempts": 1}})

    async def one_lead():
        async with Host.open(wf, db=tmp_path / "d.db", environ={"HUBSPOT_TOKEN": "t"}) as host:
            assert (await host.decide({"phone_number": "5550109998"}))["crm"]["error"] is None
            crm_sim.set_knobs(hold=True)
            POOL_WAIT_CUT.set(64)  # as a caught cancel of an earlier wait left it
            return await host.decide({"phone_number": "5550100001"})

    try:
        record = asyncio.run(one_lead())
    finally:
        crm_sim.set_knobs(hold=False)
    assert record["crm"]["error"] == "timeout" and record["crm"]["error_detail"] == "no answer within 0.3s", record
