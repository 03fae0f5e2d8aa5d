"""CPU per lead with batching: ``dupcheck run`` asking the simulator for 100
leads per Salesforce request, beside the same run unbatched and bare aiohttp's
CPU per request, all against one simulator in its own process with its limits
off (only the dupcheck or bare client process's CPU is counted). Alternated x3.

Before a figure is printed, the simulator's request count proves the batched
run really batched (at least 2/3 of 100 leads per request on average; with no
limiter some batches leave short) and the unbatched one sent one per lead.

Each process's start-up and exit (imports, the adaptor's compile, the store's
opening; bare aiohttp's imports weigh about as much) is in its whole-process
figure, the one the target is read on (the issue's "process
CPU per lead"). Each rep also runs every command on one lead, and the marginal
figure beside it takes that run's CPU off: (CPU of N leads - CPU of one lead) /
(N - 1), as :mod:`.bench_instructions` counts: what a lead costs in a long run
or in ``serve``, where start-up is spread over many more leads.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

from .abtest import Series, run_process, spread
from .common import write_csv
from .sim_process import simulator
from .stubbed import ENV, bare_cmd, dupcheck_cmd

TARGET_US = 150  # issue 14: per-lead CPU with 100 leads per request
PER_REQUEST = 100
IN_FLIGHT = 64
BATCHED_IN_FLIGHT = 4 * PER_REQUEST  # leads waiting to fill the batches (run's default left more short ones)
WORKFLOW = """\
name = "bench_salesforce"
[defaults]
phone_code = "1"

[[nodes]]
id = "salesforce"
type = "convoso_connect"
config = {{ adaptor = "salesforce_soql", timeout = 30, retry = {{ attempts = 1 }}, limits = false, batch = {batch} }}

[[nodes]]
id = "dupcheck"
type = "api_duplicate_check"
[nodes.config]
connect = "salesforce"
rules = [ {{ name = "known", key = "totalSize", match = "gt", value = 0, create_lead = false, add_to_dnc = false, success = false }} ]
"""


def salesforce_requests(url: str) -> int:
    return httpx.get(url + "/_sim/stats").json()["vendors"]["salesforce"]["requests"]


def main(n: int | None = None) -> None:
    n = n or int(os.environ.get("DUPCHECK_BENCH_BATCH_LEADS", "20000"))
    batched, unbatched = Series(f"{PER_REQUEST} leads/request", n), Series("1 lead/request", n)
    bare = Series("bare aiohttp", n)
    env = {**ENV, "SALESFORCE_TOKEN": "bench"}
    with tempfile.TemporaryDirectory() as d, simulator() as url:
        tmp = Path(d)
        # no email: 100 leads' phones fit in Salesforce's URL limit, with emails a batch splits in two
        leads = write_csv(tmp / "leads.csv", n, email=False)
        one_lead = write_csv(tmp / "one.csv", 1, email=False)
        workflows = {}
        for name, batch in (("batched", f"{{ max_leads = {PER_REQUEST} }}"), ("unbatched", "false")):
            workflows[name] = tmp / f"{name}.toml"
            workflows[name].write_text(WORKFLOW.format(batch=batch))

        def dupcheck(name: str, series: Series, requests_allowed: range, in_flight: int) -> int:
            before = salesforce_requests(url)
            db = tmp / f"{name}{len(series.samples)}.db"
            series.samples.append(run_process(dupcheck_cmd(workflows[name], leads, db, url, in_flight), env=env))
            asked = salesforce_requests(url) - before
            assert asked in requests_allowed, f"{name} run sent {asked} requests for {n} leads"
            series.one_unit.append(run_process(dupcheck_cmd(workflows[name], one_lead, tmp / f"one_{db.name}", url,
                                                            in_flight), env=env))
            return asked

        sent = []
        for _ in range(3):
            bare.samples.append(run_process(bare_cmd(url, leads, IN_FLIGHT)))
            bare.one_unit.append(run_process(bare_cmd(url, one_lead, IN_FLIGHT)))
            dupcheck("unbatched", unbatched, range(n, n + 1), IN_FLIGHT)
            # with no limiter a batch takes what is queued when its dispatcher runs: most are full, some short
            sent.append(dupcheck("batched", batched, range(-(-n // PER_REQUEST), n * 3 // (2 * PER_REQUEST) + 1),
                                 BATCHED_IN_FLIGHT))

    met = "met" if batched.cpu_us <= TARGET_US else "NOT met"  # the figure: the whole process's CPU
    print(f"CPU per lead with batching, {n:,} leads, simulator (own process, limits off), "
          f"{IN_FLIGHT} in flight ({BATCHED_IN_FLIGHT} batched), x3 alternated (median [min-max]), load {batched.load:.1f}:")
    print(f"  {'CPU, us a lead (bare: a request)':<36} {'whole process':>18} {'start-up taken off':>20} "
          f"{'a one-lead run':>15}")
    for series in (bare, unbatched, batched):
        one_ms = statistics.median(s.cpu_s for s in series.one_unit) * 1e3
        print(f"  {series.name:<36} {spread(series.cpu_per_unit_us()):>18} {spread(series.steady_cpu_per_unit_us()):>20} "
              f"{one_ms:>12.0f} ms")
    print(f"  batched runs sent {min(sent)}-{max(sent)} requests: {n / max(sent):.0f}-{n / min(sent):.0f} leads/request")
    print(f"  batched: {batched.cpu_us / unbatched.cpu_us:.2f}x the unbatched CPU per lead, "
          f"{batched.cpu_us / bare.cpu_us:.2f}x a bare request (start-up taken off: "
          f"{batched.steady_cpu_us / unbatched.steady_cpu_us:.2f}x, {batched.steady_cpu_us / bare.steady_cpu_us:.2f}x); "
          f"target <= {TARGET_US} us/lead, whole process: {met}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
