"""Instructions per lead: ``dupcheck run`` against bare aiohttp, counted by valgrind.

The CPU-time ratios of :mod:`.bench_client` move by 10-20% between runs of the
same code on a shared machine, and between machines by more (the same code
read 1.0x a bare request on one machine and 1.3x on the next). Instructions
counted by ``valgrind --tool=callgrind`` are the same from run to run, so this
tells what the code costs apart from the machine, and what a change saves.
It counts user-space instructions only: the kernel's work (socket I/O, the
store's writes) and cache misses are not in it, and the CPU-time figures stay
the targets.

Both processes run under callgrind against the same stub (not counted) at
0 ms, 64 in flight: once on ``N`` leads and once on one lead, so start-up is
taken off ((whole - one lead) / (N - 1)). Threads are counted together (the
store's writer too). The figures are split by the shared object the
instructions ran in: the Python interpreter, SQLite, orjson, libc, the rest.

A third line counts a batched lead: ``run`` asking the simulator (its own
process, limits off, not counted) for 100 leads per Salesforce request, as
:mod:`.bench_batched` times it: what a lead costs where the request is shared.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable

from .abtest import run_process
from .bench_batched import BATCHED_IN_FLIGHT, PER_REQUEST, WORKFLOW
from .bench_check import compile_bytecode
from .common import write_csv
from .sim_process import simulator
from .stubbed import ENV, bare_cmd, dupcheck_cmd, stub, write_workflow

IN_FLIGHT = 64
# the objects each group's instructions run in (matched on the start of the file name): the
# interpreter is libpython.so, or the executable itself where libpython is built in
GROUPS = (("Python", ("libpython", "python")), ("SQLite", ("libsqlite3", "_sqlite3")), ("orjson", ("orjson",)),
          ("libc", ("libc.so", "libm.so")))


def self_cost_by_object(lines: Iterable[str]) -> tuple[int, Counter]:
    """(the summary total, each shared object's own instructions) of a callgrind
    output file: the cost lines under each ``ob=``, not the inclusive cost of the
    calls it makes (the line after ``calls=``). Names may be compressed:
    ``(3) /lib/x.so`` once, then ``(3)``."""
    names: dict[str, str] = {}
    by_object: Counter = Counter()
    total, current, skip = 0, "?", False
    for line in lines:
        if line.startswith(("ob=", "cob=")):
            ref, _, name = line.split("=", 1)[1].strip().partition(" ")
            if name:
                names[ref] = name
            if line.startswith("ob="):
                current = names.get(ref, ref)
        elif line.startswith("calls="):
            skip = True  # the next cost line is the callee's inclusive cost
        elif line[:1].isdigit() or line[:1] in "+-*":
            if skip:
                skip = False
                continue
            fields = line.split()
            if len(fields) > 1:
                by_object[current] += int(fields[1])
        elif line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
    return total, by_object


def grouped(by_object: Counter) -> Counter:
    out: Counter = Counter()
    for name, n in by_object.items():
        base = os.path.basename(name)
        out[next((group for group, marks in GROUPS if base.startswith(marks)), "other")] += n
    return out


def counted(cmd: list[str], env: dict, out: Path) -> tuple[int, Counter]:
    # a failure raises with valgrind's stderr (run_process), not a bare CalledProcessError
    run_process(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd], env=env)
    with out.open() as f:
        total, by_object = self_cost_by_object(f)
    return total, grouped(by_object)


def per_lead(whole: tuple[int, Counter], one: tuple[int, Counter], n: int) -> tuple[float, Counter]:
    total = (whole[0] - one[0]) / (n - 1)
    return total, Counter({g: (whole[1][g] - one[1][g]) / (n - 1) for g in whole[1] | one[1]})


def main(n: int | None = None) -> None:
    n = n or int(os.environ.get("DUPCHECK_BENCH_CG_LEADS", "2000"))
    if shutil.which("valgrind") is None:
        print("bench_instructions: skipped, valgrind is not installed (make bench installs it)")
        return
    compile_bytecode()
    print(f"instructions per lead (valgrind callgrind, user space), {n:,} leads, stub at 0 ms, "
          f"{IN_FLIGHT} in flight, start-up taken off:", flush=True)
    with tempfile.TemporaryDirectory() as d, stub(0) as url:
        tmp = Path(d)
        workflow = write_workflow(tmp)
        figures = {}
        for label in ("bare aiohttp", "dupcheck run"):
            runs = []
            for rows in (n, 1):
                leads = write_csv(tmp / f"leads{rows}.csv", rows)
                if label == "bare aiohttp":
                    cmd, env = bare_cmd(url, leads, IN_FLIGHT), None
                else:
                    cmd, env = dupcheck_cmd(workflow, leads, tmp / f"cg{rows}.db", url, IN_FLIGHT), ENV
                runs.append(counted(cmd, env, tmp / f"cg.{len(figures)}.{rows}"))
            figures[label] = per_lead(runs[0], runs[1], n)
    with tempfile.TemporaryDirectory() as d, simulator() as url:
        tmp = Path(d)
        workflow = tmp / "batched.toml"
        workflow.write_text(WORKFLOW.format(batch=f"{{ max_leads = {PER_REQUEST} }}"))
        env = {**ENV, "SALESFORCE_TOKEN": "bench"}
        runs = [counted(dupcheck_cmd(workflow, write_csv(tmp / f"leads{rows}.csv", rows, email=False),
                                     tmp / f"cg{rows}.db", url, BATCHED_IN_FLIGHT), env, tmp / f"cg.batched.{rows}")
                for rows in (n, 1)]
        figures[f"{PER_REQUEST} a request"] = per_lead(runs[0], runs[1], n)
    (bare, bare_groups), (ours, our_groups) = figures["bare aiohttp"], figures["dupcheck run"]
    groups = [g for g, _ in GROUPS] + ["other"]
    print(f"  {'':14} {'total':>9} " + " ".join(f"{g:>8}" for g in groups))
    for label, (total, by_group) in figures.items():
        print(f"  {label:14} {total:9,.0f} " + " ".join(f"{by_group[g]:8,.0f}" for g in groups))
    print(f"  dupcheck run: {ours / bare:.2f}x the instructions of a bare request "
          f"({our_groups['Python'] / max(bare_groups['Python'], 1):.2f}x in the Python interpreter); "
          f"{PER_REQUEST} a request: dupcheck run of the Salesforce adaptor against crm-sim, a lead's share", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
