"""The "everything is a duplicate" alarm: the window logic on hand-made
records, then a mistyped rule that matches every answer through `run`'s
engine and through `serve` (/healthz, /metrics)."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from dupcheck_plugin.config.problems import ConfigError
from dupcheck_plugin.engine.alarm import AlarmSettings, DuplicateAlarm
from dupcheck_plugin.engine.runner import aiter_items
from dupcheck_plugin.host import Host
from dupcheck_plugin.server import ServeSettings, create_app

from conftest import write_workflow
from test_serve import TOKEN, ServerThread

ENV = {"HUBSPOT_TOKEN": "sim-token"}
DUPLICATE_ROW = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}
# the mistake: gte instead of gt, so "total = 0" (no contact) is a duplicate too
MISTYPED_ROW = {**DUPLICATE_ROW, "match": "gte", "name": "typo"}


def record(row, action="duplicate", checked=True, dnc=False):
    return {"checked": checked, "rules_row": row, "action": action, "dnc_added": dnc}


def feed(alarm, n, every, row=0):
    """n records, one in ``every`` a duplicate of ``row``, the others created by no row."""
    for i in range(n):
        alarm.observe(record(row) if i % every == 0 else record(None, "created"))


def test_a_jump_in_duplicates_raises_it_once_and_a_usual_window_clears_it(caplog):
    alarm = DuplicateAlarm("wf", AlarmSettings(window=100))
    feed(alarm, 1000, every=10)  # 10% duplicates: the usual level
    assert not alarm.active and alarm.status()["usual_duplicate_share"] == 0.1
    feed(alarm, 100, every=1)  # then every lead a duplicate
    # raised as soon as the window crossed usual + 30 points
    assert alarm.active and alarm.reason == "duplicates: 41% of the last 100 CRM answers, usually 10%"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "duplicate alarm for workflow wf" in warnings[0].getMessage()
    feed(alarm, 250, every=10)
    assert not alarm.active and alarm.status()["times_raised"] == 1


def test_a_row_that_skips_every_answer_raises_it_without_history():
    alarm = DuplicateAlarm("wf", AlarmSettings(window=50))
    for _ in range(49):
        alarm.observe(record(2))
    assert not alarm.active  # not a full window yet
    alarm.observe(record(2))
    assert alarm.active and alarm.reason == "row 2 matched every one of the last 50 CRM answers"


def test_after_a_reload_it_carries_the_new_name_and_each_rows_history_follows_the_row(caplog):
    def usual_traffic(alarm, n, unknown=0, known=1):
        """9 in 10 leads unknown to the CRM (created), 1 in 10 known (a duplicate)."""
        for i in range(n):
            alarm.observe(record(known) if i % 10 == 0 else record(unknown, "created"))

    alarm = DuplicateAlarm("wf", AlarmSettings(window=20))
    usual_traffic(alarm, 400)
    assert alarm.follow("wf", AlarmSettings(window=20), {0: 0, 1: 1}) is alarm  # the same table
    # a new row 0 above both: "unknown" is row 1 now, "known" row 2; their history moves with them
    moved = alarm.follow("renamed", AlarmSettings(window=20), {0: 1, 1: 2})
    usual_traffic(moved, 400, unknown=1, known=2)
    assert moved.status()["times_raised"] == 0
    # a row that was edited (no longer in the map) starts without history: a jump of it is seen, under the new name
    edited = moved.follow("renamed", AlarmSettings(window=20), {1: 1})
    for _ in range(20):
        edited.observe(record(2))
    assert edited.active and "duplicate alarm for workflow renamed" in caplog.text
    fresh = edited.follow("renamed", AlarmSettings(window=30), {1: 1, 2: 2})  # new settings: a new alarm
    assert fresh is not edited and fresh.status()["window"] == 0 and not fresh.active


def test_a_reload_maps_each_row_to_where_the_same_row_is_now(tmp_path):
    from dupcheck_plugin.engine.runner import same_rows
    from dupcheck_plugin.host import Workflow

    def load(folder: str, rules: list[dict]) -> Workflow:
        (tmp_path / folder).mkdir()
        return Workflow.load(str(write_workflow(tmp_path / folder, rules)), offline=True)

    unknown = {**DUPLICATE_ROW, "match": "equals", "create_lead": True, "success": True, "name": "unknown"}
    before = load("a", [DUPLICATE_ROW, unknown, MISTYPED_ROW])
    after = load("b", [{**unknown, "name": "not in the CRM"}, {**DUPLICATE_ROW, "add_to_dnc": True}, MISTYPED_ROW])
    assert same_rows(before, after) == {1: 0, 2: 2}  # renamed: the same row; DNC added: another row


def test_usual_answers_do_not_raise_it():
    alarm = DuplicateAlarm("wf", AlarmSettings(window=50))
    for _ in range(200):  # a fresh list: every lead created by the "not in the CRM" row
        alarm.observe(record(1, "created"))
    feed(alarm, 500, every=4)  # 25% duplicates, steady
    for _ in range(500):  # failed calls are not answers
        alarm.observe(record(None, "created", checked=False))
    assert not alarm.active and alarm.status()["times_raised"] == 0


def test_a_row_that_starts_matching_far_more_than_usual_raises_it():
    alarm = DuplicateAlarm("wf", AlarmSettings(window=100))
    for i in range(1000):
        alarm.observe(record(0) if i % 20 == 0 else record(1, "created") if i % 20 == 1 else record(None, "created"))
    for i in range(100):
        alarm.observe(record(1, "created") if i % 2 else record(None, "created"))
    assert alarm.active and alarm.reason == "leads matched by row 1: 36% of the last 100 CRM answers, usually 5%"


def leads(n):
    return aiter_items((i, {"phone_number": f"555{6_000_000 + i:07d}"}, None) for i in range(n))


def test_a_rule_that_matches_every_answer_raises_the_alarm_in_a_run(tmp_path, crm_sim, caplog):
    wf = write_workflow(tmp_path, [MISTYPED_ROW], name="typo_wf")

    async def go():
        async with Host.open(str(wf), db=str(tmp_path / "d.db"), crm_url=crm_sim.url, environ=ENV) as host:
            await host.run(leads(250))
            return host.alarm.status()

    status = asyncio.run(go())
    assert status["active"] and status["reason"] == "row 0 matched every one of the last 200 CRM answers"
    assert any(r.levelno == logging.WARNING and "duplicate alarm for workflow typo_wf" in r.getMessage()
               for r in caplog.records)


def test_the_right_rule_over_the_same_leads_does_not(tmp_path, crm_sim):
    wf = write_workflow(tmp_path, [DUPLICATE_ROW], name="right_wf")

    async def go():
        async with Host.open(str(wf), db=str(tmp_path / "d.db"), crm_url=crm_sim.url, environ=ENV) as host:
            await host.run(leads(250))
            return host.alarm.status()

    status = asyncio.run(go())
    assert not status["active"] and status["window"] == 200 and status["duplicate_share"] == 0


def test_serve_shows_the_alarm_in_healthz_and_metrics(tmp_path, crm_sim):
    wf = write_workflow(tmp_path, [MISTYPED_ROW], name="typo_serve")
    settings = ServeSettings(workflow=str(wf), tokens=[TOKEN], db=str(tmp_path / "s.db"), crm_url=crm_sim.url,
                             environ=ENV)
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/healthz").json()["alarm"]["active"] is False
        assert 'dupcheck_duplicate_alarm{workflow="typo_serve"} 0.0' in c.get("/metrics").text
        for i in range(200):
            r = c.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "1", "phone_number": f"555{6_100_000 + i:07d}"})
            assert r.json()["code"] == 6009
        alarm = c.get("/healthz").json()["alarm"]
        metrics = c.get("/metrics").text
    assert alarm["active"] and "row 0 matched every one" in alarm["reason"]
    assert 'dupcheck_duplicate_alarm{workflow="typo_serve"} 1.0' in metrics
    assert 'dupcheck_duplicate_alarms_raised_total{workflow="typo_serve"} 1.0' in metrics
    assert 'dupcheck_duplicate_share{workflow="typo_serve"} 1.0' in metrics


def test_the_workflow_sets_the_window(tmp_path, crm_sim):
    wf = write_workflow(tmp_path, [MISTYPED_ROW], name="small_window")
    wf.write_text(wf.read_text().replace("[defaults]", "[alarm]\nwindow = 20\njump = 0.5\n[defaults]"))

    async def go():
        async with Host.open(str(wf), db=str(tmp_path / "d.db"), crm_url=crm_sim.url, environ=ENV) as host:
            await host.run(leads(25))
            return host.alarm.status()

    status = asyncio.run(go())
    assert status["active"] and status["reason"] == "row 0 matched every one of the last 20 CRM answers"


def test_a_bad_alarm_table_is_a_config_error(tmp_path):
    wf = write_workflow(tmp_path, [DUPLICATE_ROW], name="bad_alarm")
    wf.write_text(wf.read_text().replace("[defaults]", "[alarm]\nwindow = 5\n[defaults]"))
    with pytest.raises(ConfigError, match=r"alarm\.window: 5 is less than the minimum of 10"):
        Host.open(str(wf), db=str(tmp_path / "d.db"), environ=ENV)
