"""The Temporal engine against the embedded one: leads/s and the latency it
adds per lead, on the same CRM simulator and the same PostgreSQL store.

Both are whole ``dupcheck run`` processes, alternated A B A B, medians with
[min-max]; Temporal's side has a dev server and two ``dupcheck worker``
processes running throughout (their CPU is not in the figures: they are
the cluster). Latency: one lead at a time (``--concurrency 1``), wall time
per lead; the difference is what Temporal adds (workflow start, its tasks,
the CRM activity's round trips through the server).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dupcheck_plugin.dev.postgres import PostgresCluster
from dupcheck_plugin.dev.temporal import TemporalDevServer

from .abtest import Sample, Series, alternate, run_process, spread
from .common import write_csv
from .sim_process import simulator
from .stubbed import BENCH_WORKFLOW

ENV = {**os.environ, "HUBSPOT_TOKEN": "bench-token"}
# one lead per CRM call and no vendor limit: the engines are measured, not HubSpot's 4/s
UNLIMITED = BENCH_WORKFLOW.replace("retry = { attempts = 1 } }", "retry = { attempts = 1 }, limits = false, batch = false }")
CLI = [sys.executable, "-m", "dupcheck_plugin.cli.main"]


def main(n: int | None = None) -> None:
    n = n or int(os.environ.get("DUPCHECK_BENCH_TEMPORAL_LEADS", "300"))
    one_by_one = max(10, n // 20)
    print(f"embedded engine vs Temporal (dev server, 2 workers), {n:,} leads at 64 in flight and {one_by_one} "
          f"one at a time, the simulator, one PostgreSQL; A/B alternated x3 (median [min-max]):")
    with tempfile.TemporaryDirectory() as d, PostgresCluster() as pg, TemporalDevServer() as temporal, \
            simulator("--limits", "off") as sim_url:  # the CRM stays out of the way: Temporal is measured
        tmp = Path(d)
        WORKFLOW = str(tmp / "bench_unlimited.toml")
        Path(WORKFLOW).write_text(UNLIMITED, encoding="utf-8")
        db = pg.create_database("bench")
        workers = [subprocess.Popen(CLI + ["worker", WORKFLOW, "--temporal", temporal.target, "--db", db,
                                           "--crm-url", sim_url, "--log-level", "warning"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV)
                   for _ in range(2)]
        try:
            for w in workers:
                if not w.stdout.readline().startswith("worker ready"):
                    raise RuntimeError("a worker did not start")
            base = write_csv(tmp / "leads.csv", n)
            small = write_csv(tmp / "small.csv", one_by_one, seed=2)
            copies = iter(range(1_000_000))

            def run(engine: str, leads: Path, concurrency: int) -> Sample:
                # a copy per run: a row of a file is decided once per store
                path = tmp / f"{engine}-{next(copies)}.csv"
                shutil.copy(leads, path)
                extra = ["--engine", "temporal", "--temporal", temporal.target] if engine == "temporal" \
                    else ["--crm-url", sim_url]
                return run_process(CLI + ["run", WORKFLOW, "--leads", str(path), "--db", db, "--out",
                                                  os.devnull, "--no-progress", "--concurrency", str(concurrency),
                                                  *extra], env=ENV)

            fast_e, fast_t = Series("embedded", n), Series("temporal", n)
            alternate((fast_e, lambda: run("embedded", base, 64)), (fast_t, lambda: run("temporal", base, 64)), 3)
            lat_e, lat_t = Series("embedded", one_by_one), Series("temporal", one_by_one)
            alternate((lat_e, lambda: run("embedded", small, 1)), (lat_t, lambda: run("temporal", small, 1)), 3)
        finally:
            for w in workers:
                w.terminate()
                w.wait(30)
    ms = lambda s: [1000.0 / r for r in s.rates()]  # noqa: E731 - wall ms per lead
    print(f"  throughput (load {fast_t.load:.1f}):")
    print(f"    embedded  {spread(fast_e.rates()):>20} leads/s")
    print(f"    temporal  {spread(fast_t.rates()):>20} leads/s   {fast_t.rate / fast_e.rate:.2f}x the embedded rate")
    added = sorted(t - e for t, e in zip(ms(lat_t), ms(lat_e)))
    print(f"  latency, one lead at a time (load {lat_t.load:.1f}):")
    print(f"    embedded  {spread(ms(lat_e)):>20} ms/lead")
    print(f"    temporal  {spread(ms(lat_t)):>20} ms/lead   adds {added[len(added) // 2]:,.0f} ms per lead", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
