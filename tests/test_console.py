"""The settings console (/admin) in a real browser: Playwright driving Debian's chromium.

A ``dupcheck serve`` app runs in a thread (real HTTP on loopback) against the
CRM simulator (HubSpot answers from ``examples/contacts.csv``), on a workflow
file of its own in a temporary folder. Set DUPCHECK_SCREENSHOTS=docs/screenshots
to refresh the README's screenshots.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import shutil
import threading
from pathlib import Path

import httpx
import pytest

from conftest import write_workflow
from dupcheck_plugin.server import ServeSettings, create_app
from dupcheck_plugin.server.admin.auth import load_admin_tokens
from test_serve import ENV, TOKEN, ServerThread, fresh_phone

CHROMIUM = os.environ.get("DUPCHECK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ADMIN_TOKEN = "admin-secret-0123456789"
SHOTS = os.environ.get("DUPCHECK_SCREENSHOTS")

RULES = [
    {"name": "customer", "key": "results.0.properties.lifecyclestage", "value": "customer",
     "create_lead": False, "add_to_dnc": True, "success": False},
    {"name": "known", "key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False,
     "success": False},
    {"name": "unknown", "key": "total", "value": 0, "create_lead": True, "add_to_dnc": False, "success": True},
]
CUSTOMER, DEV_PATEL = "+15550100101", "5550100004"  # lifecyclestage customer; lead (firstname Dev)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]  # starts a server, a simulator and a browser


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/apt-packages installs chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium, or run make test)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


# a second api_duplicate_check node: the console edits it as well as the first
AUDIT_NODE = """
[[nodes]]
id = "audit"
type = "api_duplicate_check"
# a second opinion on the same CRM answer
[nodes.config]
connect = "crm"
rules = [
  { name = "audit-known", key = "total", match = "gt", value = 0, create_lead = true, add_to_dnc = false, success = true },
]
"""


def console_workflow(tmp_path: Path, extra: str = "") -> Path:
    workflow = write_workflow(tmp_path, RULES, name="console_wf", default_status="NEW",
                              on_error={"action": "create", "status": "NOTCHECKED"})
    # a comment a person wrote: Apply must keep it
    workflow.write_text(workflow.read_text().replace("rules = [", "# the rows, first match wins\nrules = [") + extra)
    return workflow


class Clock:
    """The clock of the login throttle: moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def serve(sim_server, tmp_path: Path, workflow: Path):
    sim_server.reset()
    admins = load_admin_tokens(environ={"DUPCHECK_ADMIN_TOKENS": f"alice:{ADMIN_TOKEN},bob:{ADMIN_TOKEN}-bob"})
    clock = Clock()
    settings = ServeSettings(workflow=str(workflow), tokens=[TOKEN], db=str(tmp_path / "console.db"),
                             crm_url=sim_server.url, environ=ENV, admin_tokens=admins, check_dup_default=0,
                             admin_clock=clock)
    srv = ServerThread(create_app(settings))
    srv.workflow, srv.clock = workflow, clock
    return srv


@pytest.fixture
def server(sim_server, tmp_path):
    with serve(sim_server, tmp_path, console_workflow(tmp_path)) as srv:
        yield srv


@pytest.fixture
def two_checks(sim_server, tmp_path):
    """A workflow with two api_duplicate_check nodes, "check" (it decides) and "audit"."""
    with serve(sim_server, tmp_path, console_workflow(tmp_path, AUDIT_NODE)) as srv:
        yield srv


def logged_in(browser, server, token: str = ADMIN_TOKEN):
    context = browser.new_context(base_url=server.url)
    pg = context.new_page()
    pg.goto("/admin/settings")
    pg.fill("input[name=token]", token)
    pg.click("button[type=submit]")
    pg.wait_for_url("**/admin/settings")
    return pg


@pytest.fixture
def page(browser, server):
    pg = logged_in(browser, server)
    yield pg
    pg.context.close()


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def insert(server, phone: str, **params) -> dict:
    r = httpx.post(f"{server.url}/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "100", "phone_number": phone, **params},
                   timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def last_decision(server, phone: str) -> dict:
    r = httpx.get(f"{server.url}/v1/decisions", params={"auth_token": TOKEN, "phone": phone}, timeout=30)
    return r.json()["data"]["entries"][-1]


def apply(page) -> None:
    page.click("#apply")
    page.wait_for_load_state()


def rows(page):
    return page.locator("#rules tbody tr")


# -- Global Settings ----------------------------------------------------------------


def test_toggle_off_creates_without_asking_the_crm_and_on_asks_again(page, server, sim_server):
    shot(page, "settings")
    page.uncheck("#enabled")
    assert page.locator("#check-settings").is_hidden()  # as the seed: the settings show when it is on
    apply(page)
    assert page.locator("[role=status]").inner_text().startswith("Changes applied")
    assert "enabled = false" in server.workflow.read_text()
    assert "# the rows, first match wins" in server.workflow.read_text()
    before = sim_server.stats()["requests"]
    answer = insert(server, CUSTOMER)
    assert answer["success"] is True, answer
    record = last_decision(server, CUSTOMER)
    assert record["action"] == "created" and record["crm"]["called"] is False
    assert sim_server.stats()["requests"] == before

    page.check("#enabled")
    apply(page)
    assert insert(server, CUSTOMER, check_dup="0")["success"] is False
    assert last_decision(server, CUSTOMER)["rules_row_name"] == "customer"
    assert sim_server.stats()["requests"] == before + 1
    # the change log shows both changes, who made them, and the diff
    log = page.locator("#changes tbody")
    assert log.locator("tr").count() == 3  # the file as found + two changes
    assert "alice" in log.locator("tr").first.inner_text()
    assert "duplicate check on" in log.locator("tr").first.inner_text()


def test_added_row_decides_until_it_is_removed(page, server):
    page.click("#add-row")
    new = rows(page).last
    new.locator("input[name=row_name]").fill("vip")
    new.locator("input[name=row_key]").fill("results.0.properties.firstname")
    new.locator("input[name=row_value]").fill("Dev")
    new.locator("select[name=row_create_lead]").select_option("yes")
    new.locator("input[name=row_status]").fill("VIP")
    new.locator("select[name=row_success]").select_option("yes")
    up = new.element_handle().query_selector("button.up")
    for _ in range(3):  # first match wins: move it above "known"
        up.click()
    assert rows(page).first.locator("input[name=row_name]").input_value() == "vip"
    apply(page)
    answer = insert(server, DEV_PATEL)
    record = last_decision(server, DEV_PATEL)
    assert (record["rules_row_name"], record["status"], answer["success"]) == ("vip", "VIP", True)

    rows(page).first.locator("button.remove").click()
    apply(page)
    insert(server, DEV_PATEL)
    assert last_decision(server, DEV_PATEL)["rules_row_name"] == "known"
    assert "vip" not in server.workflow.read_text()


def test_an_invalid_cell_is_shown_next_to_it_and_nothing_is_written(page, server):
    before = server.workflow.read_bytes()
    rows(page).nth(0).locator("input[name=row_status]").fill("5")  # a status that is not a string
    apply(page)
    error = rows(page).nth(0).locator("[data-error-for=status]")
    assert "string" in error.inner_text()
    assert server.workflow.read_bytes() == before
    shot(page, "settings-error")

    page.goto("/admin/settings")
    # an operator the select does not offer, as a crafted or stale form would send it
    page.locator("select[name=row_match]").first.evaluate(
        "s => { const o = new Option('between', 'between', true, true); s.add(o); }")
    apply(page)
    assert "between" in rows(page).nth(0).locator("[data-error-for=match]").inner_text()
    assert server.workflow.read_bytes() == before
    assert insert(server, CUSTOMER)["success"] is False  # the running table is the old one


def test_apply_with_200_inserts_in_flight(page, server, sim_server):
    """Every insert is answered and stored; each decision names a row of the old or the new table."""
    sim_server.set_knobs(latency_ms=30)  # so that leads are still waiting on the CRM when Apply lands
    phones = [fresh_phone() for _ in range(200)]
    answers: list[httpx.Response] = []
    started = threading.Event()

    async def fire():
        async with httpx.AsyncClient(base_url=server.url, timeout=60,
                                     limits=httpx.Limits(max_connections=200)) as client:
            tasks = [asyncio.ensure_future(client.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "100",
                                                                                "phone_number": p}))
                     for p in phones]
            await asyncio.sleep(0)
            started.set()
            answers.extend(await asyncio.gather(*tasks))

    try:
        thread = threading.Thread(target=lambda: asyncio.run(fire()))
        thread.start()
        started.wait(30)
        in_flight_at_apply = 0
        for _ in range(1000):  # until the server holds leads (bounded)
            in_flight_at_apply = httpx.get(f"{server.url}/healthz").json()["inserts_in_flight"]
            if in_flight_at_apply:
                break
        for i, name in enumerate(("customer", "known", "unknown")):
            rows(page).nth(i).locator("input[name=row_name]").fill(f"{name}-v2")
        apply(page)
        thread.join(120)
    finally:
        sim_server.set_knobs(latency_ms=0)
    assert page.locator("[role=status]").count() == 1
    assert len(answers) == 200 and all(r.status_code == 200 and r.json()["success"] for r in answers)
    names = [last_decision(server, "+1" + p)["rules_row_name"] for p in phones]
    assert set(names) <= {"unknown", "unknown-v2"}, set(names)
    assert in_flight_at_apply > 0  # Apply really landed among leads in flight
    phone = fresh_phone()
    insert(server, phone)
    assert last_decision(server, "+1" + phone)["rules_row_name"] == "unknown-v2"


def test_revert_applies_an_earlier_version(page, server):
    original = server.workflow.read_text()
    page.uncheck("#enabled")
    apply(page)
    assert server.workflow.read_text() != original
    page.locator("#changes tbody tr").nth(1).locator("button").click()  # the file before the first change
    page.wait_for_load_state()
    assert server.workflow.read_text() == original
    assert "revert to version" in page.locator("#changes tbody tr").first.inner_text()
    assert insert(server, CUSTOMER)["success"] is False  # the check is on again


def node_text(text: str, node_id: str) -> str:
    """The lines of one [[nodes]] table of a workflow file, as written."""
    tables = text.split("[[nodes]]")
    return next(t for t in tables if f'id = "{node_id}"' in t)


def test_every_check_node_is_editable_and_apply_changes_only_that_node(browser, two_checks):
    server = two_checks
    alice, bob = logged_in(browser, server), logged_in(browser, server, f"{ADMIN_TOKEN}-bob")
    try:
        assert alice.locator("#node option").all_inner_texts()[0].startswith("check")
        bob.select_option("#node", "audit")  # the selector redraws the page for that node
        bob.wait_for_url("**node=audit**")
        assert rows(bob).first.locator("input[name=row_name]").input_value() == "audit-known"
        shot(bob, "settings-node")
        before = server.workflow.read_text()

        # both pages are drawn; alice applies first, then bob: each changes only its node, and both land
        rows(alice).nth(0).locator("input[name=row_name]").fill("customer-2")
        rows(bob).nth(0).locator("input[name=row_name]").fill("audit-2")
        rows(bob).nth(0).locator("input[name=row_status]").fill("AUDITED")
        apply(alice)
        apply(bob)
        assert bob.locator("[role=status]").inner_text().startswith("Changes applied to node audit")
        after = server.workflow.read_text()
        assert 'name = "customer-2"' in node_text(after, "check") and "audit-2" not in node_text(after, "check")
        assert 'name = "audit-2"' in node_text(after, "audit") and 'status = "AUDITED"' in node_text(after, "audit")
        assert "# a second opinion on the same CRM answer" in node_text(after, "audit")
        assert node_text(after, "crm") == node_text(before, "crm")
        assert insert(server, CUSTOMER)["success"] is False
        assert last_decision(server, CUSTOMER)["rules_row_name"] == "customer-2"  # the first check still decides
        log = alice.context.request.get("/admin/settings").text()
        assert "audit: rules or on_error edited" in log and "check: rules or on_error edited" in log

        # a page drawn before bob's Apply cannot undo it: refused, nothing written, the node as it is now
        stale = alice
        stale.goto("/admin/settings?node=audit")
        server.workflow.write_text(after.replace('"AUDITED"', '"AUDITED-BY-HAND"'))
        rows(stale).nth(0).locator("input[name=row_name]").fill("stale")
        written = server.workflow.read_bytes()
        apply(stale)
        assert "was changed since this page was drawn" in stale.locator("[role=alert]").inner_text()
        assert server.workflow.read_bytes() == written
        assert rows(stale).nth(0).locator("input[name=row_status]").input_value() == "AUDITED-BY-HAND"
    finally:
        alice.context.close()
        bob.context.close()


def test_a_failed_rows_code_and_text_are_cells_and_a_bad_code_is_refused(page, server):
    first = rows(page).nth(0)  # "customer": success = no
    first.locator("input[name=row_code]").fill("6010")
    first.locator("input[name=row_text]").fill("Existing customer, call the account manager")
    apply(page)
    text = server.workflow.read_text()
    assert 'code = 6010' in text and 'text = "Existing customer, call the account manager"' in text
    answer = insert(server, CUSTOMER)
    assert (answer["success"], answer["code"], answer["text"]) == (False, 6010, "Existing customer, call the "
                                                                                "account manager"), answer
    assert rows(page).nth(0).locator("input[name=row_code]").input_value() == "6010"

    before = server.workflow.read_bytes()
    rows(page).nth(1).locator("input[name=row_code]").fill("six")  # not an integer
    page.fill("#duplicate_code", "many")
    apply(page)
    assert "integer" in rows(page).nth(1).locator("[data-error-for=code]").inner_text()
    assert "integer" in page.locator("[data-error-for=duplicate_code]").inner_text()
    assert rows(page).nth(1).locator("input[name=row_code]").input_value() == "six"  # what was typed stays
    assert server.workflow.read_bytes() == before
    shot(page, "settings-code-error")

    page.goto("/admin/settings")  # a blank cell removes the key: the default answer applies again
    rows(page).nth(0).locator("input[name=row_code]").fill("")
    rows(page).nth(0).locator("input[name=row_text]").fill("")
    apply(page)
    assert "6010" not in server.workflow.read_text()
    answer = insert(server, CUSTOMER)
    assert (answer["code"], answer["text"]) == (6009, "The phone number already exists"), answer


def test_settings_marks_a_row_a_change_left_unable_to_decide(page, server):
    assert page.locator("#table-warnings").count() == 0 and page.locator("#rules .warning").count() == 0
    # "known" widened to any answer that has a total: "unknown" (total equals 0) below it never decides again
    known = rows(page).nth(1)
    known.locator("select[name=row_match]").select_option("exists")
    known.locator("input[name=row_value]").fill("")
    apply(page)
    assert page.locator("[role=status]").inner_text().startswith("Changes applied")
    assert 'match = "exists"' in server.workflow.read_text()  # applied: a warning refuses nothing
    assert page.locator("#table-warnings").is_visible()
    warning = rows(page).nth(2).locator("[data-warning-for='']")
    assert warning.inner_text().startswith("rules[2] (unknown) can never decide: rules[1] (known) comes first")
    assert [rows(page).nth(i).locator(".warning").count() for i in range(3)] == [0, 0, 1]
    shot(page, "settings-dead-row")


def test_settings_marks_a_key_a_typo_away_from_an_answer_key_the_adaptor_names(page, server):
    # before: the console's amber warnings were rule_warnings' alone; check's unknown_answer_key
    # (which needs the connection's adaptor) was not among them
    rows(page).nth(1).locator("input[name=row_key]").fill("totl")
    apply(page)
    assert 'key = "totl"' in server.workflow.read_text()  # applied: a warning refuses nothing
    warning = rows(page).nth(1).locator("[data-warning-for=key]")
    assert warning.inner_text() == ("'totl' is not one of the answer keys hubspot_contacts_search names "
                                    "(results, total): this row would read a key the answer lacks "
                                    "(did you mean 'total'?)")
    assert [rows(page).nth(i).locator(".warning").count() for i in range(3)] == [0, 1, 0]


def test_a_refused_apply_marks_the_table_s_warnings_as_well_as_its_errors(page, server):
    # before: the page that shows an Apply refusal marked the errors only; the warnings of the table
    # as typed (the dead row a change left) showed once the error was fixed and applied
    before = server.workflow.read_bytes()
    known = rows(page).nth(1)
    known.locator("select[name=row_match]").select_option("exists")
    known.locator("input[name=row_value]").fill("")
    rows(page).nth(0).locator("input[name=row_code]").fill("six")  # a real error: not an integer
    apply(page)
    assert server.workflow.read_bytes() == before  # refused
    assert "integer" in rows(page).nth(0).locator("[data-error-for=code]").inner_text()
    assert page.locator("[role=alert]").first.inner_text().startswith("Nothing was changed")
    assert page.locator("#table-warnings").is_visible()
    assert "has-warning" in rows(page).nth(2).get_attribute("class")  # amber, as on Global Settings
    warning = rows(page).nth(2).locator("[data-warning-for='']")
    assert warning.inner_text().startswith("rules[2] (unknown) can never decide: rules[1] (known) comes first")
    assert [rows(page).nth(i).locator(".warning").count() for i in range(3)] == [0, 0, 1]
    # what was typed stays, so fixing the error is all that is left to do
    assert rows(page).nth(1).locator("select[name=row_match]").input_value() == "exists"
    shot(page, "settings-refused-with-warnings")


# -- Test a lead ------------------------------------------------------------------


def test_test_a_lead_shows_the_matched_row_and_creates_nothing(page, server):
    store = server.api.store
    before = store.counts()
    page.goto("/admin/test")
    page.fill("#test-lead input[name=phone_number]", CUSTOMER)
    page.click("#test-lead button[type=submit]")
    page.wait_for_selector("#decision-row")
    assert page.inner_text("#decision-row") == "customer"
    assert page.inner_text("#decision-action") == "duplicate"
    assert "test-token" not in page.inner_text("#request") and "****" in page.inner_text("#request")
    assert page.locator("#rows tr.match").count() == 1
    assert '"lifecyclestage": "customer"' in page.inner_text("#answer")
    shot(page, "test-a-lead")
    assert store.counts() == before  # no lead, no decision record

    page.fill("#paste-answer textarea[name=answer]", '{"total": 2, "results": [{"properties": {}}]}')
    page.click("#paste-answer button[type=submit]")
    page.wait_for_selector("#decision-row:text('known')")
    assert store.counts() == before

    # a CRM that spells the key otherwise: the row that reads it names the key it likely means
    page.fill("#paste-answer textarea[name=answer]", '{"total": 1, "results": [{"properties": {"LifecycleStage": "customer"}}]}')
    page.click("#paste-answer button[type=submit]")
    page.wait_for_selector("#rows td:has-text('(missing; did you mean results.0.properties.LifecycleStage?)')")
    assert store.counts() == before


# -- Decisions ----------------------------------------------------------------------


def test_decisions_filter_by_action_and_csv_equals_the_store(page, server):
    for phone in (CUSTOMER, "+15550100003", fresh_phone(), fresh_phone()):
        insert(server, phone)
    page.goto("/admin/decisions")
    shot(page, "decisions")
    page.select_option("select[name=action]", "duplicate")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**action=duplicate**")
    shown = page.locator("#decisions tbody td.action").all_inner_texts()
    total, records = server.api.store.search_decisions(action="duplicate")
    assert shown == ["duplicate"] * total and total == 2

    csv_text = page.request.get(page.locator("#csv").get_attribute("href")).text()
    got = list(csv.DictReader(io.StringIO(csv_text)))
    assert [(int(r["id"]), r["action"], r["rules_row_name"], r["phone_e164"]) for r in got] == [
        (r["id"], r["action"], r["rules_row_name"], r["phone_e164"]) for r in records]

    page.click(f"#decisions a[href='/admin/decisions/{records[0]['id']}']")
    assert page.inner_text("#rules-row").startswith("row ")
    assert '"success": false' in page.inner_text("#caller-answer")

    # lead fields come from vendors: shown as text, never run
    evil = '<img src=x onerror="window.pwned=1">'
    insert(server, fresh_phone(), first_name=evil)
    newest = server.api.store.search_decisions(limit=1)[1][0]
    page.goto(f"/admin/decisions/{newest['id']}")
    assert '<img src=x onerror=' in page.inner_text("main") and page.evaluate("window.pwned") is None
    # the time filter: nothing is decided after the newest record
    page.goto("/admin/decisions?since=" + newest["decided_at"][:16])
    assert int(page.inner_text("#total")) >= 1
    page.goto("/admin/decisions?until=2000-01-01T00:00")
    assert page.inner_text("#total") == "0"


def test_a_decision_shows_its_full_evidence_and_the_row_as_it_was_then(page, server):
    insert(server, CUSTOMER)  # decided by row 0 "customer"
    decided = last_decision(server, CUSTOMER)
    rows(page).nth(0).locator("input[name=row_name]").fill("customer-renamed")
    rows(page).nth(0).locator("select[name=row_add_to_dnc]").select_option("no")
    apply(page)  # the table changes after the decision
    insert(server, CUSTOMER)
    later = last_decision(server, CUSTOMER)

    page.goto(f"/admin/decisions/{server.api.store.search_decisions(phone_e164=CUSTOMER)[1][-1]['id']}")
    assert page.inner_text("#rules-row") == "row 0 (customer)"
    row = page.inner_text("#row")
    assert 'name = "customer"' in row and "add_to_dnc = true" in row  # the row as it read when it decided
    body = page.inner_text("#crm-body")
    assert '"lifecyclestage": "customer"' in body and "sim-token" not in page.content()
    assert json.loads(body) == json.loads(decided["response"]["body"])  # the whole answer, pretty printed
    assert '"method": "POST"' in page.inner_text("#request") and "Bearer ****" in page.inner_text("#request")
    assert '"success": false' in page.inner_text("#caller-answer")
    shot(page, "decision")

    page.goto(f"/admin/decisions/{server.api.store.search_decisions(phone_e164=CUSTOMER)[1][0]['id']}")
    assert later["rules_row_name"] == "customer-renamed"
    assert 'name = "customer-renamed"' in page.inner_text("#row") and "add_to_dnc = false" in page.inner_text("#row")


def test_connections_show_calls_errors_and_latency(page, server):
    insert(server, fresh_phone())
    page.goto("/admin/connections")
    assert int(page.inner_text("#conn-crm .calls")) >= 1
    assert "p50" in page.inner_text("#conn-crm")
    shot(page, "connections")


# -- access ----------------------------------------------------------------------------

PAGES = ["/admin/", "/admin/settings", "/admin/test", "/admin/decisions", "/admin/decisions.csv",
         "/admin/decisions/1", "/admin/connections"]
POSTS = ["/admin/settings", "/admin/settings/revert/1", "/admin/test", "/admin/api/reload", "/admin/logout"]


def test_without_login_or_with_an_insert_token_everything_is_refused(server):
    before = server.workflow.read_bytes()
    with httpx.Client(base_url=server.url, follow_redirects=False) as client:
        for path in PAGES + POSTS:
            method = "POST" if path in POSTS else "GET"
            r = client.request(method, path)
            assert r.status_code in (401, 303), (path, r.status_code)
            if r.status_code == 303:
                assert r.headers["location"].startswith("/admin/login")
            r = client.request(method, path, headers={"authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 401, (path, r.status_code)
            server.clock.now += 60  # a failed login each: past the login throttle's window
        assert client.post("/admin/api/reload", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 401
        # the login form does not take an insert token either
        login = client.get("/admin/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
        r = client.post("/admin/login", data={"csrf": csrf, "token": TOKEN})
        assert r.status_code == 401 and "content-security-policy" in r.headers
        assert client.get("/admin/settings").status_code == 303
    assert server.workflow.read_bytes() == before


def login_form(client: httpx.Client, token: str) -> httpx.Response:
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin/login").text).group(1)
    return client.post("/admin/login", data={"csrf": csrf, "token": token, "next": "/admin/decisions"})


def test_repeated_bad_logins_from_one_address_are_refused_for_a_minute(server):
    """5 failures in a minute from one address; then 429 + Retry-After, for a good token as well."""
    reload_as = lambda c, token: c.post("/admin/api/reload", headers={"authorization": f"Bearer {token}"})  # noqa: E731
    other = httpx.HTTPTransport(local_address="127.0.0.2")  # loopback is all of 127/8: a second client address
    with httpx.Client(base_url=server.url, follow_redirects=False) as client, \
            httpx.Client(base_url=server.url, follow_redirects=False, transport=other) as neighbour:
        for i in range(4):
            assert login_form(client, f"guess-{i}").status_code == 401
            server.clock.now += 10
        assert reload_as(client, "guess-4").status_code == 401  # a bearer token counts as a login too
        assert server.clock.now == 40
        r = login_form(client, ADMIN_TOKEN)
        assert r.status_code == 429 and r.headers["retry-after"] == "20", r.headers  # the first failure was at 0
        assert "try again in 20 s" in r.text and 'name="next" value="/admin/decisions"' in r.text
        r = reload_as(client, ADMIN_TOKEN)
        assert r.status_code == 429 and r.json()["error"].startswith("too many failed admin logins")
        assert client.get("/admin/settings").status_code == 303  # none of this logged anyone in

        assert login_form(neighbour, ADMIN_TOKEN).status_code == 303  # another address is not held back

        server.clock.now = 60  # the failure at 0 has left the window: one more try
        assert login_form(client, "guess-5").status_code == 401
        assert login_form(client, ADMIN_TOKEN).headers.get("retry-after") == "10"
        server.clock.now = 70
        r = login_form(client, ADMIN_TOKEN)
        assert r.status_code == 303 and r.headers["location"] == "/admin/decisions"
        for i in range(5):  # a good login started the count again
            assert reload_as(client, f"guess-{i}").status_code == 401
        assert reload_as(client, "guess-5").status_code == 429


def test_a_post_without_the_csrf_token_is_refused(page, server):
    before = server.workflow.read_bytes()
    for path, form in (("/admin/settings", {"enabled": "", "connect": "crm"}), ("/admin/api/reload", {}),
                       ("/admin/settings/revert/1", {})):
        r = page.request.post(path, form=form)  # the browser's session cookie, no token
        assert r.status == 403, (path, r.status)
        r = page.request.post(path, form={**form, "csrf": "forged"})
        assert r.status == 403
    assert server.workflow.read_bytes() == before
    assert "content-security-policy" in page.request.get("/admin/settings").headers


def test_reload_endpoint_and_sighup_path_load_a_file_edited_by_hand(server):
    text = server.workflow.read_text().replace('"unknown"', '"unknown-by-hand"')
    server.workflow.write_text(text)
    r = httpx.post(f"{server.url}/admin/api/reload", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200 and r.json()["ok"] is True
    phone = fresh_phone()
    insert(server, phone)
    assert last_decision(server, "+1" + phone)["rules_row_name"] == "unknown-by-hand"
    # a broken file is refused and the running table stays
    server.workflow.write_text(text.replace('match = "gt"', 'match = "bigger"'))
    r = httpx.post(f"{server.url}/admin/api/reload", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 422 and "bigger" in r.text
    phone = fresh_phone()
    insert(server, phone)
    assert last_decision(server, "+1" + phone)["rules_row_name"] == "unknown-by-hand"


def test_a_file_broken_by_hand_is_reported_and_the_server_runs_on(server):
    server.workflow.write_text("rules = [ this is not TOML")
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    r = httpx.get(f"{server.url}/admin/settings", headers=auth)
    assert r.status_code == 409 and "cannot be read" in r.text
    assert httpx.post(f"{server.url}/admin/api/reload", headers=auth).status_code == 422
    assert insert(server, CUSTOMER)["success"] is False  # the loaded table still decides
