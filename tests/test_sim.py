"""The CRM simulator: contact book, vendors' answers, fault knobs, CLI, HubSpot schema conformance.

Everything goes over real HTTP on loopback; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from dupcheck_plugin.phone import to_e164
from dupcheck_plugin.sim import ContactBook, Knobs, SimulatorThread, run_simulator
from dupcheck_plugin.sim.vendors import VENDOR_MODULES, all_vendors

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "examples" / "contacts.csv"
JSON_FILE = ROOT / "examples" / "contacts.json"
HUBSPOT_SPEC = Path(__file__).resolve().parent / "vendor_specs" / "hubspot" / "contacts.v3.json"
SEARCH = "/crm/v3/objects/contacts/search"


def eq(prop: str, value: str) -> dict:
    return {"propertyName": prop, "operator": "EQ", "value": value}


def hs_body(*groups: list[dict], **extra) -> dict:
    return {"filterGroups": [{"filters": g} for g in groups], **extra}


def ids(answer: dict) -> list[str]:
    return [r["id"] for r in answer["results"]]


@pytest.fixture
def sim(crm_sim):  # conftest: the shared simulator, knobs and counters reset
    return crm_sim


@pytest.fixture
def http(sim):
    with httpx.Client(base_url=sim.url, timeout=5, trust_env=False) as client:
        yield client


def search(http: httpx.Client, body: dict, **kw) -> httpx.Response:
    return http.post(SEARCH, json=body, **kw)


# -- contact book --------------------------------------------------------------
def test_sample_phones_are_possible_numbers():
    book = ContactBook.load(CSV)
    assert len(book) >= 12
    for c in book:
        for value in (c.phone, c.get("mobilephone")):
            if value:
                assert to_e164(value).startswith("+1555010")
    stages = {c.get("lifecyclestage") for c in book}
    assert {"customer", "opportunity", "lead"} <= stages
    assert [c.id for c in book if c.dnc] == ["106"]
    assert any(not c.phone and c.get("mobilephone") for c in book)


def test_csv_and_json_samples_hold_the_same_people():
    a, b = ContactBook.load(CSV), ContactBook.load(JSON_FILE)
    assert [c.as_dict() for c in a] == [c.as_dict() for c in b]


def test_book_find_and_by_property(tmp_path):
    book = ContactBook.load(CSV)
    assert [c.id for c in book.find(phone="+15550100002")] == ["102"]  # stored "(555) 010-0002"
    assert [c.id for c in book.find(phone="5550100004")] == ["104"]  # stored "555.010.0004"
    assert [c.id for c in book.find(phone="(555) 010-0105")] == ["105"]  # mobile only
    assert [c.id for c in book.find(email="GRACE.lee@example.COM")] == ["107"]
    # union, de-duplicated, file order
    assert [c.id for c in book.find(phone="+15550100106", email="ava.stone@example.com")] == ["101", "106"]
    assert [c.id for c in book.find(phone="+15550100101", email="ava.stone@example.com")] == ["101"]
    assert book.find(phone="+15550100199", email="nobody@example.com") == []
    assert [c.id for c in book.by_property("lifecyclestage", "CUSTOMER")] == ["101"]
    assert [c.id for c in book.by_property("mobilephone", "5550100118")] == ["108"]


def test_book_json_shapes_generated_ids_and_dnc(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"contacts": [
        {"phone": "+15550100150", "dnc": "yes"}, {"id": "1", "email": "a@b.c", "dnc": 1}, {"phone": "junk"}]}))
    book = ContactBook.load(f)
    assert [c.id for c in book] == ["2", "1", "3"]
    assert [c.dnc for c in book] == [True, True, False]
    assert [c.id for c in book.find(phone="junk")] == ["3"]  # unparseable phones stay findable as typed


@pytest.mark.parametrize("name, text, where", [
    ("bad.csv", "id,phone,email\n1,+15550100101,a@b.c\n2,+15550100102\n", "bad.csv:3"),
    ("dup.csv", "id,phone\n1,+15550100101\n1,+15550100102\n", "dup.csv:3"),
    ("head.csv", "id,phone,phone\n1,2,3\n", "head.csv:1"),
    ("bad.json", '[{"id": "1"},\n {"id": }]', "bad.json:2"),
    ("shape.json", '{"people": []}', "shape.json"),
    ("nested.json", '[{"id": "1", "phone": {"x": 1}}]', "contacts[0]"),
])
def test_bad_files_name_file_and_line(tmp_path, name, text, where):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(ValueError, match=where.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
        ContactBook.load(f)


def test_missing_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="nope.csv"):
        ContactBook.load(tmp_path / "nope.csv")


# -- HubSpot ------------------------------------------------------------------------
def test_hubspot_finds_by_every_phone_form_and_email(http):
    # the adaptor's own body: E.164, national digits, mobile E.164, email; groups ORed
    def adaptor_body(phone: str, email: str = "") -> dict:
        groups = [[eq("phone", to_e164(phone))], [eq("phone", to_e164(phone)[2:])], [eq("mobilephone", to_e164(phone))]]
        if email:
            groups.append([eq("email", email)])
        return hs_body(*groups, limit=10, after="0", sorts=[], properties=["firstname", "lifecyclestage", "mobilephone"])

    r = search(http, adaptor_body("5550100002"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    answer = r.json()
    assert answer["total"] == 1 and ids(answer) == ["102"]
    props = answer["results"][0]["properties"]
    assert props["lifecyclestage"] == "opportunity" and props["phone"] == "(555) 010-0002"
    assert props["hs_object_id"] == "102" and "createdate" in props and answer["results"][0]["archived"] is False
    assert "paging" not in answer
    assert ids(search(http, hs_body([eq("phone", "5550100004")])).json()) == ["104"]  # national digits
    assert ids(search(http, hs_body([eq("phone", "+15550100003")])).json()) == ["103"]  # stored E.164
    assert ids(search(http, adaptor_body("+1 (555) 010-0105")).json()) == ["105"]  # mobilephone
    assert ids(search(http, adaptor_body("+15550100199", "grace.LEE@EXAMPLE.com")).json()) == ["107"]
    miss = search(http, adaptor_body("+15550100199", "nobody@example.com")).json()
    assert miss == {"total": 0, "results": []}


def test_hubspot_and_or_semantics_and_operators(http):
    def found(*groups, **extra):
        return ids(search(http, hs_body(*groups, **extra)).json())

    # filters in a group are ANDed, groups ORed
    assert found([eq("phone", "+15550100101"), eq("lifecyclestage", "customer")]) == ["101"]
    assert found([eq("phone", "+15550100101"), eq("lifecyclestage", "lead")]) == []
    assert found([eq("phone", "+15550100101")], [eq("email", "dev.patel@example.com")]) == ["101", "104"]
    assert found([{"propertyName": "lifecyclestage", "operator": "IN", "values": ["customer", "opportunity"]}]) == ["101", "102"]
    assert found([eq("lifecyclestage", "lead"), {"propertyName": "phone", "operator": "NOT_HAS_PROPERTY"}]) == ["105"]
    assert found([{"propertyName": "email", "operator": "NOT_HAS_PROPERTY"}]) == ["108"]
    assert "108" not in found([{"propertyName": "email", "operator": "HAS_PROPERTY"}])
    assert found([{"propertyName": "lifecyclestage", "operator": "NEQ", "value": "lead"},
                  {"propertyName": "firstname", "operator": "CONTAINS_TOKEN", "value": "a*"}]) == ["101"]
    assert found([{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "reyes"}]) == ["110"]
    assert found(query="Kim") == ["111"]


def test_hubspot_paging_and_validation(http):
    page = search(http, hs_body([eq("lifecyclestage", "lead")], limit=2)).json()
    assert page["total"] == 6 and len(page["results"]) == 2 and page["paging"]["next"]["after"] == "2"
    nxt = search(http, hs_body([eq("lifecyclestage", "lead")], limit=2, after="2")).json()
    assert not set(ids(page)) & set(ids(nxt))
    for bad in (http.post(SEARCH, content=b"{not json", headers={"content-type": "application/json"}),
                search(http, {"limit": 10}),
                search(http, hs_body([{"propertyName": "phone", "operator": "ALMOST", "value": "1"}]))):
        assert bad.status_code == 400
        assert bad.json()["category"] == "VALIDATION_ERROR" and bad.json()["status"] == "error"


# -- generic --------------------------------------------------------------------------
def test_generic_json_and_form_lookups(http):
    r = http.post("/api/leads/lookup", json={"phone": "+15550100106", "email": "", "name": {"first": "F"}})
    answer = r.json()
    assert r.status_code == 200 and answer["found"] is True and answer["count"] == 1
    c = answer["contacts"][0]
    assert c["id"] == "106" and c["dnc"] is True and c["email"] == "frank.miller@example.com"
    both = http.post("/api/leads/lookup", json={"phone": "+15550100101", "email": "jon.reyes@example.com"}).json()
    assert [x["id"] for x in both["contacts"]] == ["101", "110"] and both["contacts"][0]["dnc"] is False
    form = http.post("/api/leads/lookup-form", data={"api_key": "k", "phone": "5550100002", "email": "",
                                                     "email_address": "IVY.CHEN@example.com", "source": "0"}).json()
    assert form["count"] == 2 and [x["id"] for x in form["contacts"]] == ["102", "109"]
    assert http.post("/api/leads/lookup-form", data={"phone": "5550100199"}).json() == {"found": False, "count": 0, "contacts": []}
    assert http.post("/api/leads/lookup", json={"phone": "", "email": ""}).status_code == 400
    assert http.post("/api/leads/lookup", content=b"[1]", headers={"content-type": "application/json"}).status_code == 400


def test_unknown_path_and_method(http):
    r = http.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert http.get(SEARCH).status_code == 405


def test_vendor_registry():
    assert VENDOR_MODULES[:2] == ("hubspot", "generic")
    vendors = all_vendors()
    assert [v.name for v in vendors][:2] == ["hubspot", "generic"]
    for v in vendors:
        assert v.routes and v.over_limit().status >= 400 and v.unauthorized().status == 401


# -- knobs ----------------------------------------------------------------------------
def test_error_rate_gives_5xx_json(sim, http):
    sim.set_knobs(error_rate=1)
    statuses = set()
    for _ in range(12):
        r = search(http, hs_body([eq("phone", "+15550100101")]))
        assert r.headers["content-type"].startswith("application/json") and r.json()
        statuses.add(r.status_code)
    assert statuses <= {500, 502, 503} and len(statuses) > 1
    assert http.post("/api/leads/lookup", json={"phone": "+15550100101"}).status_code in (500, 502, 503)


def test_rate_limit_gives_the_vendors_429_with_retry_after(sim, http):
    sim.set_knobs(rate_limit_rate=1)
    r = search(http, hs_body([eq("phone", "+15550100101")]))
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    body = r.json()
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "SECONDLY" and body["status"] == "error"
    sim.set_knobs(retry_after="0.25")
    r = http.post("/api/leads/lookup", json={"phone": "+15550100101"})
    assert r.status_code == 429 and r.json() == {"error": "rate_limited"} and r.headers["Retry-After"] == "0.25"


def test_latency_is_applied(sim, http):
    search(http, hs_body([eq("phone", "+15550100101")]))  # warm the connection
    sim.set_knobs(latency_ms=120, jitter_ms=30)
    t = time.perf_counter()
    r = search(http, hs_body([eq("phone", "+15550100101")]))
    assert r.status_code == 200 and time.perf_counter() - t >= 0.120


def test_timeout_rate_hangs(sim, http):
    sim.set_knobs(timeout_rate=1, hang_ms=3000)
    with pytest.raises(httpx.ReadTimeout):
        search(http, hs_body([eq("phone", "+15550100101")]), timeout=0.2)
    assert sim.stats()["faults"]["hang"] == 1


def test_auth_token_enforced(sim, http):
    sim.set_knobs(auth="s3cret")
    body = hs_body([eq("phone", "+15550100101")])
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = search(http, body, headers=headers)
        assert r.status_code == 401 and r.json()["category"] == "INVALID_AUTHENTICATION"
    assert search(http, body, headers={"Authorization": "Bearer s3cret"}).json()["total"] == 1
    assert http.post("/api/leads/lookup", json={"phone": "+15550100101"}).json() == {"error": "unauthorized"}
    form = http.post("/api/leads/lookup-form", data={"api_key": "s3cret", "phone": "5550100101"})
    assert form.status_code == 200 and form.json()["found"] is True


def test_seed_reproduces_faults(sim, http):
    def statuses():
        sim.set_knobs(error_rate=0.5, seed=7)  # setting the seed restarts the sequence
        return [search(http, hs_body([eq("phone", "+15550100101")])).status_code for _ in range(16)]

    first = statuses()
    assert first == statuses() and 200 in first and set(first) - {200}


def test_stats_reset_knobs_and_tcp_nodelay(sim, http):
    search(http, hs_body([eq("phone", "+15550100101")]))
    search(http, hs_body([eq("phone", "+15550100101")]))
    http.post("/api/leads/lookup", json={})
    http.get("/nowhere")
    stats = http.get("/_sim/stats").json()
    assert stats["requests"] == 4 and stats["contacts"] == 12
    assert stats["by_route"] == {"hubspot contacts search": 2, "generic lookup (json)": 1, "unmatched": 1}
    assert stats["by_status"] == {"200": 2, "400": 1, "404": 1}
    assert stats["tcp_nodelay"] is True  # measured on this request's own accepted socket
    assert sim.stats()["requests"] == 4
    assert http.post("/_sim/reset").json()["requests"] == 0
    knobs = http.post("/_sim/knobs", json={"latency_ms": "5", "rate_limit_rate": 0.5}).json()
    assert knobs["latency_ms"] == 5.0 and knobs["rate_limit_rate"] == 0.5
    assert http.post("/_sim/knobs", json={"error_rate": 2}).status_code == 400
    assert http.post("/_sim/knobs", json={"bogus": 1}).status_code == 400
    assert sim.stats()["knobs"]["latency_ms"] == 5.0


def test_knobs_validate():
    with pytest.raises(ValueError):
        Knobs(error_rate=1.5)
    with pytest.raises(ValueError):
        Knobs(retry_after="soon")
    assert Knobs().replace(seed="3", auth="").as_dict()["seed"] == 3


def test_run_simulator_async_with_aiohttp_transport():
    from dupcheck_plugin.http.transport import AiohttpTransport

    async def main():
        async with run_simulator(CSV, knobs=Knobs(latency_ms=1)) as sim:
            assert sim.url.startswith("http://127.0.0.1:")
            async with httpx.AsyncClient(transport=AiohttpTransport(), base_url=sim.url) as client:
                rs = await asyncio.gather(*(client.post(SEARCH, json=hs_body([eq("email", "kim.sato@example.com")]))
                                            for _ in range(20)))
            assert {r.json()["total"] for r in rs} == {1}
            sim.set_knobs(error_rate=1)
            assert sim.stats()["requests"] == 20 and sim.knobs.error_rate == 1

    asyncio.run(main())


def test_thread_start_errors_surface(sim, tmp_path):
    port = int(sim.url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        SimulatorThread(CSV, port=port).start()
    with pytest.raises(ValueError, match="missing.csv"):
        SimulatorThread(tmp_path / "missing.csv")


# -- HubSpot schema conformance -------------------------------------------------------------
def _openapi_to_jsonschema(node):
    """OpenAPI 3.0 ``nullable: true`` is JSON Schema's ``type: [T, "null"]``."""
    if isinstance(node, dict):
        out = {k: _openapi_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable") and "type" in node:
            out["type"] = [node["type"], "null"]
        return out
    if isinstance(node, list):
        return [_openapi_to_jsonschema(v) for v in node]
    return node


@pytest.fixture(scope="module")
def hubspot_validator():
    if not HUBSPOT_SPEC.is_file():
        pytest.skip("HubSpot spec not available")
    spec = _openapi_to_jsonschema(json.loads(HUBSPOT_SPEC.read_text()))
    registry = Registry().with_resource("urn:hubspot", Resource.from_contents(spec, default_specification=DRAFT202012))

    def validate(instance, schema_name):
        schema = {"$ref": f"urn:hubspot#/components/schemas/{schema_name}"}
        jsonschema.Draft202012Validator(schema, registry=registry,
                                        format_checker=jsonschema.FormatChecker()).validate(instance)
    return validate


def test_hubspot_answers_match_the_published_schemas(sim, http, hubspot_validator):
    spec = json.loads(HUBSPOT_SPEC.read_text())
    ok_schema = spec["paths"][SEARCH]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    ok_name = ok_schema.rsplit("/", 1)[1]  # CollectionResponseWithTotalSimplePublicObject
    paged = search(http, hs_body([eq("lifecyclestage", "lead")], limit=2,
                                 properties=["firstname", "mobilephone", "dnc", "nonexistent"])).json()
    assert "paging" in paged
    hubspot_validator(paged, ok_name)
    hubspot_validator(search(http, hs_body([eq("phone", "+15550100199")])).json(), ok_name)
    hubspot_validator(search(http, {"limit": 1}).json(), "Error")
    sim.set_knobs(rate_limit_rate=1)
    hubspot_validator(search(http, hs_body([eq("phone", "+15550100101")])).json(), "Error")
    sim.set_knobs(rate_limit_rate=0, auth="t")
    hubspot_validator(search(http, hs_body([eq("phone", "+15550100101")])).json(), "Error")
    with pytest.raises(jsonschema.ValidationError):  # the validator does bite
        hubspot_validator({"total": "1", "results": []}, ok_name)


# -- CLI ----------------------------------------------------------------------------------------
def _cli(*args):
    return [sys.executable, "-m", "dupcheck_plugin.cli.main", "crm-sim", *args]


@pytest.fixture(scope="module")
def cli_server():
    proc = subprocess.Popen(_cli("--port", "0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_cli_serves_and_exits_on_sigterm(cli_server):
    proc, url = cli_server
    r = httpx.post(url + SEARCH, json=hs_body([eq("phone", "+15550100002")]), trust_env=False)
    assert r.status_code == 200 and ids(r.json()) == ["102"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0


def test_cli_bad_contacts_file_exits_1(tmp_path):
    bad = tmp_path / "c.csv"
    bad.write_text("id,phone\n1,2,3\n")
    for path in (bad, tmp_path / "missing.csv"):
        done = subprocess.run(_cli("--port", "0", "--contacts", str(path)), capture_output=True, text=True, timeout=10)
        assert done.returncode == 1 and path.name in done.stderr and "Traceback" not in done.stderr
        assert done.stdout == ""


# -- many at once (the rate is printed; speed goals are benchmarks, see benchmarks/) ----------------------
def test_a_crm_sim_process_answers_2000_concurrent_searches(capsys):
    """2,000 HubSpot searches, 32 in flight, httpx + aiohttp transport, against a `crm-sim` process:
    every one answered 200 with the contact, every one counted."""
    from dupcheck_plugin.http.transport import AiohttpTransport

    proc = subprocess.Popen(_cli("--port", "0", "--limits", "off"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        body = hs_body([eq("phone", "+15550100002")], [eq("phone", "5550100002")], [eq("mobilephone", "+15550100002")],
                       [eq("email", "ben.ortiz@example.com")], limit=10, after="0", sorts=[],
                       properties=["firstname", "lastname", "phone", "mobilephone", "email", "lifecyclestage"])

        async def main() -> float:
            async with httpx.AsyncClient(transport=AiohttpTransport(max_connections=32), base_url=url) as client:
                await client.post(SEARCH, json=body)
                sem = asyncio.Semaphore(32)

                async def one():
                    async with sem:
                        r = await client.post(SEARCH, json=body)
                        return r.status_code, r.json()["total"]

                t = time.perf_counter()
                answers = await asyncio.gather(*(one() for _ in range(2000)))
                rate = 2000 / (time.perf_counter() - t)
                stats = (await client.get("/_sim/stats")).json()
                return rate, answers, stats

        rate, answers, stats = asyncio.run(main())
        assert answers == [(200, 1)] * 2000
        assert stats["requests"] == 2001
        with capsys.disabled():
            print(f"\ncrm-sim throughput: {rate:,.0f} HubSpot searches/s (2,000 requests, 32 in flight)")
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_the_stats_never_show_the_token():
    with SimulatorThread(CSV, knobs=Knobs(auth="sim-secret-token-42")) as sim:
        text = httpx.get(f"{sim.url}/_sim/stats").text
    assert "sim-secret-token-42" not in text and '"auth":"***"' in text.replace(" ", "")


def test_busiest_second_is_a_sliding_window():
    from dupcheck_plugin.sim.server import busiest_second

    assert busiest_second([]) == 0
    assert busiest_second([0.0, 1.0, 2.0]) == 1  # one second apart: never two in one second
    assert busiest_second([0.0, 0.6, 0.9, 1.2, 1.5, 3.0]) == 4  # 0.6 .. 1.5, across a calendar second
