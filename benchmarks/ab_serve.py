"""Paced ``dupcheck serve`` of two source trees side by side, against the stub itself.

``python -m benchmarks.ab_serve TREE_A TREE_B [REPS]`` (not part of ``make bench``):
each tree is a directory holding a ``dupcheck_plugin`` package (``git worktree add
/tmp/a SHA``, say; compile it first, as ``make bench`` does: ``python -m compileall
-q /tmp/a/dupcheck_plugin``), run as ``serve`` with it first on ``PYTHONPATH``. One
stub CRM at 50 ms for all; each repetition runs ``wrk`` paced (``bench_serve``'s
100 requests/s over 200 connections) against the stub directly, then against each
tree's ``serve`` (started in the tree's folder; the trees' order alternating).
It prints the medians: what each tree adds over the stub at p50 and p99, its
handler's own time (its ``/metrics``) and its CPU per insert. What ``make bench``'s paced row measures, for two versions
of the code at once, so a step's effect is read against the same minutes' noise.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from . import bench_serve as B
from .stubbed import ENV, stub


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the repetitions."""
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


def report(runs: dict[str, list[dict[str, float]]]) -> list[str]:
    """Lines: the stub's medians, then each tree's and what it adds over the stub."""
    stub_m = medians(runs["stub"])
    lines = [f"paced at {B.PACED_RATE} req/s, x{len(runs['stub'])} alternated (medians):",
             f"  stub directly     p50 {stub_m['p50']:6.2f} ms  p99 {stub_m['p99']:6.2f} ms"]
    for name, rows in runs.items():
        if name == "stub":
            continue
        m = medians(rows)
        lines.append(f"  {name:16}  p50 {m['p50']:6.2f} ms  p99 {m['p99']:6.2f} ms  "
                     f"adds p50 {m['p50'] - stub_m['p50']:+.2f} ms, p99 {m['p99'] - stub_m['p99']:+.2f} ms; "
                     f"handler's own p50 <= {m['own_p50']:g} ms, p99 <= {m['own_p99']:g} ms; "
                     f"CPU {m['cpu_us']:,.0f} us an insert")
    return lines


def measure(trees: dict[str, str], reps: int) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {"stub": []}
    with tempfile.TemporaryDirectory() as d, stub(B.STUB_LATENCY_MS) as crm:
        tmp = Path(d)
        workflow = B.write_serve_workflow(tmp)
        insert = tmp / "insert.lua"
        insert.write_text(B.paced(B.INSERT_LUA % {"first": 5_000_000}, B.PACED_RATE))
        search = tmp / "search.lua"
        search.write_text(B.paced(B.SEARCH_LUA, B.PACED_RATE))
        names = list(trees)
        for rep in range(reps):
            runs["stub"].append(B.wrk(crm + "/crm/v3/objects/contacts/search", search, crm.pid))
            for name in names if rep % 2 == 0 else names[::-1]:
                # from the tree's folder: `python -m` imports the package from there, whatever else is installed
                env = {**ENV, "PYTHONPATH": trees[name]}
                db = tmp / f"tree{names.index(name)}-{rep}.db"
                with B.serve(workflow, crm, db, env, cwd=trees[name]) as (url, pid):
                    before = B.own_buckets(url)
                    figures = B.wrk(url, insert, pid)
                    B._idle(url)
                    after = B.own_buckets(url)
                figures.update(own_p50=B.own_quantile(before, after, 0.5), own_p99=B.own_quantile(before, after, 0.99))
                runs.setdefault(name, []).append(figures)
    return runs


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not all((Path(t) / "dupcheck_plugin").is_dir() for t in argv[:2]):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print("ab_serve: wrk is not installed (make bench installs it)", file=sys.stderr)
        return 2
    trees = {f"A {argv[0]}": argv[0], f"B {argv[1]}": argv[1]}
    print("\n".join(report(measure(trees, int(argv[2]) if len(argv) == 3 else 6))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
