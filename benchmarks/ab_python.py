"""Two Pythons, one tree: what the interpreter's build is worth (README, "Where
a lead's CPU goes"). Not part of ``make bench``, which runs on the venv's Python
and prints which one that is.

    python -m benchmarks.ab_python PYTHON_A PYTHON_B [REPS]

Each is a Python with this project's dependencies (a venv made from it, with
``pip install -e '.[dev,bench]'``). Both run this checkout (``PYTHONPATH``), as
whole processes alternated A B A B, against one simulator with its limits
off: ``dupcheck run`` of :mod:`.bench_batched`'s workflow (100 leads a
Salesforce request; the simulator's count of requests proves it batched) and
bare aiohttp's HubSpot search for each lead, process CPU per lead or request,
medians and [min-max].
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .abtest import Series, run_process, spread
from .bench_batched import BATCHED_IN_FLIGHT, IN_FLIGHT, PER_REQUEST, WORKFLOW, salesforce_requests
from .common import write_csv
from .sim_process import simulator
from .stubbed import ENV, bare_cmd, dupcheck_cmd

LEADS = 20_000
REPS = 5
ROOT = Path(__file__).resolve().parents[1]
USAGE = "usage: python -m benchmarks.ab_python PYTHON_A PYTHON_B [REPS]"


def on(python: str, cmd: list[str]) -> list[str]:
    """``cmd`` (a command of :mod:`.stubbed`, run by this Python) run by ``python``."""
    assert cmd[0] == sys.executable, cmd
    return [python, *cmd[1:]]


def describe(python: str, env: dict[str, str]) -> str:
    out = subprocess.run([python, "-c", "from benchmarks.common import interpreter; print(interpreter())"],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main(argv: list[str], n: int = LEADS) -> int:
    if len(argv) not in (2, 3) or (len(argv) == 3 and not argv[2].isdigit()):
        print(USAGE, file=sys.stderr)
        return 2
    pythons, reps = argv[:2], int(argv[2]) if len(argv) == 3 else REPS
    env = {**ENV, "SALESFORCE_TOKEN": "bench", "PYTHONPATH": str(ROOT)}
    try:
        names = [describe(python, env) for python in pythons]
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"{USAGE}\na Python that cannot import this checkout's benchmarks: {exc}", file=sys.stderr)
        return 2
    batched = [Series(f"{PER_REQUEST} leads/request", n) for _ in pythons]
    bare = [Series("bare aiohttp", n) for _ in pythons]
    with tempfile.TemporaryDirectory() as d, simulator() as url:
        tmp = Path(d)
        leads = write_csv(tmp / "leads.csv", n, email=False)  # as bench_batched: 100 leads' phones fit a URL
        workflow = tmp / "batched.toml"
        workflow.write_text(WORKFLOW.format(batch=f"{{ max_leads = {PER_REQUEST} }}"))
        for rep in range(reps):
            for side, python in enumerate(pythons):
                db = tmp / f"{rep}-{side}.db"
                before = salesforce_requests(url)
                batched[side].samples.append(run_process(
                    on(python, dupcheck_cmd(workflow, leads, db, url, BATCHED_IN_FLIGHT)), env=env))
                asked = salesforce_requests(url) - before  # as bench_batched: most batches full, some short
                if not -(-n // PER_REQUEST) <= asked <= n * 3 // (2 * PER_REQUEST) + 1:
                    raise RuntimeError(f"{python}: the batched run sent {asked} requests for {n} leads")
                bare[side].samples.append(run_process(on(python, bare_cmd(url, leads, IN_FLIGHT)), env=env))
    print(f"two Pythons, this tree, {n:,} leads, the simulator (limits off), x{reps} alternated, "
          f"CPU us a lead (bare: a request), median [min-max], load {os.getloadavg()[0]:.1f}:")
    for side, label in enumerate("AB"):
        print(f"  {label}: {names[side]}\n"
              f"     {PER_REQUEST} leads/request {spread(batched[side].cpu_per_unit_us())}, "
              f"bare aiohttp {spread(bare[side].cpu_per_unit_us())}")
    print(f"  B/A: {batched[1].cpu_us / batched[0].cpu_us:.2f}x a batched lead, "
          f"{bare[1].cpu_us / bare[0].cpu_us:.2f}x a bare request")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
