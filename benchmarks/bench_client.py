"""``dupcheck run`` against bare aiohttp requests, both whole processes.

Same minimal stub CRM (its own process), same lead file, same number of
requests and connections in flight; alternated A B A B, three times, medians
with [min-max]. Reports leads/s over the baseline's requests/s, and process
CPU (user + system) per lead over the baseline's CPU per request.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from .abtest import Series, alternate, run_process, spread
from .common import write_csv
from .stubbed import ENV, bare_cmd, dupcheck_cmd, stub, write_workflow

CASES = ((0, 64), (0, 256), (50, 64), (50, 256))


def measure(n: int, latency_ms: int, in_flight: int, tmp: Path, reps: int = 3) -> tuple[Series, Series]:
    leads = write_csv(tmp / "leads.csv", n)
    workflow = write_workflow(tmp)
    bare, ours = Series("bare aiohttp", n), Series("dupcheck run", n)
    runs = iter(range(1_000_000))

    with stub(latency_ms) as url:
        def bare_run():
            return run_process(bare_cmd(url, leads, in_flight))

        def dupcheck_run():
            db = tmp / f"run{next(runs)}.db"  # a fresh store: a row of a file is decided once per store
            return run_process(dupcheck_cmd(workflow, leads, db, url, in_flight), env=ENV)

        alternate((bare, bare_run), (ours, dupcheck_run), reps)
    return bare, ours


def main(n: int | None = None) -> None:
    n = n or int(os.environ.get("DUPCHECK_BENCH_LEADS", "5000"))
    print(f"dupcheck run vs bare aiohttp, {n:,} leads, minimal stub CRM, whole processes, "
          f"A/B alternated x3 (median [min-max]):")
    rows = []
    for latency_ms, in_flight in CASES:
        with tempfile.TemporaryDirectory() as d:
            bare, ours = measure(n, latency_ms, in_flight, Path(d))
        rows.append((latency_ms, in_flight, bare, ours))
        print(f"  stub latency {latency_ms:>2} ms, {in_flight:>3} in flight (load {ours.load:.1f}):")
        print(f"    bare aiohttp  {spread(bare.rates()):>24} req/s    CPU {spread(bare.cpu_per_unit_us()):>18} us/request")
        print(f"    dupcheck run  {spread(ours.rates()):>24} leads/s  CPU {spread(ours.cpu_per_unit_us()):>18} us/lead")
        print(f"    ratio: {ours.rate / bare.rate:.2f}x the bare request rate; "
              f"{ours.cpu_us / bare.cpu_us:.2f}x the bare CPU per request", flush=True)
    return rows


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
