"""Request templates cannot see each other, leak a secret, or run away (issue 10)."""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path

import pytest

from dupcheck_plugin.http.wire import full_url, request_json
from dupcheck_plugin.config.adaptors import compile_adaptor
from dupcheck_plugin.adaptor.render import MAX_ERROR_CHARS, RenderError
from dupcheck_plugin.adaptor.sandbox import MAX_TEXT
from dupcheck_plugin.cli.main import main
from dupcheck_plugin.config.toml import load_toml
from dupcheck_plugin.plugins import default_registry

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "adaptors").glob("*.toml"))
SECRET = "s3cr3t-VALUE-never-shown"
LEAD = {"phone_number": "5550100101", "email": "ann@example.com", "first_name": "Ann", "phone_code": "1"}


def compile_doc(doc: dict):
    return compile_adaptor(doc, "t.toml", default_registry().filters)


def adaptor_doc(leaf: str, where: str = "headers") -> dict:
    request = {"method": "POST", "url": "https://crm.example.com/x",
               "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"}, "body": {"phone": "{{ phone }}"}}
    request.setdefault(where, {})["X"] = leaf
    return {"name": "t", "fields": {"phone_number": {"mapped_to": "phone", "required": True}}, "request": request}


# --- ways around the secret mask --------------------------------------------------

# each tries to reach a secret its own leaf does not name (`self`, `super`,
# `caller`, `namespace`, `loop`, filters on `secrets`), or to name it only
# through something that is not `secrets.NAME`
BYPASSES = [
    "{{ self.leaf0() }}{{ phone }}",
    "{% for b in self %}{{ b }}{% endfor %}{{ phone }}",
    "{{ super() }}{{ phone }}",
    "{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}{{ self.leaf0() }}{% endcall %}{{ phone }}",
    "{% set ns = namespace(s=secrets) %}{{ ns.s }}{{ phone }}",
    "{% set ns = namespace(secrets) %}{{ ns }}{{ phone }}",
    "{% for x in [secrets] %}{{ loop.cycle(x) }}{% endfor %}{{ phone }}",
    "{% for k, v in secrets.items() %}{{ k }}={{ v }}{% endfor %}{{ phone }}",
    "{% for x in [1] recursive %}{{ loop([secrets]) }}{% endfor %}{{ phone }}",
    "{{ secrets|tojson }}{{ phone }}",
    "{{ secrets|dictsort }}{{ phone }}",
    "{{ secrets|list }}{{ secrets|string }}{{ phone }}",
    "{{ secrets.values()|list }}{{ phone }}",
    "{{ secrets|attr('TOKEN') }}{{ phone }}",
    "{% set s = secrets %}{{ s.TOKEN }}{{ phone }}",
    "{{ (secrets,)|first }}{{ phone }}",
    "{{ [secrets]|map(attribute='TOKEN')|join }}{{ phone }}",
]


def secret_names(doc: dict) -> set[str]:
    tpl, problems = compile_doc(doc)
    assert not problems, problems
    return tpl.secret_names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
@pytest.mark.parametrize("bypass", BYPASSES)
@pytest.mark.parametrize("section", ["headers", "query", "body"])
def test_no_leaf_can_reach_a_secret_it_does_not_name(path, bypass, section):
    doc = load_toml(path)
    names = secret_names(doc)
    doc = copy.deepcopy(doc)
    request = doc["request"]
    if section == "body" and not isinstance(request.get("body"), dict):
        request["body"] = {}
    request.setdefault(section, {})
    request[section]["X"] = bypass.replace("{{ phone }}", "")
    adaptor, problems = compile_doc(doc)
    if problems:  # refused by check: it can never run
        assert any(p.path[:3] == ("request", section, "X") for p in problems), problems
        return
    # a name the bypass made up (`secrets.items`) is a secret of its own, not one of the adaptor's
    env = {name: f"{SECRET}-{name}" if name in names else "other" for name in adaptor.secret_names}
    real, masked = adaptor.bind(env).render(LEAD)
    # the leaf got none of the secrets (each is only in the leaf that names it) ...
    leaf = (real.headers if section == "headers" else real.query if section == "query" else real.body)["X"]
    assert SECRET not in json.dumps(leaf)
    # ... and what is shown or recorded holds no secret at all
    assert SECRET not in json.dumps(request_json(masked))


@pytest.mark.parametrize("path", [p for p in SHIPPED if "secrets." in p.read_text()], ids=lambda p: p.stem)
def test_shipped_adaptor_secret_reaches_the_request_but_no_preview(path, capsys, monkeypatch):
    doc = load_toml(path)
    names = secret_names(doc)
    env = {name: f"{SECRET}-{name}" for name in names}
    adaptor, _ = compile_doc(doc)
    real, masked = adaptor.bind(env).render(LEAD)
    assert SECRET in json.dumps(request_json(real))  # the CRM does get it
    assert SECRET not in json.dumps(request_json(masked))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["render", str(path), "--lead", json.dumps(LEAD), "-o", "json"]) == 0
    out, err = capsys.readouterr()
    assert SECRET not in out + err


def test_the_issue_self_bypass_is_refused_by_check(tmp_path, capsys):
    path = tmp_path / "a.toml"
    path.write_text("\n".join([
        'name = "a"', "[fields]", 'phone_number = { mapped_to = "phone", required = true }',
        "[request]", 'method = "POST"', 'url = "https://crm.example.com/x"',
        "[request.headers]", 'Authorization = "Bearer {{ secrets.TOKEN }}"',
        "[request.body]", 'phone = "{{ self.leaf0() }}{{ phone }}"', ""]))
    assert main(["check", str(path)]) == 1
    out, _ = capsys.readouterr()
    assert "a.toml:10:9::request.body.phone: self cannot be used" in out


# --- runaway templates -----------------------------------------------------------

RUNAWAY = [
    "{% for a in 'x'*100000 %}{% for b in 'x'*100000 %}{% endfor %}{% endfor %}",
    "{% for a in range(100) %}{% for b in range(100) %}{% for c in range(100) %}{% endfor %}{% endfor %}{% endfor %}",
    "{{ range(10**9)|list }}",
    "{{ 'x' * 10**9 }}",
    "{{ 10 ** (10 ** 9) }}",
    "{{ '%999999999s' % 'x' }}",
    "{{ '{:>999999999}'.format('x') }}",
    "{{ 'x'.center(10**9) }}",
    "{{ 'x'|center(10**9) }}",
    "{{ ('x'*100000)|replace('x', 'xxxxx') }}",
    "{{ (['x'*100000]*5)|join }}",
    "{% set s = 'x'*1000 %}" + "{% set s = s ~ s %}" * 12 + "{{ s }}",
    "{{ 'x'*200000 }}{{ 'x'*200000 }}",
]


@pytest.mark.parametrize("leaf", RUNAWAY)
def test_a_runaway_lead_independent_template_is_refused_by_check(leaf):
    _, problems = compile_doc(adaptor_doc(leaf))
    assert [(p.path, p.code) for p in problems] == [(("request", "headers", "X"), "render")]
    assert "over the render budget" in problems[0].message


@pytest.mark.parametrize("leaf", [
    "{{ 1//0 }}",
    "{{ secrets.TOKEN[100] }}",
    "{{ 'a' + 1 }}",
])
def test_a_lead_independent_failure_is_a_problem_with_its_path(leaf):
    _, problems = compile_doc(adaptor_doc(leaf))
    assert [p.path for p in problems] == [("request", "headers", "X")]
    assert "sample lead" in problems[0].message


@pytest.mark.parametrize("leaf", [
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
    "{% block b %}{% endblock %}",
])
def test_recursion_and_blocks_are_refused(leaf):
    _, problems = compile_doc(adaptor_doc(leaf))
    assert [(p.path, p.code) for p in problems] == [(("request", "headers", "X"), "jinja_tag")]


def test_a_lead_dependent_runaway_fails_that_lead_only():
    # harmless for the sample lead; a 12-digit phone sends it over budget
    leaf = "{% for a in range(phone|length * 1000) %}{% for b in range(phone|length * 1000) %}{% endfor %}{% endfor %}"
    adaptor, problems = compile_doc(adaptor_doc("{% if phone|length > 10 %}" + leaf + "{% endif %}{{ phone }}"))
    assert not problems
    bound = adaptor.bind({"TOKEN": "t"})
    bound.render({"phone_number": "5550100101"})
    with pytest.raises(RenderError, match="over the render budget: more than 10000 loop iterations"):
        bound.render({"phone_number": "+445550100101"})


def test_a_render_over_its_cpu_time_fails_that_lead(monkeypatch):
    # within the loop and size limits, but slow: each iteration builds and sorts a long list
    from dupcheck_plugin.adaptor import sandbox

    leaf = "{% for a in range(300) %}{{ (phone * 200)|list|sort|length }}{% endfor %}"
    adaptor, problems = compile_doc(adaptor_doc("{% if phone|length > 10 %}" + leaf + "{% endif %}{{ phone }}"))
    assert not problems
    bound = adaptor.bind({"TOKEN": "t"})
    monkeypatch.setattr(sandbox, "MAX_CPU_SECONDS", 0.005)
    bound.render({"phone_number": "5550100101"})
    with pytest.raises(RenderError, match="over the render budget: the render took more than 5 ms of CPU time"):
        bound.render({"phone_number": "+445550100101"})


def test_a_legitimate_loop_and_long_value_still_render():
    adaptor, problems = compile_doc(adaptor_doc(
        "{% for c in phone %}{{ c }}{% endfor %}-{{ phone * 1000 }}", where="body"))
    assert not problems
    real, _ = adaptor.bind({"TOKEN": "t"}).render({"phone_number": "5550100101"})
    assert real.body["X"] == "5550100101-" + "5550100101" * 1000
    assert len(real.body["X"]) < MAX_TEXT


def test_a_render_error_cuts_the_offending_value():
    doc = adaptor_doc("{{ dob }}", where="body")
    doc["fields"]["dob"] = {"mapped_to": "dob", "date_format": "Y-m-d"}
    adaptor, problems = compile_doc(doc)
    assert not problems
    huge = "9" * 1_000_000 + "x"
    with pytest.raises(RenderError) as info:
        adaptor.bind({"TOKEN": "t"}).render({"phone_number": "5550100101", "dob": huge})
    assert len(str(info.value)) < MAX_ERROR_CHARS + 100
    assert "more characters" in str(info.value)


# --- size limits on config files ---------------------------------------------------

def test_a_huge_config_file_is_refused_at_once(tmp_path, capsys):
    path = tmp_path / "big.toml"
    path.write_text('name = "big"\n[request]\nurl = "https://crm.example.com/x"\n[request.body]\n'
                    + "".join(f'k{i} = "{{{{ phone }}}}"\n' for i in range(200_000)))
    assert main(["check", str(path)]) == 1
    out, _ = capsys.readouterr()
    assert "big.toml:1:1::$: the file is" in out and "at most 262144 bytes" in out


def test_too_many_leaves_are_refused():
    doc = adaptor_doc("{{ phone }}", where="body")
    doc["request"]["body"] = {f"k{i}": "{{ phone }}" for i in range(2001)}
    _, problems = compile_doc(doc)
    assert [(p.path, p.code) for p in problems] == [(("request",), "too_many_leaves")]


# --- connection URLs to this machine or a metadata service ----------------------------

@pytest.mark.parametrize("url, kind", [
    ("http://169.254.169.254/latest/meta-data", "link-local"), ("http://[fe80::1]/x", "link-local"),
    ("http://127.0.0.1:8080/x", "loopback"), ("https://localhost/x", "loopback"), ("http://[::1]/x", "loopback"),
    ("http://[::ffff:169.254.169.254]/x", "link-local"), ("http://metadata.google.internal/x", "link-local"),
    ("https://api.hubapi.com/x", None), ("https://10.0.0.5/x", None), ("{{ base }}/x", None),
])
def test_local_targets_are_recognised(url, kind):
    from dupcheck_plugin.adaptor.targets import local_target

    assert (local_target(url) or "").split(" ")[0] == (kind or "")


@pytest.mark.parametrize("allow", [False, True])
def test_check_warns_for_a_metadata_url_unless_allowed(tmp_path, capsys, allow):
    path = tmp_path / "meta.toml"
    path.write_text("\n".join([
        f"#:schema {ROOT}/schemas/adaptor.schema.json", 'name = "meta"', *(["allow_local_network = true"] * allow),
        "[fields]", 'phone_number = { mapped_to = "phone", required = true }',
        "[request]", 'method = "GET"', 'url = "http://169.254.169.254/latest/meta-data/{{ phone }}"', ""]))
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    warned = re.search(r"meta.toml:\d+:\d+::request.url: the URL's host is a link-local address", out + err) is not None
    assert warned is not allow


def test_a_secret_reaches_no_record_output_or_log_of_a_run(tmp_path, crm_sim, monkeypatch, capsys, caplog):
    import logging
    import sqlite3

    from conftest import write_workflow

    monkeypatch.setenv("HUBSPOT_TOKEN", SECRET)
    wf = write_workflow(tmp_path, [{"key": "total", "match": "gt", "value": 0, "create_lead": False,
                                    "add_to_dnc": False, "success": False}])
    leads = tmp_path / "leads.csv"
    leads.write_text("phone_number,email\n5550100101,ava.stone@example.com\n5550100177,\nnot-a-phone,\n")
    out, db = tmp_path / "out.jsonl", tmp_path / "d.db"
    with caplog.at_level(logging.DEBUG):
        assert main(["run", str(wf), "--leads", str(leads), "--db", str(db), "--out", str(out),
                     "--crm-url", crm_sim.url, "--no-progress"]) == 0
    stdout, stderr = capsys.readouterr()
    records = out.read_text()
    assert records.count("\n") == 3 and "****" in records  # the masked Authorization header is recorded
    with sqlite3.connect(db) as conn:
        stored = "\n".join(row[0] for row in conn.execute("select record from decisions"))
    logs = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for text in (records, stored, stdout, stderr, logs):
        assert SECRET not in text


def test_garbage_collection_during_a_render_does_not_count_against_its_cpu_budget(monkeypatch):
    # a full collection of a busy serve heap can take longer than the whole budget;
    # a good lead must not be refused for it
    import gc

    from dupcheck_plugin.adaptor import sandbox

    monkeypatch.setattr(sandbox, "MAX_CPU_SECONDS", 0.002)
    heap = [[{"n": i}] for i in range(300_000)]  # enough objects for gc.collect() to take > 2 ms
    budget = sandbox.Budget()
    for _ in range(3):
        gc.collect()
    budget.check_time()  # no error: the collector's time is not the template's
    del heap
    busy = sandbox.Budget()
    with pytest.raises(sandbox.TemplateCostError, match="CPU time"):
        while True:  # the template's own CPU time still counts
            sum(range(1000))
            busy.check_time()
