"""Open files: run, serve and worker raise the soft limit; run fits its CRM connections
under the limit it has, rather than fail connects with EMFILE (read as the CRM's errors)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from conftest import write_workflow
from dupcheck_plugin import fdlimit
from dupcheck_plugin.fdlimit import RESERVE


@pytest.mark.parametrize("caps, limit, lowered", [
    ({"crm": 3000}, 1024, {"crm": 1024 - RESERVE}),
    ({"crm": 64}, 1024, {}),  # fits
    ({"crm": 3000}, None, {}),  # no limit to fit
    ({"a": 600, "b": 200, "c": 10}, 264, {"a": 148, "b": 49, "c": 2}),  # each in proportion
    ({"a": 500, "b": 500}, 10, {"a": 1, "b": 1}),  # a connection each, whatever the limit
])
def test_connection_caps_are_lowered_in_proportion_to_fit_the_open_files(caps, limit, lowered):
    assert fdlimit.fit(caps, limit) == lowered


def _limited(soft: int, hard: int):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_soft_limit_is_raised_to_the_hard_one():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    soft = 256 if hard == resource.RLIM_INFINITY else min(256, hard // 2)  # below the hard one on any machine
    code = ("import resource; from dupcheck_plugin import fdlimit; before = resource.getrlimit(resource.RLIMIT_NOFILE);"
            "now = fdlimit.raise_soft_limit(); print(before[0], now, resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          preexec_fn=_limited(soft, hard))
    before, now, after = (int(x) for x in done.stdout.split())
    assert before == soft and now == after > soft, done.stderr


def test_a_run_under_a_low_open_files_limit_caps_its_connections_and_decides_every_lead(crm_sim, tmp_path,
                                                                                        hubspot_env):
    """300 ms a CRM answer and 800 leads in flight, 256 open files allowed (soft and hard):
    before, connects beyond the limit failed with EMFILE (CRM 'connection' errors, the
    circuit breaker opened, the rules' on_error decided), then the store could not open."""
    from dupcheck_plugin.sim import Knobs

    crm_sim.set_knobs(Knobs(latency_ms=300))
    wf = write_workflow(tmp_path, [{"key": "total", "match": "gt", "value": 0, "create_lead": False,
                                          "add_to_dnc": False, "success": False}],
                        connect={"timeout": 30})
    leads = tmp_path / "leads.csv"
    leads.write_text("phone_number\n" + "".join(f"555{4000000 + i:07d}\n" for i in range(800)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", "run", str(wf), "--leads", str(leads),
                           "--db", str(tmp_path / "d.db"), "--out", str(out), "--crm-url", crm_sim.url,
                           "--concurrency", "800", "--no-progress"],
                          capture_output=True, text=True, timeout=120, preexec_fn=_limited(256, 256))
    assert done.returncode == 0, done.stderr
    assert (f"note: node 'crm' is capped at {256 - RESERVE} connections, not 800: this process may open 256 files"
            in done.stderr)
    assert "CRM errors: none" in done.stderr and f"connections: crm {256 - RESERVE}" in done.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 800 and all(r["crm"]["error"] is None and r["decided_by"] == "default_status"
                                       for r in records)


# a process that opens the store, then uses up its open files, then decides leads: each CRM
# connect fails with EMFILE, which is this process's shortage, not the CRM's
_OUT_OF_FILES_RUN = """
import asyncio, json, os, resource, sys
import dupcheck_plugin.http.h1  # imported at the first call: before the files are used up
from dupcheck_plugin.host import Host

async def go():
    async with Host.open(sys.argv[1], db=sys.argv[2], environ={"HUBSPOT_TOKEN": "t"}) as host:
        await host.decide({"phone_number": ""})  # refused, no CRM call: the store's files are open now
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 4096), hard))
        held = []
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        try:
            records = [await host.decide({"phone_number": f"5553{i:06d}"}) for i in range(8)]
        finally:
            for fd in held:
                os.close(fd)
        print(json.dumps({"records": [r["crm"] for r in records], "breaker": host.health()["crm"]["breaker"]}))

asyncio.run(go())
"""


def test_a_connect_that_finds_no_file_left_is_not_counted_against_the_crm(crm_sim, tmp_path):
    """EMFILE at connect: the lead's CRM error says it is this process's limit, and the
    circuit breaker (2 failures) stays closed: before, it opened against a healthy CRM
    and every lead after it was decided without a call for its cool-down."""
    wf = write_workflow(tmp_path, [{"key": "total", "match": "gt", "value": 0, "create_lead": False,
                                    "add_to_dnc": False, "success": False}],
                        connect={"url": crm_sim.url, "retry": {"attempts": 2, "backoff": 0.001},
                                 "breaker": {"failures": 2, "cool_down": 600}})
    done = subprocess.run([sys.executable, "-c", _OUT_OF_FILES_RUN, str(wf), str(tmp_path / "d.db")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out["records"]) == 8
    for crm in out["records"]:
        assert crm["error"] == "connection" and crm["attempts"] == 2, crm
        assert "too many open files in dupcheck's process" in crm["error_detail"], crm
    # not opened, nothing refused (it still waits for its first answer: no call reached the CRM)
    assert out["breaker"]["times_opened"] == 0 and out["breaker"]["calls_refused"] == 0, out["breaker"]
