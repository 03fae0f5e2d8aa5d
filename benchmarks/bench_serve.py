"""``dupcheck serve`` under load, and the latency it adds over the CRM itself.

A load tool (``wrk``, Debian's package) holds :data:`CLIENTS` (200)
connections open against ``dupcheck serve`` inserting leads with distinct
phones; the serve process calls the minimal stub CRM (50 ms). The baseline is
the same ``wrk`` against the stub directly with the same 200 connections.
Alternated stub / serve, three times; p50/p99 from wrk's latency distribution.
Two figures, each labelled:

* **saturated**: 200 closed-loop clients, each sending its next request as
  soon as it has its answer. That asks more than ``serve`` can do on a small
  machine: the figure is its capacity (inserts/s) and its CPU per insert;
  its latency is mostly the queue in front of it.
* **paced**: the same 200 connections open, but together they send a fixed
  :data:`PACED_RATE` requests/s (wrk's ``delay()`` hands each request the
  next slot of an even schedule), the same rate to the stub and to serve,
  well below serve's capacity. Latency is timed from the request's first
  byte, so the "added" p50/p99 is what one request costs in serve, not the
  queue. Beside it, serve's own count of that time from its ``/metrics``
  (``dupcheck_insert_own_seconds``: the handler's time less the CRM call),
  which tells the part spent in dupcheck from the part around it (the HTTP
  server, the kernel, the wait for a core).

CPU per request is a process's user + system time (``/proc``) over a run,
divided by the requests wrk completed: serve's per insert, and the stub's
per request when wrk calls it directly. Paced, each request finds its
processes idle; the stub's figure against its saturated one shows what
waking an idle process costs on the machine at hand, which serve pays
at every hop of an insert too (the request, the CRM's answer, the store
writer's thread and back).

Serve's workflow is the ``run`` benchmarks' with ``max_connections`` set to
:data:`CLIENTS`: the stub baseline gets 200 connections, and with the
product's default of 64 per CRM node the saturated run measured that pool
(at most 64 calls per 50 ms, ~1,280/s; 1,070-1,130 inserts/s at 64 against
1,580-1,850 at 200 on the same tree, same session), not serve.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from .stubbed import DUPCHECK, ENV, stub, write_workflow

CLIENTS = 200
PACED_RATE = 100  # requests/s from all 200 clients together: each sends one every 2 s
SECONDS = 8
STUB_LATENCY_MS = 50
WRK_THREADS = 2

# distinct phones: each wrk thread of each run its own range of a million (%(first)d: the run's first);
# base is a global: setup's thread:set writes the thread's globals (a local here would shadow it)
INSERT_LUA = """
local counter = 0
base = 0
local threads = 0
function setup(thread)
  thread:set("base", %(first)d + threads * 1000000)
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

# An even schedule per wrk thread: each request takes the thread's next slot (interval_ms apart) and
# waits for it; a slot already past is sent at once. wrk's Lua is LuaJIT: its ffi reads the clock.
PACING_LUA = """
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } pacing_timespec;
           int clock_gettime(int clock_id, pacing_timespec *tp); ]]
local ts = ffi.new("pacing_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval_ms = %(interval_ms)f
local next_slot = nil
function delay()
  local now = now_ms()
  if next_slot == nil then next_slot = now end
  local slot = next_slot
  next_slot = next_slot + interval_ms
  if slot < now then return 0 end
  return math.floor(slot - now)
end
"""

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def write_serve_workflow(tmp: Path) -> Path:
    """The bench workflow with as many CRM connections as wrk has clients (see the module's docstring)."""
    path = write_workflow(tmp)
    text = path.read_text()
    pooled = text.replace("batch = false }", f"batch = false, max_connections = {CLIENTS} }}")
    if pooled == text:
        raise RuntimeError("bench_serve: the bench workflow's Connect config changed; set max_connections again")
    path.write_text(pooled)
    return path


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNIT_MS[unit]


def paced(script: str, rate: float) -> str:
    """``script`` with a ``delay()`` that holds all connections together to ``rate`` requests/s."""
    return script + PACING_LUA % {"interval_ms": 1000.0 * WRK_THREADS / rate}


def _cpu_s(pid: int | None) -> float:
    """A process's user + system CPU so far (Linux ``/proc``)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, script: Path, pid: int | None = None) -> dict[str, float]:
    """One wrk run; with ``pid``, that process's CPU per completed request too."""
    cpu = _cpu_s(pid)
    out = subprocess.run(["wrk", f"-t{WRK_THREADS}", f"-c{CLIENTS}", f"-d{SECONDS}s", "--latency", "-s", str(script),
                          url], capture_output=True, text=True, check=True).stdout
    cpu = _cpu_s(pid) - cpu
    pct = dict(re.findall(r"^\s*(50|99)%\s+([\d.]+(?:us|ms|s))\s*$", out, re.M))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if failed or rate is None or done is None or set(pct) != {"50", "99"}:
        raise RuntimeError(f"wrk run failed or could not be read:\n{out}")
    # wrk counts requests still waiting when the run ends as timeouts: say so rather than hide them
    timeouts = re.search(r"timeout (\d+)", out)
    return {"p50": _ms(pct["50"]), "p99": _ms(pct["99"]), "rate": float(rate.group(1)),
            "cpu_us": cpu / max(1, int(done.group(1))) * 1e6,
            "timeouts": int(timeouts.group(1)) if timeouts else 0, "load": os.getloadavg()[0]}


_OWN_BUCKET = re.compile(r'^dupcheck_insert_own_seconds_bucket\{le="([^"]+)"\} ([\d.e+]+)$', re.M)


def own_buckets(url: str) -> list[tuple[float, float]]:
    """serve's ``dupcheck_insert_own_seconds`` histogram: (bound in s, inserts at or under it so far)."""
    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    return [(float(le), float(n)) for le, n in _OWN_BUCKET.findall(text)]


def own_quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float:
    """The bucket bound (ms) under which ``q`` of the inserts between two scrapes fell: an upper
    bound of that quantile of serve's own time, as fine as the histogram's buckets."""
    counts = [(le, n - m) for (le, n), (_, m) in zip(after, before)]
    total = counts[-1][1]
    return next((le * 1000 for le, n in counts if n >= q * total), float("inf")) if total else float("nan")


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


def _idle(url: str, timeout_s: float = 60.0) -> None:
    """Wait until serve has no insert in flight."""
    deadline = time.monotonic() + timeout_s
    while json.loads(urllib.request.urlopen(url + "/healthz", timeout=30).read())["inserts_in_flight"]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"dupcheck serve still busy {timeout_s:g} s after wrk stopped")
        time.sleep(0.1)


@contextmanager
def serve(workflow: Path, crm_url: str, db: Path, env: dict[str, str] | None = None, cwd: str | None = None):
    """A ``dupcheck serve`` process; yields (its URL, its pid). ``cwd``: where it runs
    (``python -m`` imports the package from there first, before ``PYTHONPATH``)."""
    port = _free_port()
    proc = subprocess.Popen(DUPCHECK + ["serve", str(workflow), "--port", str(port), "--db", str(db),
                                        "--crm-url", crm_url, "--log-level", "error"],
                            env={**(env or ENV), "DUPCHECK_API_TOKENS": "bench"}, cwd=cwd,
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
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def measure(reps: int = 3, env: dict[str, str] | None = None) -> dict[tuple[str, str], list[dict[str, float]]]:
    """{(stub|serve, saturated|paced): one wrk figure per repetition}; ``env``: serve's environment."""
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as d, stub(STUB_LATENCY_MS) as crm:
        tmp = Path(d)
        scripts = {}
        for mode, first, pace in (("saturated", 2_000_000, lambda text: text),
                                  ("paced", 5_000_000, lambda text: paced(text, PACED_RATE))):
            for name, text in (("insert", INSERT_LUA % {"first": first}), ("search", SEARCH_LUA)):
                scripts[name, mode] = tmp / f"{name}-{mode}.lua"
                scripts[name, mode].write_text(pace(text))
        workflow = write_serve_workflow(tmp)
        search_url = crm + "/crm/v3/objects/contacts/search"
        for rep in range(reps):
            for mode in ("saturated", "paced"):
                runs.setdefault(("stub", mode), []).append(wrk(search_url, scripts["search", mode], crm.pid))
            with serve(workflow, crm, tmp / f"serve{rep}.db", env) as (url, pid):
                for mode in ("saturated", "paced"):
                    before = own_buckets(url)
                    figures = wrk(url, scripts["insert", mode], pid)
                    _idle(url)  # the saturated run's queue (its callers gone) drains before the paced run
                    after = own_buckets(url)
                    figures.update(own_p50=own_quantile(before, after, 0.5), own_p99=own_quantile(before, after, 0.99))
                    runs.setdefault(("serve", mode), []).append(figures)
    return runs


def report(runs: dict[tuple[str, str], list[dict[str, float]]]) -> None:
    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    def fmt(rows, key):
        values = [r[key] for r in rows]
        return f"{statistics.median(values):,.1f} [{min(values):,.1f}-{max(values):,.1f}]"

    n = len(runs[("serve", "saturated")])
    print(f"dupcheck serve, stub CRM at {STUB_LATENCY_MS} ms, wrk {CLIENTS} connections, {SECONDS} s per run, "
          f"stub / serve alternated x{n} (median [min-max]):")
    for mode, label in (("saturated", "saturated, closed loop: serve's capacity; its p99 is mostly queueing"),
                        ("paced", f"paced at {PACED_RATE} req/s in all, below capacity: what one request costs")):
        direct, served = runs[("stub", mode)], runs[("serve", mode)]
        print(f" {label}:")
        print(f"  stub directly:  {fmt(direct, 'rate'):>26} req/s      p50 {fmt(direct, 'p50'):>22} ms  "
              f"p99 {fmt(direct, 'p99'):>22} ms  (load {med(direct, 'load'):.1f})")
        print(f"  dupcheck serve: {fmt(served, 'rate'):>26} inserts/s  p50 {fmt(served, 'p50'):>22} ms  "
              f"p99 {fmt(served, 'p99'):>22} ms  (load {med(served, 'load'):.1f})")
        extra = ""
        if mode == "saturated":
            extra = f"; {med(served, 'rate') / med(direct, 'rate'):.2f}x the stub's request rate"
        elif med(served, "rate") < 0.95 * PACED_RATE:
            extra = f"; serve did not keep up with {PACED_RATE} req/s: the latency includes a queue"
        timeouts = sum(r["timeouts"] for r in served)
        print(f"  added by serve: p50 {med(served, 'p50') - med(direct, 'p50'):+,.1f} ms, "
              f"p99 {med(served, 'p99') - med(direct, 'p99'):+,.1f} ms" + extra
              + (f"; wrk timeouts: {timeouts}" if timeouts else ""))
        # where the added time is: in dupcheck's handler (saturated: with the queue inside it), or around it
        print(f"  of which in serve's handler, the CRM call left out (its /metrics, bucket bounds): "
              f"p50 <= {fmt(served, 'own_p50')} ms, p99 <= {fmt(served, 'own_p99')} ms")
        # paced, each request finds its processes idle: what waking costs on this machine shows in the
        # stub's own CPU per request against the saturated run's, as much as in serve's
        print(f"  CPU per request: stub {fmt(direct, 'cpu_us')} us, serve {fmt(served, 'cpu_us')} us per insert"
              + ("" if mode == "saturated" else
                 f" ({med(direct, 'cpu_us') / med(runs[('stub', 'saturated')], 'cpu_us'):.1f}x and "
                 f"{med(served, 'cpu_us') / med(runs[('serve', 'saturated')], 'cpu_us'):.1f}x saturated's: "
                 f"a request that wakes an idle process costs more)"))


def main() -> None:
    if shutil.which("wrk") is None:
        print("bench_serve: skipped, wrk is not installed (make bench installs it)")
        return
    report(measure())


if __name__ == "__main__":
    main()
