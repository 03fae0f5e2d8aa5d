"""The pipeline end to end: engine + Convoso Connect + API Duplicate Check +
SQLite store, against the CRM simulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_workflow
from dupcheck_plugin.engine.runner import aiter_items
from dupcheck_plugin.host import Host as Engine
from dupcheck_plugin.engine.sources import iter_csv, iter_jsonl

# examples/contacts.csv: 101 customer, 102 opportunity, 103 lead, 106 flagged dnc
CUSTOMER = "5550100101"
OPPORTUNITY = "(555) 010-0002"
KNOWN = "+15550100003"
NEW = ["5550100170", "5550100171", "5550100172"]

BASE_ROW = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}


def run_leads(workflow: Path, leads: list[dict], sim_url: str, db: Path, concurrency: int = 8) -> list[dict]:
    async def go():
        records = []
        engine = Engine.open(str(workflow), db=str(db), crm_url=sim_url)
        async with engine:
            items = aiter_items((i, lead, None) for i, lead in enumerate(leads, 1))
            await engine.run(items, concurrency=concurrency, on_record=records.append)
        return sorted(records, key=lambda r: r["source_row"])

    return asyncio.run(go())


def db_rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def leads_for(*phones: str) -> list[dict]:
    return [{"phone_number": p, "first_name": f"P{i}"} for i, p in enumerate(phones)]


# --- the six columns of the seed table, each flipped in turn ------------------

def test_base_row_skips_known_leads_as_duplicates(tmp_path, crm_sim, hubspot_env):
    wf = write_workflow(tmp_path, [BASE_ROW])
    recs = run_leads(wf, leads_for(KNOWN, NEW[0]), crm_sim.url, tmp_path / "d.db")
    dup, new = recs
    assert (dup["action"], dup["rules_row"], dup["success"], dup["code"], dup["status"]) == ("duplicate", 0, False, 6009, None)
    assert dup["crm_record_id"] == "103" and dup["crm"]["status_code"] == 200 and dup["checked"] is True
    assert (new["action"], new["status"], new["success"], new["rules_row"]) == ("created", "NEW", True, None)
    assert db_rows(tmp_path / "d.db", "select phone_e164, status, list_id from leads") == [("+15550100170", "NEW", "77")]
    assert db_rows(tmp_path / "d.db", "select count(*) from dnc") == [(0,)]
    assert db_rows(tmp_path / "d.db", "select count(*) from decisions") == [(2,)]


def test_enabled_false_never_calls_the_crm(tmp_path, crm_sim, hubspot_env):
    wf = write_workflow(tmp_path, [BASE_ROW], enabled=False, default_status="FRESH")
    before = crm_sim.stats()
    recs = run_leads(wf, leads_for(KNOWN, NEW[0]), crm_sim.url, tmp_path / "d.db")
    assert [(r["action"], r["status"], r["success"], r["crm"]["called"]) for r in recs] == [("created", "FRESH", True, False)] * 2
    assert crm_sim.stats()["requests"] == before["requests"]
    assert db_rows(tmp_path / "d.db", "select count(*) from leads") == [(2,)]


def test_key_and_value_decide_which_row_matches(tmp_path, crm_sim, hubspot_env):
    rows = [
        {**BASE_ROW, "key": "results.0.properties.lifecyclestage", "match": "equals", "value": "customer", "name": "cust"},
        {**BASE_ROW, "key": "results.0.properties.lifecyclestage", "match": "equals", "value": "nobody-has-this"},
    ]
    wf = write_workflow(tmp_path, rows)
    cust, known = run_leads(wf, leads_for(CUSTOMER, KNOWN), crm_sim.url, tmp_path / "d.db")
    assert (cust["action"], cust["rules_row"], cust["rules_row_name"]) == ("duplicate", 0, "cust")
    # the lead is known to the CRM but no row's value matches: created with the default status
    assert (known["action"], known["rules_row"], known["status"]) == ("created", None, "NEW")


def test_create_lead_yes_posts_with_the_row_status(tmp_path, crm_sim, hubspot_env):
    wf = write_workflow(tmp_path, [{**BASE_ROW, "create_lead": True, "status": "DUPCRM"}])
    (rec,) = run_leads(wf, leads_for(KNOWN), crm_sim.url, tmp_path / "d.db")
    assert (rec["action"], rec["status"], rec["success"], rec["code"]) == ("created", "DUPCRM", False, 6009)
    assert rec["lead_id"] is not None
    assert db_rows(tmp_path / "d.db", "select id, status from leads") == [(int(rec["lead_id"]), "DUPCRM")]


def test_empty_status_means_default_status(tmp_path, crm_sim, hubspot_env):
    wf = write_workflow(tmp_path, [{**BASE_ROW, "create_lead": True, "status": ""}], default_status="INTAKE")
    (rec,) = run_leads(wf, leads_for(KNOWN), crm_sim.url, tmp_path / "d.db")
    assert (rec["action"], rec["status"]) == ("created", "INTAKE")


def test_add_to_dnc_adds_the_phone_once(tmp_path, crm_sim, hubspot_env):
    wf = write_workflow(tmp_path, [{**BASE_ROW, "add_to_dnc": True, "name": "known-dnc"}])
    recs = run_leads(wf, leads_for(KNOWN, "555-010-0003", NEW[0]), crm_sim.url, tmp_path / "d.db", concurrency=1)
    assert [r["dnc_added"] for r in recs] == [True, False, False]  # the second found it on the list already
    assert db_rows(tmp_path / "d.db", "select phone_e164, campaign_id, reason from dnc") == [("+15550100003", "0", "row 0 (known-dnc)")]


def test_success_yes_answers_success_for_a_skipped_duplicate(tmp_path, crm_sim, hubspot_env):
    wf = write_workflow(tmp_path, [{**BASE_ROW, "success": True}])
    (rec,) = run_leads(wf, leads_for(KNOWN), crm_sim.url, tmp_path / "d.db")
    assert (rec["action"], rec["success"], rec["code"]) == ("duplicate", True, 200)
    assert db_rows(tmp_path / "d.db", "select count(*) from leads") == [(0,)]


def test_request_in_the_record_has_secrets_masked(tmp_path, crm_sim, hubspot_env):
    wf = write_workflow(tmp_path, [BASE_ROW])
    (rec,) = run_leads(wf, leads_for(KNOWN), crm_sim.url, tmp_path / "d.db")
    assert rec["request"]["headers"]["Authorization"] == "Bearer ****"
    assert rec["request"]["url"].startswith(crm_sim.url)
    stored = db_rows(tmp_path / "d.db", "select record from decisions")[0][0]
    assert "test-token-secret-123" not in stored and "test-token-secret-123" not in json.dumps(rec)


# --- faults: no lead lost, each error decided by on_error ---------------------

def test_crm_errors_follow_on_error_and_no_lead_is_lost(tmp_path, crm_sim, hubspot_env):
    crm_sim.set_knobs(error_rate=0.4, seed=7)
    # a 40% failure rate gives 5 failures in a row now and then: keep the breaker out of this test
    wf = write_workflow(tmp_path, [BASE_ROW], on_error={"action": "create", "status": "NOTCHECKED"},
                        connect={"retry": {"attempts": 1}, "breaker": {"failures": 1000}})
    phones = [f"55501{n:05d}" for n in range(200, 400)]
    recs = run_leads(wf, leads_for(*phones), crm_sim.url, tmp_path / "d.db", concurrency=16)
    assert len(recs) == 200 and sorted(r["source_row"] for r in recs) == list(range(1, 201))
    errors = [r for r in recs if r["crm"]["error"]]
    assert 40 <= len(errors) <= 120  # ~40% of 200, seeded
    assert all(r["crm"]["error"] == "http_status" and r["crm"]["status_code"] >= 500 for r in errors)
    assert all((r["action"], r["status"], r["checked"]) == ("created", "NOTCHECKED", False) for r in errors)
    assert db_rows(tmp_path / "d.db", "select count(*) from leads") == [(200,)]
    assert db_rows(tmp_path / "d.db", "select count(*) from decisions") == [(200,)]


def test_on_error_reject_creates_nothing_and_is_retryable(tmp_path, crm_sim, hubspot_env):
    crm_sim.set_knobs(error_rate=1.0)
    wf = write_workflow(tmp_path, [BASE_ROW], on_error={"action": "reject"},
                        connect={"retry": {"attempts": 2, "backoff": 0.01}, "breaker": {"failures": 10}})
    recs = run_leads(wf, leads_for(*NEW), crm_sim.url, tmp_path / "d.db")
    assert all((r["action"], r["success"], r["retryable"], r["code"], r["crm"]["attempts"]) == ("rejected", False, True, 6503, 2) for r in recs)
    assert db_rows(tmp_path / "d.db", "select count(*) from leads") == [(0,)]
    assert db_rows(tmp_path / "d.db", "select count(*) from decisions") == [(3,)]


def test_rate_limited_answers_are_retried_not_decided(tmp_path, crm_sim, hubspot_env):
    crm_sim.set_knobs(rate_limit_rate=0.5, retry_after="0.01", seed=3)
    wf = write_workflow(tmp_path, [BASE_ROW], on_error={"action": "reject"},
                        connect={"retry": {"attempts": 8, "backoff": 0.01}})
    recs = run_leads(wf, leads_for(KNOWN, *NEW), crm_sim.url, tmp_path / "d.db")
    assert [r["action"] for r in recs] == ["duplicate", "created", "created", "created"]
    assert all(r["checked"] for r in recs)
    assert sum(r["crm"]["attempts"] for r in recs) > 4  # some answers were 429s, retried
    assert crm_sim.stats()["by_status"].get("429", 0) > 0


def test_still_rate_limited_after_retries_is_an_error(tmp_path, crm_sim, hubspot_env):
    crm_sim.set_knobs(rate_limit_rate=1.0, retry_after="0")
    wf = write_workflow(tmp_path, [BASE_ROW], on_error={"action": "reject"}, connect={"retry": {"attempts": 2, "backoff": 0}})
    (rec,) = run_leads(wf, leads_for(KNOWN), crm_sim.url, tmp_path / "d.db")
    assert (rec["action"], rec["crm"]["error"], rec["crm"]["status_code"]) == ("rejected", "rate_limited", 429)


def test_timeouts_are_errors(tmp_path, crm_sim, hubspot_env):
    crm_sim.set_knobs(timeout_rate=1.0, hang_ms=3000)
    wf = write_workflow(tmp_path, [BASE_ROW], on_error={"action": "create", "status": "NC"},
                        connect={"timeout": 0.2, "retry": {"attempts": 1}})
    (rec,) = run_leads(wf, leads_for(NEW[0]), crm_sim.url, tmp_path / "d.db")
    assert (rec["action"], rec["status"], rec["crm"]["error"]) == ("created", "NC", "timeout")


def test_connection_refused_is_an_error(tmp_path, hubspot_env):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wf = write_workflow(tmp_path, [BASE_ROW], on_error={"action": "reject"}, connect={"retry": {"attempts": 1}})
    (rec,) = run_leads(wf, leads_for(NEW[0]), f"http://127.0.0.1:{port}", tmp_path / "d.db")
    assert (rec["action"], rec["crm"]["error"]) == ("rejected", "connection")


def test_unauthorized_answer_is_not_read_as_a_miss(tmp_path, crm_sim, hubspot_env):
    crm_sim.set_knobs(auth="the-right-token")
    wf = write_workflow(tmp_path, [BASE_ROW], on_error={"action": "reject"})
    (rec,) = run_leads(wf, leads_for(NEW[0]), crm_sim.url, tmp_path / "d.db")
    assert (rec["action"], rec["crm"]["status_code"]) == ("rejected", 401)


# --- input handling ----------------------------------------------------------

def test_bad_leads_get_their_own_rejected_decision(tmp_path, crm_sim, hubspot_env):
    wf = write_workflow(tmp_path, [BASE_ROW])
    leads = [{"phone_number": ""}, {"phone_number": "12"}, {"phone_number": NEW[0], "email": "nope"},
             {"phone_number": NEW[1], "extra": {"nested": 1}}, {"phone_number": NEW[2]}]
    recs = run_leads(wf, leads, crm_sim.url, tmp_path / "d.db")
    assert [(r["action"], r["code"]) for r in recs] == [
        ("rejected", 6007), ("rejected", 6008), ("rejected", 6079), ("rejected", 6023), ("created", 200)]


def test_sources_report_malformed_rows_and_go_on():
    import io

    csv_items = list(iter_csv(io.StringIO("phone_number,first_name\n5550100170,A\n5550100171,B,extra\n\n5550100172,C\n")))
    assert [(row, err is None) for row, _, err in csv_items] == [(2, True), (3, False), (5, True)]
    jsonl = list(iter_jsonl(io.StringIO('{"phone_number": "1"}\nnot json\n[1]\n\n{"phone_number": "2"}\n')))
    assert [(row, err is None) for row, _, err in jsonl] == [(1, True), (2, False), (3, False), (5, True)]


def cli(*args, input_text=None, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", *args], input=input_text,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_cli_run_streams_stdin_and_counts_every_row(tmp_path, crm_sim, hubspot_env):
    wf = write_workflow(tmp_path, [{**BASE_ROW, "add_to_dnc": True}])
    lines = [json.dumps({"phone_number": p}) for p in (KNOWN, NEW[0], NEW[1])] + ["{broken", json.dumps({"phone_number": CUSTOMER})]
    out = tmp_path / "decisions.jsonl"
    proc = cli("run", str(wf), "--leads", "-", "--crm-url", crm_sim.url, "--db", str(tmp_path / "r.db"),
               "--out", str(out), input_text="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 5
    assert sorted(r["action"] for r in recs) == ["created", "created", "duplicate", "duplicate", "rejected"]
    assert "decided 5 leads" in proc.stderr and "duplicate 2" in proc.stderr
    assert db_rows(tmp_path / "r.db", "select count(*) from leads") == [(2,)]
    assert sorted(db_rows(tmp_path / "r.db", "select phone_e164 from dnc")) == [("+15550100003",), ("+15550100101",)]


def test_cli_run_reports_config_errors_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[nodes]]\nid = "x"\ntype = "nope"\n')
    proc = cli("run", str(bad), "--leads", "-", input_text="")
    assert proc.returncode == 1
    assert "unknown node type 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_run_missing_secret_is_a_clear_error(tmp_path):
    wf = write_workflow(tmp_path, [BASE_ROW])
    env = {k: v for k, v in os.environ.items() if k != "HUBSPOT_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", "run", str(wf), "--leads", "-"],
                          input="", capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1 and "HUBSPOT_TOKEN" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_shows_created_duplicate_and_dnc(tmp_path):
    proc = cli("demo", "--db", str(tmp_path / "demo.db"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "created" in out and "duplicate" in out and "rejected" in out
    dnc_lines = [line for line in out.splitlines() if " yes " in line]
    assert dnc_lines and "customer" in dnc_lines[0]
    assert db_rows(tmp_path / "demo.db", "select count(*) from dnc") == [(1,)]


def test_explain_shows_the_matching_row(tmp_path):
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps({"total": 1, "results": [{"id": "9", "properties": {"lifecyclestage": "opportunity"}}]}))
    proc = cli("explain", "hubspot_dupcheck", "--response", str(answer), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert (rec["rules_row"], rec["rules_row_name"], rec["action"], rec["status"], rec["success"]) == (1, "opportunity", "created", "DUPOPP", False)
    assert rec["crm_record_id"] == "9"
    text = cli("explain", "hubspot_dupcheck", "--response", str(answer))
    assert "row 0 (customer)" in text.stdout and "MATCH" in text.stdout


def test_explain_takes_an_answer_written_out_and_names_the_key_a_typo_meant(tmp_path, monkeypatch, capsys):
    wf = write_workflow(tmp_path, [{"name": "customer", "key": "results.0.properties.lifecylestage",
                                    "value": "customer", "create_lead": False, "add_to_dnc": True, "success": False}])
    # longer than a file name may be (255 bytes): still the answer
    answer = json.dumps({"total": 1, "results": [{"id": "9", "properties": {"lifecyclestage": "customer",
                                                                              "notes": "n" * 300}}]})
    proc = cli("explain", str(wf), "--response", answer)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "row 0 (customer)" in line)
    assert "found (missing; did you mean results.0.properties.lifecyclestage?) -> no match" in row
    assert "decision: created" in proc.stdout  # the typo lets a customer through: what the hint is for
    # a file whose name starts like JSON is still read as the file
    from dupcheck_plugin.cli.main import main

    (tmp_path / "{answer}.json").write_text(json.dumps({"total": 0, "results": []}))
    monkeypatch.chdir(tmp_path)
    assert main(["explain", str(wf), "--response", "{answer}.json"]) == 0
    shown = capsys.readouterr().out
    assert "lifecylestage equals \"customer\": found (missing) -> no match" in shown  # no record: no guess
    assert "decision: created, decided by default_status" in shown
    missing = cli("explain", str(wf), "--response", "nofile.json")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip() == ("dupcheck: --response 'nofile.json': no such file, and not an answer written "
                                      "out (one starts with {, [ or <: --response '{\"total\": 1}')")
    unreadable = cli("explain", str(wf), "--response", str(tmp_path))
    assert unreadable.returncode == 2 and "cannot read --response: [Errno 21] Is a directory" in unreadable.stderr


def test_explain_with_a_lead_shows_the_request_in_text_too(tmp_path):
    """`-o json` had the request a lead would send; the text said nothing of it."""
    lead = tmp_path / "lead.json"
    lead.write_text(json.dumps({"phone_number": "5550100101"}))
    proc = cli("explain", "hubspot_dupcheck", "--response", '{"total": 0, "results": []}', "--lead", str(lead))
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("request: POST https://api.hubapi.com/crm/v3/objects/contacts/search {")
    assert '"value": "+15550100101"' in first and "Bearer" not in first  # the body, secrets never


def test_explain_says_why_a_list_matches_no_equals_row(tmp_path):
    """`equals "dnc"` against a list of labels never matches ("lists equal nothing"): the
    DNC-labelled lead was created with nothing in explain to say why."""
    wf = write_workflow(tmp_path, [{"name": "dnc", "key": "results.0.labels", "value": "dnc", "create_lead": False,
                                    "add_to_dnc": True, "success": False}])
    answer = json.dumps({"total": 1, "results": [{"id": "9", "labels": ["dnc", "vip"]}]})
    proc = cli("explain", str(wf), "--response", answer)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "row 0 (dnc)" in line)
    assert ('found ["dnc", "vip"] (a list: match = "contains" tests its items, or name one item, as key.0) '
            '-> no match') in row


@pytest.mark.parametrize("adaptor", sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "adaptors").glob("*.toml")))
def test_demo_runs_every_shipped_adaptor_end_to_end(adaptor, tmp_path, capsys):
    from dupcheck_plugin.cli.main import main

    assert main(["demo", "--adaptor", adaptor, "--db", str(tmp_path / "d.db")]) == 0
    out = capsys.readouterr().out
    assert "decided 10 leads" in out
    decided = db_rows(tmp_path / "d.db", "select action, count(*) from decisions group by action")
    assert sum(n for _, n in decided) == 10
    actions = dict(decided)
    assert actions.get("duplicate", 0) >= 1  # every sample CRM knows some of the sample leads
    assert db_rows(tmp_path / "d.db", "select count(*) from leads") == [(actions.get("created", 0),)]


def test_a_rerun_never_decides_a_row_twice_and_resume_finishes_the_file(tmp_path, hubspot_env):
    import signal
    import threading

    from dupcheck_plugin.testing import CrmStub

    # one lead per request, as the stub answers them (a batch of phones would slip past its gates)
    wf = write_workflow(tmp_path, [BASE_ROW], connect={"batch": False, "limits": False})
    phones = [f"55501{n:05d}" for n in range(1000, 1400)]
    leads = tmp_path / "leads.csv"
    leads.write_text("phone_number\n" + "".join(f"{p}\n" for p in phones))
    db = tmp_path / "r.db"
    held = threading.Event()
    with CrmStub() as stub:
        for phone in phones[50:]:  # the CRM answers the first 50 leads, then holds every call
            stub.answer(phone, {"total": 0, "results": []}, gate=held)
        args = [sys.executable, "-m", "dupcheck_plugin.cli.main", "run", str(wf), "--leads", str(leads),
                "--crm-url", stub.url, "--db", str(db), "--concurrency", "4", "--out", str(tmp_path / "1.jsonl")]
        # the run gets the SIGINT a user's terminal gives it: a shell starts background jobs (CI
        # steps, `make test &`) with SIGINT ignored, a child inherits that, and Python keeps ignoring it
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        # all 4 workers wait on held calls: each stored its earlier lead before it took the next
        assert stub.wait_for_requests(54), proc.stderr
        proc.send_signal(signal.SIGINT)  # interrupt it mid-way
        proc.communicate(timeout=60)
        held.set()
        first = db_rows(db, "select count(*) from decisions")[0][0]
        assert first == 50
        args[args.index("--crm-url") + 1] = "http://127.0.0.1:9"  # the rerun must stop before calling anything
    # every stored decision is whole: a created lead has its lead row
    assert db_rows(db, "select count(*) from decisions where action = 'created' and lead_id is null") == [(0,)]

    again = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "--resume" in again.stderr and "Traceback" not in again.stderr
    assert db_rows(db, "select count(*) from decisions")[0][0] == first

    with CrmStub() as stub:
        args[args.index("--crm-url") + 1] = stub.url
        resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=120)
    assert len(stub.requests) == 400 - first  # only the rows left are decided
    assert resumed.returncode == 0, resumed.stderr
    assert f"{first} rows already decided" in resumed.stderr
    assert db_rows(db, "select count(*), count(distinct row) from decisions") == [(400, 400)]
    assert db_rows(db, "select count(*) from leads") == [(400,)]


def test_resume_of_a_file_changed_since_refuses_before_deciding_and_the_same_file_resumes(
        tmp_path, crm_sim, hubspot_env):
    # before: --resume skipped rows by number, so a row inserted at the top of a re-exported file
    # had its neighbour's lead skipped unseen and the lead it pushed down decided a second time
    leads, db = tmp_path / "l.csv", tmp_path / "x.db"
    phones = [f"55530{n:05d}" for n in range(20)]
    leads.write_text("phone_number\n" + "".join(f"{p}\n" for p in phones[:10]))
    args = ["run", "hubspot_dupcheck", "--leads", str(leads), "--crm-url", crm_sim.url, "--db", str(db),
            "--out", str(tmp_path / "o.jsonl")]
    assert cli(*args).returncode == 0  # rows 2-11 decided, as an interrupted run leaves them
    more = "".join(f"{p}\n" for p in phones[10:])  # rows the file gained since: a resume decides them
    leads.write_text("phone_number\n5553099999\n" + "".join(f"{p}\n" for p in phones[:10]) + more)
    proc = cli(*args, "--resume")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert ("--resume: row 2 was decided for +15553000000, and the file has +15553099999 there now" in proc.stderr
            and "This run decided nothing" in proc.stderr and "resuming:" not in proc.stderr)
    assert db_rows(db, "select count(*) from decisions") == [(10,)]
    leads.write_text("phone_number\n" + "".join(f"{p}\n" for p in phones[:10]) + more)
    proc = cli(*args, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "resuming: 10 rows already decided are skipped" in proc.stderr
    assert db_rows(db, "select count(*), count(distinct phone_e164), min(row), max(row) from decisions") == [
        (20, 20, 2, 21)]


def test_sigterm_stops_a_run_as_ctrl_c_does_with_every_decision_stored_and_written(tmp_path, hubspot_env):
    """`kill`, `timeout` or a service manager stopping the job: the leads
    decided are stored and in --out, the command says how to resume."""
    import signal
    import threading

    from dupcheck_plugin.testing import CrmStub

    wf = write_workflow(tmp_path, [BASE_ROW], connect={"batch": False, "limits": False})
    phones = [f"55502{n:05d}" for n in range(1000, 1200)]
    leads = tmp_path / "leads.csv"
    leads.write_text("phone_number\n" + "".join(f"{p}\n" for p in phones))
    db, out = tmp_path / "t.db", tmp_path / "t.jsonl"
    held = threading.Event()
    with CrmStub() as stub:
        for phone in phones[50:]:  # the CRM answers the first 50 leads, then holds every call
            stub.answer(phone, {"total": 0, "results": []}, gate=held)
        proc = subprocess.Popen([sys.executable, "-m", "dupcheck_plugin.cli.main", "run", str(wf), "--leads",
                                 str(leads), "--crm-url", stub.url, "--db", str(db), "--concurrency", "4",
                                 "--out", str(out)], stderr=subprocess.PIPE, text=True)
        assert stub.wait_for_requests(54), proc.stderr  # 4 workers wait on held calls
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        held.set()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert db_rows(db, "select count(*), count(distinct row) from decisions") == [(50, 50)]
    lines = out.read_text().splitlines()  # flushed: every stored decision is in --out, whole
    assert sorted(json.loads(line)["source_row"] for line in lines) == list(range(2, 52))


def test_cli_rejects_a_crm_url_that_is_not_an_origin(tmp_path):
    for bad in ("localhost:8000", "ftp://x", "http://", "http://h:99999"):
        proc = cli("run", "hubspot_dupcheck", "--leads", "-", "--crm-url", bad, input_text="")
        assert proc.returncode == 2 and "--crm-url" in proc.stderr, (bad, proc.stderr)


def test_a_csv_header_that_cannot_be_read_decides_nothing_and_the_fixed_file_runs_on_the_same_store(
        tmp_path, crm_sim, hubspot_env):
    # before: every row was refused (6007) and stored as decided, so the file with its header
    # fixed was refused on that store ("rows ... were already decided")
    leads, db = tmp_path / "l.csv", tmp_path / "x.db"
    for header, says in (("Phone_Number,first_name", "rename 'Phone_Number' to phone_number"),
                         ("phone_number,phone_number", "'phone_number' in columns 1, 2")):
        leads.write_text(f"{header}\n5550100101,A\n")
        proc = cli("run", "hubspot_dupcheck", "--leads", str(leads), "--crm-url", crm_sim.url, "--db", str(db))
        assert proc.returncode == 1 and proc.stdout == ""
        assert says in proc.stderr and "This run decided nothing" in proc.stderr and "Traceback" not in proc.stderr
        assert db_rows(db, "select count(*) from decisions") == [(0,)]
    leads.write_text("phone_number,first_name\n5550100101,A\n")
    proc = cli("run", "hubspot_dupcheck", "--leads", str(leads), "--crm-url", crm_sim.url, "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["action"] == "duplicate"


def test_check_dup_makes_a_file_with_repeated_phones_create_one_lead_each(tmp_path, crm_sim, hubspot_env):
    crm_sim.set_knobs(latency_ms=20)  # the repeats are in flight together
    wf = write_workflow(tmp_path, [BASE_ROW])
    leads = tmp_path / "l.csv"
    leads.write_text("phone_number,list_id\n" + "".join(f"(555) 010-{n:04d},5\n" for n in [1300, 1301] * 10))
    out = tmp_path / "o.jsonl"
    proc = cli("run", str(wf), "--leads", str(leads), "--crm-url", crm_sim.url, "--db", str(tmp_path / "c.db"),
               "--concurrency", "16", "--check-dup", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 20
    assert sorted(r["action"] for r in recs).count("created") == 2
    dups = [r for r in recs if r["action"] == "duplicate"]
    assert len(dups) == 18 and all(r["decided_by"] == "check_dup" and r["code"] == 6009 for r in dups)
    assert not any(r["crm"]["called"] for r in dups)  # the local check answers before the CRM
    assert db_rows(tmp_path / "c.db", "select count(*), count(distinct phone_e164) from leads") == [(2, 2)]
    assert "check_dup: 18" in proc.stderr


def test_check_dup_by_list_and_check_dnc(tmp_path, crm_sim, hubspot_env):
    wf = write_workflow(tmp_path, [{**BASE_ROW, "add_to_dnc": True}])
    db = tmp_path / "c.db"

    async def go():
        engine = Engine.open(str(wf), db=str(db), crm_url=crm_sim.url)
        async with engine:
            first = await engine.decide({"phone_number": NEW[0], "list_id": "1"}, check_dup=2)
            other_list = await engine.decide({"phone_number": NEW[0], "list_id": "2"}, check_dup=2)
            same_list = await engine.decide({"phone_number": NEW[0], "list_id": "1"}, check_dup=2)
            known = await engine.decide({"phone_number": KNOWN})  # the CRM knows it: DNC added
            on_dnc = await engine.decide({"phone_number": KNOWN}, check_dnc=True)
        return first, other_list, same_list, known, on_dnc

    first, other_list, same_list, known, on_dnc = asyncio.run(go())
    assert (first["action"], other_list["action"], same_list["action"]) == ("created", "created", "duplicate")
    assert same_list["decided_by"] == "check_dup"
    assert known["dnc_added"] is True
    assert (on_dnc["action"], on_dnc["code"], on_dnc["decided_by"], on_dnc["crm"]["called"]) == ("rejected", 6024, "check_dnc", False)


def test_cli_run_says_when_a_workflow_cap_is_below_concurrency(tmp_path, crm_sim, hubspot_env):
    capped = write_workflow(tmp_path, [BASE_ROW], name="capped", connect={"max_connections": 4})
    uncapped = write_workflow(tmp_path, [BASE_ROW], name="uncapped")
    leads = "phone_number\n" + "\n".join(NEW) + "\n"
    proc = cli("run", str(capped), "--leads", "-", "--crm-url", crm_sim.url, "--db", str(tmp_path / "c.db"),
               "--concurrency", "16", input_text=leads)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("capped at 4 connections") == 1 and "--concurrency 16" in proc.stderr
    assert "connections: crm 4" in proc.stderr
    # without a cap, --concurrency sets the connections, and nothing is said
    proc = cli("run", str(uncapped), "--leads", "-", "--crm-url", crm_sim.url, "--db", str(tmp_path / "u.db"),
               "--concurrency", "16", input_text=leads)
    assert proc.returncode == 0, proc.stderr
    assert "capped" not in proc.stderr and "connections: crm 16" in proc.stderr
