"""Peak memory of ``dupcheck run`` streaming a large lead file: a small file
(baseline) against a large one, same workflow, same run. Flat memory means
a ratio near 1. The duplicate check is disabled so that a million rows take
minutes, not the CRM's time; every row still goes through intake, the
engine, the store and the JSON Lines output."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import write_csv

WORKFLOW = """\
name = "bench_disabled"
[[nodes]]
id = "crm"
type = "convoso_connect"
config = { adaptor = "hubspot_contacts_search" }
[[nodes]]
id = "check"
type = "api_duplicate_check"
config = { connect = "crm", enabled = false }
"""


def peak_rss_mb(tmp: Path, leads: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one ``dupcheck run`` in a fresh process."""
    script = ("import resource, subprocess, sys, time; t=time.perf_counter(); "
              "r=subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter()-t, r.returncode)")
    db = tmp / f"{leads.stem}.db"
    cmd = [sys.executable, "-c", script, sys.executable, "-m", "dupcheck_plugin.cli.main", "run",
           str(tmp / "wf.toml"), "--leads", str(leads), "--db", str(db), "--out", "-", "--no-progress"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HUBSPOT_TOKEN": "bench"}, check=True)
    kb, seconds, rc = out.stdout.split()
    assert rc == "0", out.stderr
    return int(kb) / 1024, float(seconds)


def main(rows: int | None = None) -> None:
    rows = rows or int(os.environ.get("DUPCHECK_BENCH_ROWS", "1000000"))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "wf.toml").write_text(WORKFLOW)
        small = write_csv(tmp / "small.csv", 10_000)
        large = write_csv(tmp / "large.csv", rows)
        base_mb, base_s = peak_rss_mb(tmp, small)
        big_mb, big_s = peak_rss_mb(tmp, large)
    print("dupcheck run, streaming memory (check disabled; intake, engine, store, JSON Lines out):")
    print(f"  {10_000:>9,} rows: peak RSS {base_mb:6.1f} MB in {base_s:6.1f} s")
    print(f"  {rows:>9,} rows: peak RSS {big_mb:6.1f} MB in {big_s:6.1f} s ({rows / big_s:,.0f} leads/s)")
    print(f"  ratio large/small: {big_mb / base_mb:.2f}x memory for {rows / 10_000:.0f}x rows")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
