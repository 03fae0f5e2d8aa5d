"""``dupcheck run`` against bare aiohttp requests, both whole processes.

Same minimal stub CRM (its own process), same lead file, same number of
requests and connections in flight; alternated A B A B, three times, medians
with [min-max]. Reports leads/s over the baseline's requests/s, and process
CPU (user + system) per lead over the baseline's CPU per request.

Both figures are whole processes, start-up included, as a user meets them.
Start-up (imports, loading the workflow) is a fixed cost that a longer file
hides, so each case also measures both commands on a one-lead file and
prints the steady state beside the whole: (CPU of N leads - CPU of 1 lead) /
(N - 1) per lead, and (N - 1) / (wall of N - wall of 1) leads/s.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .abtest import Series, alternate, run_process, spread
from .common import write_csv
from .stubbed import ENV, bare_cmd, dupcheck_cmd, stub, write_workflow

CASES = ((0, 64), (0, 256), (50, 64), (50, 256))


@dataclass
class Case:
    bare: Series
    ours: Series
    bare_start: Series  # the same commands on a one-lead file: start-up and exit
    ours_start: Series


def steady(whole: Series, start: Series) -> tuple[float, float]:
    """(leads or requests/s, CPU us each) once started: the one-lead run taken off."""
    n = whole.units - 1
    wall = statistics.median(s.wall_s for s in whole.samples) - statistics.median(s.wall_s for s in start.samples)
    cpu = statistics.median(s.cpu_s for s in whole.samples) - statistics.median(s.cpu_s for s in start.samples)
    return n / wall, cpu / n * 1e6


def measure(n: int, latency_ms: int, in_flight: int, tmp: Path, reps: int = 3) -> Case:
    workflow = write_workflow(tmp)
    case = Case(Series("bare aiohttp", n), Series("dupcheck run", n), Series("bare, 1 lead", 1),
                Series("dupcheck, 1 lead", 1))
    runs = iter(range(1_000_000))

    with stub(latency_ms) as url:
        def bare_run(leads: Path):
            return lambda: run_process(bare_cmd(url, leads, in_flight))

        def dupcheck_run(leads: Path):
            def go():
                db = tmp / f"run{next(runs)}.db"  # a fresh store: a row of a file is decided once per store
                return run_process(dupcheck_cmd(workflow, leads, db, url, in_flight), env=ENV)
            return go

        for rows, bare, ours in ((n, case.bare, case.ours), (1, case.bare_start, case.ours_start)):
            leads = write_csv(tmp / f"leads{rows}.csv", rows)
            alternate((bare, bare_run(leads)), (ours, dupcheck_run(leads)), reps)
    return case


def main(n: int | None = None) -> None:
    n = n or int(os.environ.get("DUPCHECK_BENCH_LEADS", "5000"))
    print(f"dupcheck run vs bare aiohttp, {n:,} leads, minimal stub CRM, whole processes, "
          f"A/B alternated x3 (median [min-max]):")
    rows = []
    for latency_ms, in_flight in CASES:
        with tempfile.TemporaryDirectory() as d:
            case = measure(n, latency_ms, in_flight, Path(d))
        bare, ours = case.bare, case.ours
        rows.append((latency_ms, in_flight, case))
        (bare_rate, bare_cpu), (our_rate, our_cpu) = steady(bare, case.bare_start), steady(ours, case.ours_start)
        print(f"  stub latency {latency_ms:>2} ms, {in_flight:>3} in flight (load {ours.load:.1f}):")
        print(f"    bare aiohttp  {spread(bare.rates()):>24} req/s    CPU {spread(bare.cpu_per_unit_us()):>18} us/request")
        print(f"    dupcheck run  {spread(ours.rates()):>24} leads/s  CPU {spread(ours.cpu_per_unit_us()):>18} us/lead")
        print(f"    whole process: {ours.rate / bare.rate:.2f}x the bare request rate; "
              f"{ours.cpu_us / bare.cpu_us:.2f}x the bare CPU per request")
        print(f"    start-up (1-lead file, CPU): bare {case.bare_start.cpu_us / 1e6:.2f} s, "
              f"dupcheck {case.ours_start.cpu_us / 1e6:.2f} s")
        print(f"    steady state (1-lead run taken off): bare {bare_rate:,.0f} req/s, {bare_cpu:,.0f} us/request; "
              f"dupcheck {our_rate:,.0f} leads/s, {our_cpu:,.0f} us/lead: {our_rate / bare_rate:.2f}x the rate, "
              f"{our_cpu / bare_cpu:.2f}x the CPU", flush=True)
    return rows


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
