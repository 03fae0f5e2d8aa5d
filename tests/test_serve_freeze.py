"""No rule or template freezes `serve` (issue 10): a ReDoS rule and a runaway
template are in flight while /healthz keeps answering and other inserts are decided."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from conftest import write_workflow
from dupcheck_plugin.server import ServeSettings, create_app
from dupcheck_plugin.sim import SimulatorThread
from test_serve import ServerThread

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "freeze-token-0123456789"
EVIL = "a" * 5000 + "!"  # (a+)+$ against this backtracks for ever in Python's re
REDOS_PHONE = "+15550109901"
# the runaway template, reached only by a lead named "boom" (so `check` passes it)
RUNAWAY = ("{% if first_name == 'boom' %}{% for a in 'x'*100000 %}{% for b in 'x'*100000 %}"
           "{% endfor %}{% endfor %}{% endif %}")
# a generous bound per probe: the machine running the tests is shared. Without the
# fixes a probe waits for ever (the event loop is frozen).
PROBE_BOUND_S = 1.0


def adaptor_with_runaway_leaf(dir_: Path) -> Path:
    text = (ROOT / "adaptors" / "hubspot_contacts_search.toml").read_text()
    text = text.replace('Accept = "application/json"\n', f'Accept = "application/json"\nX-Note = "{RUNAWAY}"\n')
    text = text.replace('email = { mapped_to = "email" }\n', 'email = { mapped_to = "email" }\nfirst_name = "first_name"\n')
    text = text.replace("#:schema ../schemas/", f"#:schema {ROOT}/schemas/")
    path = dir_ / "runaway.toml"
    path.write_text(text)
    return path


def test_a_redos_rule_and_a_runaway_template_do_not_freeze_serve(tmp_path):
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("id,phone,email,firstname,lastname,lifecyclestage,mobilephone,dnc\n"
                        f"901,{REDOS_PHONE},evil@example.com,{EVIL},Evil,lead,,false\n")
    rule = {"name": "evil", "key": "results.0.properties.firstname", "match": "regex", "value": "(a+)+$",
            "create_lead": False, "add_to_dnc": False, "success": False}
    wf = write_workflow(tmp_path, [rule], adaptor=str(adaptor_with_runaway_leaf(tmp_path)))
    with SimulatorThread(contacts) as sim:
        settings = ServeSettings(workflow=str(wf), tokens=[TOKEN], db=str(tmp_path / "s.db"), crm_url=sim.url,
                                 environ={"HUBSPOT_TOKEN": "sim-token"})
        with ServerThread(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
            bad_started, bad_done = threading.Event(), threading.Event()

            def insert(params: dict) -> dict:
                r = client.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "1", **params})
                assert r.status_code == 200, r.text
                return r.json()

            def bad_leads() -> list[dict]:
                bad_started.set()
                try:
                    with ThreadPoolExecutor(8) as pool:
                        leads = [{"phone_number": f"555011{n:04d}", "first_name": "boom"} for n in range(40)]
                        leads += [{"phone_number": REDOS_PHONE, "check_dup": "0"}] * 40
                        return list(pool.map(insert, leads))
                finally:
                    bad_done.set()

            with ThreadPoolExecutor(1) as runner:
                bad = runner.submit(bad_leads)
                assert bad_started.wait(10)
                probes: list[float] = []
                good: list[dict] = []
                n = 0
                while not bad_done.is_set():
                    t0 = time.perf_counter()
                    r = client.get("/healthz")
                    probes.append(time.perf_counter() - t0)
                    assert r.status_code == 200
                    assert probes[-1] < PROBE_BOUND_S, f"/healthz took {probes[-1]:.3f}s while bad leads were in flight"
                    # an unrelated lead is decided meanwhile
                    good.append(insert({"phone_number": f"555012{n:04d}", "first_name": "Ann"}))
                    n += 1
                results = bad.result()
            assert probes, "no probe ran while the bad leads were in flight"
            print(f"\n/healthz while bad leads were in flight: {len(probes)} probes, "
                  f"max {max(probes) * 1000:.1f} ms, median {sorted(probes)[len(probes) // 2] * 1000:.1f} ms")
            assert all(g["success"] is True for g in good)
            runaway, redos = results[:40], results[40:]
            # the runaway lead fails its own render (unrenderable lead: rejected, 6023); the ReDoS row is
            # evaluated against 'aaa...a!' and (rightly) does not match: no row, the lead is created
            assert {(r["success"], r["code"]) for r in runaway} == {(False, 6023)}
            assert {(r["success"], r.get("row")) for r in redos} == {(True, None)}
