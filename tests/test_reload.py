"""Changing the running workflow: the file editor (tomlkit), the form's cells,
and SIGHUP on a real ``dupcheck serve`` process."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import tomlkit

from dupcheck_plugin.server.admin import settings_form as sf
from dupcheck_plugin.server.admin.workflow_file import (NodeChanged, check_node_ids, check_node_index,
                                                        edit_check_settings, node_version)

from conftest import serve_url, write_workflow
from dupcheck_plugin.server import ServeSettings, create_app
from dupcheck_plugin.server.admin.auth import load_admin_tokens
from test_serve import ENV, TOKEN, ServerThread, fresh_phone

ROOT = Path(__file__).resolve().parent.parent


def _form_round_trip(text: str) -> tuple[dict, list]:
    doc = tomlkit.parse(text).unwrap()
    form = sf.from_config(doc["nodes"][check_node_index(doc)]["config"])
    return sf.settings_values(form), [(row.orig, sf.row_values(row)) for row in form.rows]


@pytest.mark.parametrize("path", sorted((ROOT / "workflows").glob("*.toml")), ids=lambda p: p.stem)
def test_an_unchanged_form_leaves_every_shipped_workflow_as_it_is(path):
    text = path.read_text()
    settings, rows = _form_round_trip(text)
    out = edit_check_settings(text, settings, rows, sf.ROW_CELLS)
    assert tomlkit.parse(out).unwrap() == tomlkit.parse(text).unwrap()
    assert [line for line in out.splitlines() if line.lstrip().startswith("#")] == \
        [line for line in text.splitlines() if line.lstrip().startswith("#")]


def test_rows_keep_their_comments_when_they_move_and_take_them_when_they_go():
    text = (ROOT / "workflows" / "hubspot_dupcheck.toml").read_text()
    settings, rows = _form_round_trip(text)
    settings["enabled"] = False
    new_row = (None, {"name": "vip", "key": "total", "value": 5, "create_lead": True, "add_to_dnc": False,
                      "success": True})
    out = edit_check_settings(text, settings, [rows[2], new_row, rows[1]], sf.ROW_CELLS)
    lines = out.splitlines()
    assert "enabled = false" in lines
    assert "an existing customer" not in out  # row 0 went, and its comment with it
    known = next(i for i, line in enumerate(lines) if '"known"' in line)
    assert "anyone else HubSpot knows" in lines[known - 1]
    opportunity = next(i for i, line in enumerate(lines) if '"opportunity"' in line)
    assert "open opportunity" in lines[opportunity - 1]
    rules = tomlkit.parse(out)["nodes"][1]["config"]["rules"].unwrap()
    assert [r["name"] for r in rules] == ["known", "vip", "opportunity"]
    assert "# First matching row decides." in out  # comments outside the table stay


def test_the_form_has_a_cell_for_every_key_a_rules_row_may_have():
    schema = json.loads((ROOT / "schemas" / "api_duplicate_check.schema.json").read_text())
    assert set(sf.ROW_CELLS) == set(schema["$defs"]["rules_row"]["properties"])


TWO_CHECKS = (ROOT / "workflows" / "hubspot_dupcheck.toml").read_text() + """
[[nodes]]
id = "audit"
type = "api_duplicate_check"
config = { connect = "hubspot", rules = [ { key = "total", value = 0, create_lead = true, add_to_dnc = false, success = true } ] }
"""


def _node_form(text: str, node_id: str):
    doc = tomlkit.parse(text).unwrap()
    index = check_node_index(doc, node_id)
    return doc, index, sf.from_config(doc["nodes"][index]["config"], node=node_id, version=node_version(doc, index))


def test_an_edit_of_the_second_check_node_changes_that_node_only():
    doc, index, form = _node_form(TWO_CHECKS, "audit")
    assert check_node_ids(doc) == ["dupcheck", "audit"] and index == 2
    form.rows[0].cells.update(code="6010", text="Known to the audit")
    form.duplicate_text = "Audit says duplicate"
    rows = [(r.orig, sf.row_values(r)) for r in form.rows]
    out = edit_check_settings(TWO_CHECKS, sf.settings_values(form), rows, sf.ROW_CELLS, "audit", form.version)
    head, tail = TWO_CHECKS.split('id = "audit"')
    assert out.startswith(head)  # every byte before the node is as it was
    after = tomlkit.parse(out).unwrap()
    assert after["nodes"][:2] == tomlkit.parse(TWO_CHECKS).unwrap()["nodes"][:2]
    audit = after["nodes"][2]["config"]
    assert audit["duplicate_text"] == "Audit says duplicate"
    assert audit["rules"][0] == {"key": "total", "value": 0, "create_lead": True, "add_to_dnc": False,
                                 "success": True, "code": 6010, "text": "Known to the audit"}

    # a form drawn from another version of the node is refused: its row indexes would point at other rows
    changed = TWO_CHECKS.replace("value = 0, create_lead = true", "value = 1, create_lead = true")
    with pytest.raises(NodeChanged, match="changed since this page was drawn"):
        edit_check_settings(changed, sf.settings_values(form), rows, sf.ROW_CELLS, "audit", form.version)
    # ... but an edit of another node since then is no reason to refuse
    other = TWO_CHECKS.replace('default_status = "NEW"', 'default_status = "FRESH"')
    assert 'default_status = "FRESH"' in edit_check_settings(other, sf.settings_values(form), rows, sf.ROW_CELLS,
                                                              "audit", form.version)
    with pytest.raises(NodeChanged, match="no api_duplicate_check node 'gone'"):
        edit_check_settings(TWO_CHECKS, sf.settings_values(form), rows, sf.ROW_CELLS, "gone")


def test_a_blank_failure_code_or_text_cell_leaves_the_key_out():
    text = TWO_CHECKS.replace("success = true } ] }", 'success = false, code = 6010, text = "x" } ], '
                                                       'duplicate_code = 6011 }')
    doc, index, form = _node_form(text, "audit")
    assert (form.rows[0].cells["code"], form.rows[0].cells["text"], form.duplicate_code) == ("6010", "x", "6011")
    form.rows[0].cells.update(code="", text=" ")
    form.duplicate_code = ""
    rows = [(r.orig, sf.row_values(r)) for r in form.rows]
    out = tomlkit.parse(edit_check_settings(text, sf.settings_values(form), rows, sf.ROW_CELLS, "audit"))
    audit = out.unwrap()["nodes"][2]["config"]
    assert "duplicate_code" not in audit and "code" not in audit["rules"][0] and "text" not in audit["rules"][0]


@pytest.mark.parametrize("text,value", [("0", 0), ('"0"', "0"), ("true", True), ("customer", "customer"),
                                        ("[1, 2]", [1, 2]), ("two words", "two words"), ('""', "")])
def test_value_cells_read_toml_literals_and_write_back_the_same(text, value):
    assert sf.parse_literal(text) == value
    assert sf.parse_literal(sf.literal_text(value)) == value


@pytest.mark.e2e
def test_sighup_reloads_a_checked_file_and_keeps_the_table_when_it_is_broken(sim_server, tmp_path):
    workflow = tmp_path / "hup.toml"
    text = (ROOT / "workflows" / "hubspot_dupcheck.toml").read_text().replace("../schemas/",
                                                                              "https://dupcheck.dev/schemas/")
    workflow.write_text(text)
    env = {**os.environ, **ENV, "DUPCHECK_API_TOKENS": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "dupcheck_plugin.cli.main", "serve", str(workflow),
                             "--db", str(tmp_path / "hup.db"), "--port", "0", "--crm-url", sim_server.url],
                            env=env, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    try:
        url = serve_url(proc)
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()

        def rule_of_a_known_phone() -> str:
            phone = "+15550100003"  # a HubSpot lead: row "known"
            httpx.post(url + "/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "1", "phone_number": phone,
                                                       "check_dup": "0"}, timeout=30)
            r = httpx.get(url + "/v1/decisions", params={"auth_token": TOKEN, "phone": phone}, timeout=30)
            return r.json()["data"]["entries"][-1]["rules_row_name"]

        def hup_and_wait(word: str) -> str:
            proc.send_signal(signal.SIGHUP)
            while True:  # the reload logs its outcome: wait for that line (bounded by the queue timeout)
                line = lines.get(timeout=60)
                if "SIGHUP" in line:
                    assert word in line, line
                    return line

        assert rule_of_a_known_phone() == "known"
        workflow.write_text(text.replace('name = "known"', 'name = "known-edited"'))
        hup_and_wait("reloaded")
        assert rule_of_a_known_phone() == "known-edited"
        workflow.write_text(text.replace('match = "gt"', 'match = "bigger"'))
        line = hup_and_wait("not reloaded")
        assert "bigger" in line
        assert rule_of_a_known_phone() == "known-edited"  # the running table stays
        assert proc.poll() is None  # SIGHUP no longer kills the server
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


EVERYONE = [{"name": "everyone", "key": "total", "match": "exists", "create_lead": False, "add_to_dnc": False,
             "success": False}]
NOBODY = [{"name": "known", "key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False,
           "success": False}]


def _alarmed_workflow(tmp_path: Path, rules: list[dict], name: str) -> str:
    """A workflow's text with a small alarm window (written in a folder of its own, then read)."""
    folder = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    text = write_workflow(folder, rules, name=name, connect={"limits": {"requests": 1000}}).read_text()
    return text.replace("[defaults]", "alarm = { window = 10 }\n[defaults]")


@pytest.mark.e2e
def test_a_reload_that_renames_the_workflow_renames_it_everywhere(sim_server, tmp_path, caplog):
    """Records, /healthz, /metrics, the alarm's log lines and the change log all follow the new name;
    the reloaded connection still waits for its limiter as serve's does (interactive)."""
    sim_server.reset()
    workflow = tmp_path / "renamed.toml"
    workflow.write_text(_alarmed_workflow(tmp_path, EVERYONE, "before"))
    admin = "admin-token-0123456789"
    settings = ServeSettings(workflow=str(workflow), tokens=[TOKEN], db=str(tmp_path / "rename.db"),
                             crm_url=sim_server.url, environ=ENV, check_dup_default=0,
                             admin_tokens=load_admin_tokens(environ={"DUPCHECK_ADMIN_TOKENS": f"ci:{admin}"}))
    caplog.set_level("WARNING", logger="dupcheck_plugin.engine.alarm")
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        def insert() -> dict:
            phone = fresh_phone()
            r = client.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "1", "phone_number": phone})
            assert r.status_code == 200, r.text
            return client.get("/v1/decisions", params={"auth_token": TOKEN, "phone": phone}).json()["data"]["entries"][-1]

        def reload(text: str) -> dict:
            workflow.write_text(text)
            r = client.post("/admin/api/reload", headers={"authorization": f"Bearer {admin}"})
            assert r.status_code == 200, r.text
            return r.json()

        for _ in range(10):  # one row skips every lead: the alarm goes off, naming the workflow
            insert()
        assert "duplicate alarm for workflow before:" in caplog.text
        assert 'dupcheck_duplicate_alarm{workflow="before"} 1.0' in client.get("/metrics").text

        assert reload(_alarmed_workflow(tmp_path, EVERYONE, "after"))["workflow"] == "after"
        health = client.get("/healthz").json()
        assert health["workflow"] == "after" and health["alarm"]["active"] is True  # same rules: history kept
        metrics = client.get("/metrics").text
        assert 'dupcheck_duplicate_alarm{workflow="after"} 1.0' in metrics and 'workflow="before"' not in metrics
        assert insert()["workflow"] == "after"
        assert server.api.host.nodes["crm"].runtime.interactive is True  # as serve built the first one
        changes = server.api.store.config_changes("after")
        assert "workflow renamed 'before' -> 'after'" in changes[0]["summary"]
        assert 'name = "before"' in changes[-1]["text"]  # the version before the rename can be applied again

        reload(_alarmed_workflow(tmp_path, NOBODY, "after"))  # skips nobody: the alarm clears, in the new name
        caplog.clear()
        for _ in range(10):
            assert insert()["action"] == "created"
        assert "duplicate alarm for workflow after cleared" in caplog.text
        assert 'dupcheck_duplicate_alarm{workflow="after"} 0.0' in client.get("/metrics").text
