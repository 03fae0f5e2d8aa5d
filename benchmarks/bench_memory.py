"""Peak memory of ``dupcheck run`` streaming a large lead file, the CRM check on.

A small file (baseline) against one ten times larger, same workflow, same
minimal stub CRM answering at once, same run. Flat memory means a ratio near
1: every row goes through intake, render, the CRM call, the rules, the store
and the JSON Lines output. ``DUPCHECK_BENCH_ROWS`` sets the larger count
(default 100,000; ``DUPCHECK_BENCH_ROWS=1000000 make bench`` for the
million-lead figure, most of an hour on a shared 2-core machine).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from .abtest import run_process
from .common import write_csv
from .stubbed import DUPCHECK, ENV, stub, write_workflow


def main(rows: int | None = None) -> None:
    rows = rows or int(os.environ.get("DUPCHECK_BENCH_ROWS", "100000"))
    small_rows = max(rows // 10, 1000)
    with tempfile.TemporaryDirectory() as d, stub(0) as url:
        tmp = Path(d)
        workflow = write_workflow(tmp)
        out = []
        for n in (small_rows, rows):
            leads = write_csv(tmp / f"leads{n}.csv", n)
            cmd = DUPCHECK + ["run", str(workflow), "--leads", str(leads), "--db", str(tmp / f"{n}.db"),
                              "--out", os.devnull, "--no-progress", "--crm-url", url, "--concurrency", "64"]
            out.append((n, run_process(cmd, env=ENV, peak_rss=True)))
    print("dupcheck run, streaming memory, CRM check on (minimal stub CRM, 64 in flight):")
    for n, s in out:
        print(f"  {n:>9,} rows: peak RSS {s.max_rss_kb / 1024:6.1f} MB in {s.wall_s:6.1f} s "
              f"({n / s.wall_s:,.0f} leads/s, load {s.load:.1f})")
    (n0, a), (n1, b) = out
    print(f"  ratio: {b.max_rss_kb / a.max_rss_kb:.2f}x memory for {n1 / n0:.0f}x rows")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
