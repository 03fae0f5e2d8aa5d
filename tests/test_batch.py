"""Batching: many leads per CRM request, and the same decision for every lead as single calls.

The differential test runs the same 2,000 leads -- hits, misses, several
records for one phone, phones written differently in the CRM, a contact
holding one lead's phone and another's mobile, matches by email -- through
single calls and through batches, for each batching adaptor, and compares
every lead's decision.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest

from conftest import write_workflow
from dupcheck_plugin.adaptor.batch import BatchError, BatchShapeError
from dupcheck_plugin.config.adaptors import compile_adaptor, load_adaptor
from dupcheck_plugin.engine.runner import Host, aiter_items
from dupcheck_plugin.plugins import default_registry
from dupcheck_plugin.resources import shipped_dir
from dupcheck_plugin.sim import SimulatorThread

ENV = {"HUBSPOT_TOKEN": "hs", "SALESFORCE_TOKEN": "sf", "ZOHO_TOKEN": "zo"}
FORMS = ("+1555{n}", "(555) {a}-{b}", "555{n}", "555.{a}.{b}", "1555{n}")
STAGES = ("lead", "customer", "opportunity", "subscriber", "salesqualifiedlead")


def _phone(i: int, form: int) -> str:
    n = f"{3000000 + i:07d}"
    return FORMS[form % len(FORMS)].format(n=n, a=n[:3], b=n[3:])


def write_book(path: Path) -> Path:
    rows = ["id,phone,email,firstname,lastname,lifecyclestage,mobilephone,dnc"]
    cid = 1000
    for i in range(300):  # leads 0-299 are known, stored in five written forms
        cid += 1
        rows.append(f"{cid},{_phone(i, i)},c{i}@example.com,F{i},L,{STAGES[i % 5]},,false")
    for i in range(0, 100, 2):  # a second record for the same phone, written another way
        cid += 1
        rows.append(f"{cid},{_phone(i, i + 1)},,S{i},L,{STAGES[(i + 2) % 5]},,false")
    for i in range(100, 150):  # one contact, lead i's phone and lead i+100's mobile
        cid += 1
        rows.append(f"{cid},{_phone(i, 0)},,M{i},L,lead,{_phone(i + 100, 1)},false")
    for i in range(400, 450):  # known by email only
        cid += 1
        rows.append(f"{cid},,e{i}@example.com,E{i},L,customer,,false")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def leads(n: int = 2000) -> list[dict]:
    rnd = random.Random(7)
    out = []
    for row in range(n):
        i = rnd.randrange(500)  # 0-299 known, 300-499 unknown by phone
        lead = {"phone_number": _phone(i, rnd.randrange(5)) if rnd.random() < 0.5 else f"555{3000000 + i:07d}",
                "first_name": f"R{row}"}
        if rnd.random() < 0.3:
            lead["email"] = f"e{i}@example.com" if i >= 400 else f"c{i}@EXAMPLE.com"
        out.append(lead)
    return out


ROWS = {
    "hubspot_contacts_search": [
        {"name": "customer", "key": "results.0.properties.lifecyclestage", "value": "customer", "create_lead": False,
         "add_to_dnc": False, "success": False},
        {"name": "several", "key": "total", "match": "gt", "value": 1, "create_lead": True, "status": "MANY",
         "add_to_dnc": False, "success": True},
        {"name": "known", "key": "results.0.id", "match": "exists", "create_lead": False, "add_to_dnc": False,
         "success": False},
    ],
    "salesforce_soql": [
        {"name": "several", "key": "totalSize", "match": "gt", "value": 1, "create_lead": True, "status": "MANY",
         "add_to_dnc": False, "success": True},
        {"name": "known", "key": "records.0.Status", "match": "exists", "create_lead": False, "add_to_dnc": False,
         "success": False},
    ],
    "zoho_leads_criteria": [
        {"name": "several", "key": "info.count", "match": "gt", "value": 1, "create_lead": True, "status": "MANY",
         "add_to_dnc": False, "success": True},
        {"name": "converted", "key": "data.0.$converted", "value": True, "create_lead": False, "add_to_dnc": False,
         "success": False},
        {"name": "known", "key": "data.0.id", "match": "exists", "create_lead": False, "add_to_dnc": False,
         "success": False},
    ],
}


@pytest.fixture(scope="module")
def book_sim(tmp_path_factory):
    with SimulatorThread(write_book(tmp_path_factory.mktemp("book") / "book.csv")) as sim:
        yield sim


def decide_all(wf: Path, batch: list[dict], sim, db: Path, own_client: bool = False) -> list[dict]:
    """Every lead's stored record, by row. ``own_client``: the CRM node sends through a
    plain ``httpx.AsyncClient`` (a host's own), not the connection's lean client."""
    async def go():
        records: list[dict] = []
        async with Host.open(str(wf), db=str(db), crm_url=sim.url, environ=ENV) as engine:
            if own_client:
                engine.workflow.crm._client = httpx.AsyncClient()  # closed by the node's aclose
            items = aiter_items((i, lead, None) for i, lead in enumerate(batch, 1))
            await engine.run(items, concurrency=max(32, engine.lead_capacity()), on_record=records.append)
        return sorted(records, key=lambda r: r["source_row"])

    return asyncio.run(go())


def requests_seen(sim) -> int:
    return httpx.get(sim.url + "/_sim/stats").json()["requests"]


DECISION = ("action", "status", "rules_row", "rules_row_name", "decided_by", "code", "checked", "crm_record_id",
            "response")


@pytest.mark.parametrize("adaptor", sorted(ROWS))
def test_batches_decide_every_lead_exactly_as_single_calls(adaptor, book_sim, tmp_path):
    batch = leads()
    single_wf = write_workflow(tmp_path, ROWS[adaptor], name="single", adaptor=adaptor, connect={"batch": False})
    batched_wf = write_workflow(tmp_path, ROWS[adaptor], name="batched", adaptor=adaptor, connect={"batch": True})
    book_sim.reset()
    single = decide_all(single_wf, batch, book_sim, tmp_path / "single.db")
    single_requests = requests_seen(book_sim)
    book_sim.reset()
    batched = decide_all(batched_wf, batch, book_sim, tmp_path / "batched.db")
    batched_requests = requests_seen(book_sim)

    assert single_requests == sum(r["crm"]["called"] for r in single)
    assert [r["source_row"] for r in single] == [r["source_row"] for r in batched] == list(range(1, len(batch) + 1))
    # every lead was asked (the render budget no longer counts the garbage collector's time)
    assert {r["crm"]["error"] for r in single + batched} == {None}
    pairs = list(zip(single, batched))
    differences = [(s["source_row"], {k: (s[k], b[k]) for k in DECISION if s[k] != b[k]})
                   for s, b in pairs if any(s[k] != b[k] for k in DECISION)]
    assert differences == []
    # the table really told leads apart: every row and the no-match default decided some
    assert {r["rules_row_name"] for r in single} == {row["name"] for row in ROWS[adaptor]} | {None}
    assert batched_requests * 5 <= len(batch), f"{batched_requests} requests for {len(batch)} leads"
    assert max(r["crm"]["batch_size"] for r in batched) > 1


def test_a_split_answer_has_the_shape_of_a_single_answer():
    spec = load_adaptor("hubspot_contacts_search").batch
    a = {"phone": "5550100002", "phone_code": "1", "email": ""}
    b = {"phone": "5550100009", "phone_code": "1", "email": "x@example.com"}
    record = lambda id_, phone, email="": {"id": id_, "properties": {"phone": phone, "email": email}}  # noqa: E731
    body = {"total": 3, "results": [record("1", "(555) 010-0002"), record("2", "+1 555 010 0002"),
                                    record("3", "", "X@Example.com")]}
    (sa, ba), (sb, bb) = spec.split(200, body, [a, b])
    assert (sa, ba["total"], [r["id"] for r in ba["results"]]) == (200, 2, ["1", "2"])
    assert (sb, bb["total"], [r["id"] for r in bb["results"]]) == (200, 1, ["3"])
    assert spec.split(200, {"total": 200, "results": [record(str(i), "1") for i in range(200)]}, [a, b]) is None
    # leads the CRM found nothing for share one answer (what the record makes of it is made once)
    c, d = ({"phone": p, "phone_code": "1", "email": ""} for p in ("5550100003", "5550100004"))
    parts = spec.split(200, body, [c, a, d, b])
    assert parts[0] is parts[2] and parts[0][1] == {"total": 0, "results": []}
    assert [r["id"] for r in parts[1][1]["results"]] == ["1", "2"]
    zoho = load_adaptor("zoho_leads_criteria").batch
    assert zoho.split(204, None, [a, b]) == [(204, None), (204, None)]


def test_an_answer_without_the_declared_records_cannot_be_split():
    spec = load_adaptor("hubspot_contacts_search").batch
    a = {"phone": "5550100002", "phone_code": "1", "email": ""}
    b = {"phone": "5550100009", "phone_code": "1", "email": ""}
    found = [{"id": "1", "properties": {"phone": "+15550100002"}}]
    # read as no records, every lead would be new; read as it is, each would get the other's records
    with pytest.raises(BatchShapeError, match=r"records = 'results': the CRM's answer has no such key "
                                              r"\(its keys: total, result\)"):
        spec.split(200, {"total": 1, "result": found}, [a, b])
    with pytest.raises(BatchShapeError, match="no list there"):
        spec.split(200, {"total": 1, "results": found[0]}, [a, b])
    with pytest.raises(BatchShapeError, match="no such key$"):
        spec.split(200, "<html>maintenance</html>", [a, b])
    assert [body["total"] for _, body in spec.split(200, {"total": 0, "results": None}, [a, b])] == [0, 0]


@pytest.mark.parametrize("right,wrong,warning", [
    ('records = "records"', 'records = "record"', "connection crm: [batch] records = 'record': the CRM's answer has "
                                                  "no such key (its keys: totalSize, done, records)"),
    ('record = ["Phone", "MobilePhone"]', 'record = ["Phone", "MobilPhone"]',
     "records belong to no lead of the batch by [batch] match (the first: Phone "),
])
def test_a_mistyped_records_path_asks_each_lead_alone_and_decides_as_single_calls(book_sim, tmp_path, caplog,
                                                                                   right, wrong, warning):
    text = (shipped_dir("adaptors") / "salesforce_soql.toml").read_text(encoding="utf-8")
    assert right in text and 'name = "salesforce_soql"' in text
    typo = tmp_path / "sf_typo.toml"
    typo.write_text(text.replace(right, wrong, 1).replace('name = "salesforce_soql"', 'name = "sf_typo"', 1),
                    encoding="utf-8")
    batch = leads(300)
    rows = ROWS["salesforce_soql"]
    single_wf = write_workflow(tmp_path, rows, name="single", adaptor="salesforce_soql")
    batched_wf = write_workflow(tmp_path, rows, name="batched", adaptor=str(typo), connect={"batch": {"max_leads": 50}})
    book_sim.reset()
    single = decide_all(single_wf, batch, book_sim, tmp_path / "single.db")
    book_sim.reset()
    batched = decide_all(batched_wf, batch, book_sim, tmp_path / "batched.db")
    assert [{k: r[k] for k in DECISION} for r in batched] == [{k: r[k] for k in DECISION} for r in single]
    assert {r["rules_row_name"] for r in batched} == {"several", "known", None}  # duplicates were found
    assert [r["response"] for r in batched] == [r["response"] for r in single]  # no lead holds another's records
    warned = [r.getMessage() for r in caplog.records if "cannot be split" in r.getMessage()]
    assert len(warned) == 1 and warning in warned[0], warned


def test_an_idle_connection_sends_a_lone_lead_as_its_own_single_request(tmp_path, crm_sim):
    wf = write_workflow(tmp_path, ROWS["hubspot_contacts_search"], adaptor="hubspot_contacts_search",
                        connect={"batch": True})
    records = decide_all(wf, [{"phone_number": "5550100002"}], crm_sim, tmp_path / "d.db")
    assert records[0]["crm"]["batch_size"] == 1 and records[0]["request"]["body"]["limit"] == 10


def test_each_lead_gets_its_records_in_the_answers_order_once_and_none_of_the_others():
    spec = load_adaptor("salesforce_soql").batch
    a = {"phone": "5550100002", "phone_code": "1", "email": ""}
    twin = dict(a)  # the same phone twice in one batch: sent once, both get its records
    b = {"phone": "5550100009", "phone_code": "1", "email": "x@example.com"}
    alone = {"phone": "5550100077", "phone_code": "1", "email": ""}  # no record of its own
    query, _ = spec.render([a, twin, b, alone])
    assert query["q"].count("'+15550100002'") == 2  # once in Phone IN (...), once in MobilePhone IN (...)
    rec = lambda id_, phone=None, mobile=None, email=None: {"Id": id_, "Phone": phone, "MobilePhone": mobile,  # noqa: E731
                                                            "Email": email}
    found = [rec("1", "(555) 010-0002"), rec("2", "5550100009", "+15550100002"),  # b's phone and a's mobile
             rec("3", email="X@Example.com"), rec("4", "+15550100002", "5550100002")]  # a's, by both fields
    parts = spec.split(200, {"totalSize": 4, "done": True, "records": found}, [a, twin, b, alone])
    ids = [[r["Id"] for r in body["records"]] for _, body in parts]
    assert ids == [["1", "2", "4"], ["1", "2", "4"], ["2", "3"], []]
    assert [body["totalSize"] for _, body in parts] == [3, 3, 2, 0] and all(body["done"] for _, body in parts)
    # a record no lead's values match: the CRM found it for one of them (a looser comparison than
    # [batch] match, a mistyped record field), so that lead's answer cannot be told: asked alone
    with pytest.raises(BatchShapeError, match=r"1 of the answer's 5 records belong to no lead of the batch by "
                                              r"\[batch\] match \(the first: Phone '\+15559999999', MobilePhone None, "
                                              r"Email None\)"):
        spec.split(200, {"totalSize": 5, "done": True, "records": found + [rec("5", "+15559999999")]},
                   [a, twin, b, alone])
    many = [rec(str(i), "5550100002") for i in range(12)]  # more than the single query's LIMIT 10
    (_, body), = spec.split(200, {"totalSize": 12, "done": True, "records": many}, [a])
    assert [r["Id"] for r in body["records"]] == [str(i) for i in range(10)] and body["totalSize"] == 10


def test_a_phone_comparison_reads_a_records_number_with_the_leads_country_code():
    spec = load_adaptor("hubspot_contacts_search").batch
    us = {"phone": "2079460000", "phone_code": "1", "email": ""}
    uk = {"phone": "2079460000", "phone_code": "44", "email": ""}
    body = {"total": 2, "results": [{"id": "1", "properties": {"phone": "020 7946 0000"}},
                                    {"id": "2", "properties": {"phone": "+1 207 946 0000"}}]}
    (_, for_us), (_, for_uk) = spec.split(200, body, [us, uk])
    assert [r["id"] for r in for_us["results"]] == ["2"] and [r["id"] for r in for_uk["results"]] == ["1"]


def test_a_lead_that_cannot_be_rendered_into_a_batch_says_why_and_spoils_only_batches_it_is_in():
    spec = load_adaptor("salesforce_soql").batch
    good = spec.prepare({"phone": "5550100002", "phone_code": "1", "email": ""})
    bad = spec.prepare({"phone": "not a phone", "phone_code": "1", "email": ""})
    assert good.error is None and "not a phone" in bad.error
    with pytest.raises(BatchError, match="not a phone"):
        spec.render([good, bad])
    query, _ = spec.render([good])
    assert "'+15550100002'" in query["q"]


def test_a_batch_over_the_url_limit_is_asked_in_smaller_ones_and_decides_as_single_calls(book_sim, tmp_path):
    # long emails: each lead adds 216 or more characters to the batched SOQL's URL, so any batch of
    # 73 leads or more is longer than Salesforce's URL limit (16,000 in the adaptor), 100 by far
    batch = [dict(lead, email=f"{i}-{'x' * 190}@example.com") for i, lead in enumerate(leads(400))]
    rows = ROWS["salesforce_soql"]
    single_wf = write_workflow(tmp_path, rows, name="single", adaptor="salesforce_soql")
    batched_wf = write_workflow(tmp_path, rows, name="batched", adaptor="salesforce_soql",
                                connect={"batch": {"max_leads": 100}})
    book_sim.reset()
    single = decide_all(single_wf, batch, book_sim, tmp_path / "single.db")
    book_sim.reset()
    batched = decide_all(batched_wf, batch, book_sim, tmp_path / "batched.db")
    assert {r["crm"]["error"] for r in batched} == {None}  # no 414: every request stayed under the limit
    assert [{k: r[k] for k in DECISION} for r in batched] == [{k: r[k] for k in DECISION} for r in single]
    assert [r["request"] for r in batched] == [r["request"] for r in single]  # each lead's own request, as sent alone
    sizes = [r["crm"]["batch_size"] for r in batched]
    assert 1 < max(sizes) < 73, sizes
    assert requests_seen(book_sim) < len(batch) / 5


@pytest.mark.parametrize("leaf,code", [
    ("{{ self.leaf0() }}{{ phone }}", "jinja_tag"),  # the batch leaves are blocks of one template
    ("{% block b %}{% endblock %}{{ phone }}", "jinja_tag"),
    ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}{{ phone }}", "jinja_tag"),
    ("{{ phone | no_such_filter }}", "jinja_compile"),
])
def test_a_batch_template_is_held_to_the_request_templates_rules(leaf, code):
    doc = {"name": "t", "fields": {"phone_number": {"mapped_to": "phone", "required": True}},
           "request": {"method": "POST", "url": "https://crm.example.com/x", "body": {"phone": "{{ phone }}"}},
           "batch": {"records": "results", "match": [{"record": "phone", "lead": "{{ phone }}"}],
                     "body": {"phones": [{"$each": leaf}]}}}
    _, problems = compile_adaptor(doc, "t.toml", default_registry().filters)
    assert [(p.path, p.code) for p in problems] == [(("batch", "body", "phones", 0, "$each"), code)]
    doc["batch"]["body"]["phones"] = [{"$each": "{{ phone }}"}]
    assert compile_adaptor(doc, "t.toml", default_registry().filters)[1] == []


@pytest.mark.parametrize("adaptor", ["salesforce_soql", "hubspot_contacts_search", "zoho_leads_criteria"])
def test_a_lead_prepared_in_one_generated_call_is_the_lead_prepared_leaf_by_leaf(adaptor):
    from dataclasses import replace

    spec = load_adaptor(adaptor).batch
    by_leaf = replace(spec, plain=None, plain_leaves=())  # every leaf alone, Jinja where it is not plain
    odd = ["5550100002", "(555) 010-0002", "+44 20 7946 0000", "not a phone", "", "555'0100\\002", "5" * 400]
    for i, phone in enumerate(odd + [_phone(n, n) for n in range(50)]):
        for email in ("", "x'y@example.com", "Zoë@Example.COM"):
            variables = {"phone": phone, "phone_code": "44" if i == 2 else "1", "email": email}
            ours, theirs = spec.prepare(variables), by_leaf.prepare(variables)
            assert (ours.code, ours.each, ours.keys, ours.error) == (theirs.code, theirs.each, theirs.keys, theirs.error)


@pytest.mark.parametrize("adaptor", ["salesforce_soql", "hubspot_contacts_search", "zoho_leads_criteria"])
def test_a_lead_rendered_with_its_request_is_the_lead_prepared_alone(adaptor):
    from dataclasses import replace

    loaded = load_adaptor(adaptor)
    spec, by_leaf = loaded.batch, replace(loaded.batch, plain=None, plain_leaves=())
    bound = loaded.bind(ENV, batched=True)
    alone = loaded.bind(ENV)
    from_plan = 0
    for i, phone in enumerate(["5550100002", "(555) 010-0002", "+44 20 7946 0000", "not a phone", "555'0100\\002"]
                              + [_phone(n, n) for n in range(20)]):
        for email in ("", "x'y@example.com", "Zoë@Example.COM"):
            lead = {"phone_number": phone, "phone_code": "44" if i == 2 else "1", "email": email}
            try:
                real, masked, ours = bound.render_for_batch(lead)
            except Exception as exc:  # noqa: BLE001 - the lead's own request refuses it: alike alone
                with pytest.raises(type(exc)):
                    alone.render(lead)
                continue
            assert (real, masked) == alone.render(lead)  # the request as rendered without the batch's leaves
            variables = loaded.fields.template_vars(lead)
            texts = bound._request.render_also(variables)[2]
            from_plan += texts is not None
            theirs = by_leaf.prepare(variables)
            assert (ours.code, ours.each, ours.keys, ours.error) == (theirs.code, theirs.each, theirs.keys, theirs.error)
    assert from_plan >= 20  # the plan rendered the batch's leaves, not prepare's own pass
    assert spec._text_slots is not None  # and prepare read them by position, not leaf by leaf
    assert alone._request.render_also(variables)[2] is None  # bound unbatched: no batch leaves rendered


def named_salesforce(folder: Path) -> Path:
    """salesforce_soql with a header that reads the lead (X-Lead-Name), as sf_named."""
    text = (shipped_dir("adaptors") / "salesforce_soql.toml").read_text(encoding="utf-8")
    for old, new in (('name = "salesforce_soql"', 'name = "sf_named"'),
                     ('email = { mapped_to = "email" }', 'email = { mapped_to = "email" }\n'
                                                         'first_name = { mapped_to = "first_name" }'),
                     ('Accept = "application/json"', 'Accept = "application/json"\nX-Lead-Name = "{{ first_name }}"')):
        assert old in text
        text = text.replace(old, new, 1)
    path = folder / "sf_named.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_hosts_own_client_refuses_the_lead_before_it_joins_a_batch(book_sim, tmp_path):
    # with a host's own httpx client the lead whose header cannot be sent is refused where the
    # lean client's is (client.refusal), before the batcher: in a batch it would be its first
    # lead and the batch's headers, refused whole and split (in one run: 9 requests for 300 leads, not 7)
    named_salesforce(tmp_path)
    wf = write_workflow(tmp_path, ROWS["salesforce_soql"], name="batched", adaptor="sf_named",
                        connect={"batch": {"max_leads": 100}})

    def no_batch():
        raise AssertionError("the refused lead was handed to the batcher")

    async def go():
        async with Host.open(str(wf), db=str(tmp_path / "own.db"), crm_url=book_sim.url, environ=ENV) as engine:
            node = engine.workflow.crm
            node._client = httpx.AsyncClient()  # closed by the node's aclose
            node.runtime._batcher = no_batch
            return await engine.evaluate({"phone_number": "5553000001", "first_name": "Bad\x01Name"})

    book_sim.reset()
    record = asyncio.run(go())
    assert (record["code"], record["crm"]["error"], record["crm"]["attempts"]) == (6023, "render", 0), record["crm"]
    assert "'X-Lead-Name'" in record["crm"]["error_detail"]
    assert requests_seen(book_sim) == 0


def test_check_warns_that_a_batch_sends_only_its_first_leads_header(tmp_path):
    from dupcheck_plugin.config.checker import check_paths

    path = named_salesforce(tmp_path)
    [result] = check_paths([path], default_registry())
    assert result.problems == []
    [warning] = [w for w in result.warnings if w.code == "batch_first_lead"]
    assert tuple(warning.path) == ("request", "headers", "X-Lead-Name")
    assert "reads the lead (first_name), but a batch is sent with its first lead's headers" in warning.message
    line = path.read_text(encoding="utf-8").splitlines()[warning.line - 1]
    assert line.startswith("X-Lead-Name") and line[warning.column - 1:].startswith('"{{ first_name }}"')
    # the shipped batching adaptors read lead values only where the batch replaces them
    shipped = check_paths([shipped_dir("adaptors")], default_registry())
    assert not [str(w) for r in shipped for w in r.warnings if w.code == "batch_first_lead"]


@pytest.mark.parametrize("own_client", [False, True], ids=["lean_client", "hosts_httpx_client"])
def test_a_lead_whose_header_cannot_be_sent_is_refused_alone_not_with_its_batch(book_sim, tmp_path, own_client):
    # a batch is sent with its first lead's headers: a value of that lead no header may hold (a
    # control character) must cost that lead its 6023, as when it is asked alone, not its whole
    # batch; with the connection's client or a host's own httpx client (one rule: client.refusal)
    named_salesforce(tmp_path)
    batch = leads(300)
    batch[0]["first_name"] = "Bad\x01Name"
    rows = ROWS["salesforce_soql"]
    single_wf = write_workflow(tmp_path, rows, name="single", adaptor="sf_named")
    batched_wf = write_workflow(tmp_path, rows, name="batched", adaptor="sf_named", connect={"batch": {"max_leads": 100}})
    book_sim.reset()
    single = decide_all(single_wf, batch, book_sim, tmp_path / "single.db", own_client)
    book_sim.reset()
    batched = decide_all(batched_wf, batch, book_sim, tmp_path / "batched.db", own_client)
    refused = [(1, "render", 6023)]
    assert [(r["source_row"], r["crm"]["error"], r["code"]) for r in single if r["crm"]["error"]] == refused
    assert [(r["source_row"], r["crm"]["error"], r["code"]) for r in batched if r["crm"]["error"]] == refused
    assert [{k: r[k] for k in DECISION} for r in batched] == [{k: r[k] for k in DECISION} for r in single]
    assert max(r["crm"]["batch_size"] for r in batched) > 1
