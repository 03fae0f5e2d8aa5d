"""``dupcheck serve`` under load, and the latency it adds over the CRM itself.

A load tool (``wrk``, Debian's package) holds 200 connections open against
``dupcheck serve`` inserting leads with distinct phones; the serve process
calls the minimal stub CRM (50 ms). The baseline is the same ``wrk`` against
the stub directly with the same 200 connections. Alternated A B A B, three
times; p50/p99 from wrk's latency distribution.

200 closed-loop clients ask more than ``serve`` can do on a small machine: it
is saturated, and its p99 is mostly the queue in front of it. So the same is
measured with :data:`LIGHT_CLIENTS` clients too, an offered rate well below
its capacity (each client waits for its answer, 50 ms at least): there the
added latency is what one request costs, not the queue. Both are printed,
each labelled.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from .stubbed import DUPCHECK, ENV, stub, write_workflow

CLIENTS = 200
LIGHT_CLIENTS = 8  # at 50 ms per answer at most 160 requests/s: below serve's capacity
SECONDS = 8
STUB_LATENCY_MS = 50

# one distinct phone per request (wrk threads get disjoint ranges)
INSERT_LUA = """
-- base is a global: setup's thread:set writes the thread's globals (a local here would shadow it)
local counter = 0
base = 0
local threads = 0
function setup(thread)
  thread:set("base", 2000000 + threads * 3000000)
  threads = threads + 1
end
function request()
  counter = counter + 1
  local body = "auth_token=bench&list_id=1000&check_dup=0&first_name=F&last_name=L&phone_number=555" .. (base + counter)
  return wrk.format("POST", "/v1/leads/insert", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
"""

SEARCH_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"limit":10,"filterGroups":[{"filters":[{"propertyName":"phone","operator":"EQ","value":"+15552000001"}]}]}'
"""

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNIT_MS[unit]


def wrk(url: str, script: Path, clients: int = CLIENTS) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{SECONDS}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s*(50|99)%\s+([\d.]+(?:us|ms|s))\s*$", out, re.M))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if failed or rate is None or set(pct) != {"50", "99"}:
        raise RuntimeError(f"wrk run failed or could not be read:\n{out}")
    # wrk counts requests still waiting when the run ends as timeouts: say so rather than hide them
    timeouts = re.search(r"timeout (\d+)", out)
    return {"p50": _ms(pct["50"]), "p99": _ms(pct["99"]), "rate": float(rate.group(1)),
            "timeouts": int(timeouts.group(1)) if timeouts else 0, "load": os.getloadavg()[0]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _warm_up(url: str, n: int = 8) -> None:
    """A few inserts before measuring (phones outside wrk's ranges): the first
    one opens the CRM connection and finishes imports; the stub is warm too."""
    for i in range(n):
        body = f"auth_token=bench&list_id=1000&check_dup=0&first_name=W&last_name=U&phone_number=555900000{i}"
        req = urllib.request.Request(url + "/v1/leads/insert", data=body.encode(),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        urllib.request.urlopen(req, timeout=30).read()


@contextmanager
def serve(workflow: Path, crm_url: str, db: Path):
    port = _free_port()
    proc = subprocess.Popen(DUPCHECK + ["serve", str(workflow), "--port", str(port), "--db", str(db),
                                        "--crm-url", crm_url, "--log-level", "error"],
                            env={**ENV, "DUPCHECK_API_TOKENS": "bench"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("dupcheck serve did not start") from None
                time.sleep(0.1)
        _warm_up(url)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    if shutil.which("wrk") is None:
        print("bench_serve: skipped, wrk is not installed (make bench installs it)")
        return
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as d, stub(STUB_LATENCY_MS) as crm:
        tmp = Path(d)
        insert, search = tmp / "insert.lua", tmp / "search.lua"
        insert.write_text(INSERT_LUA)
        search.write_text(SEARCH_LUA)
        workflow = write_workflow(tmp)
        for rep in range(3):
            for clients in (CLIENTS, LIGHT_CLIENTS):
                runs.setdefault(("direct", clients), []).append(
                    wrk(crm + "/crm/v3/objects/contacts/search", search, clients))
                with serve(workflow, crm, tmp / f"serve{rep}-{clients}.db") as url:
                    runs.setdefault(("serve", clients), []).append(wrk(url, insert, clients))

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    def fmt(rows, key):
        values = [r[key] for r in rows]
        return f"{statistics.median(values):,.1f} [{min(values):,.1f}-{max(values):,.1f}]"

    print(f"dupcheck serve, stub CRM at {STUB_LATENCY_MS} ms, wrk {SECONDS} s per run, closed loop, "
          f"A/B alternated x3 (median [min-max]):")
    for clients, label in ((CLIENTS, "saturated: serve is CPU-bound, its p99 is mostly queueing"),
                           (LIGHT_CLIENTS, "unsaturated: below serve's capacity, the per-request overhead")):
        direct, served = runs[("direct", clients)], runs[("serve", clients)]
        print(f" {clients} connections ({label}):")
        print(f"  stub directly:  {fmt(direct, 'rate'):>26} req/s      p50 {fmt(direct, 'p50'):>22} ms  "
              f"p99 {fmt(direct, 'p99'):>22} ms  (load {med(direct, 'load'):.1f})")
        print(f"  dupcheck serve: {fmt(served, 'rate'):>26} inserts/s  p50 {fmt(served, 'p50'):>22} ms  "
              f"p99 {fmt(served, 'p99'):>22} ms  (load {med(served, 'load'):.1f})")
        print(f"  added by serve: p50 +{med(served, 'p50') - med(direct, 'p50'):,.1f} ms, "
              f"p99 +{med(served, 'p99') - med(direct, 'p99'):,.1f} ms; "
              f"{med(served, 'rate') / med(direct, 'rate'):.2f}x the stub's request rate"
              + (f"; wrk timeouts: {sum(r['timeouts'] for r in served)}" if any(r["timeouts"] for r in served) else ""))


if __name__ == "__main__":
    main()
