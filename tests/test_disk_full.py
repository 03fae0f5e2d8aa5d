"""A full disk stops `run` with one clear line, loses no lead and decides
none twice: `--resume` finishes the file once there is room again."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_workflow

pytestmark = pytest.mark.e2e  # runs dupcheck against the simulator on loopback

ROWS = 300
LEADS = "phone_number,first_name\n" + "".join(f"555{7000000 + i:07d},P{i}\n" for i in range(ROWS))


def run(args: list[str], env: dict[str, str], file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:  # a disk that fills up: writes past this size fail (EFBIG), as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", "run", *args, "--no-progress"],
                          capture_output=True, text=True, timeout=300, env=env,
                          preexec_fn=limit if file_size_limit else None)


def every_row_once(db: Path, out: Path) -> None:
    decided = [row for (row,) in sqlite3.connect(db).execute("SELECT row FROM decisions")]
    written = [json.loads(line)["source_row"] for line in out.read_text().splitlines()]
    assert sorted(decided) == sorted(written) == list(range(2, ROWS + 2))


@pytest.fixture
def setup(tmp_path, crm_sim, hubspot_env):
    leads = tmp_path / "leads.csv"
    leads.write_text(LEADS)
    wf = write_workflow(tmp_path, [{"key": "total", "match": "gt", "value": 0, "create_lead": False,
                                    "add_to_dnc": False, "success": False}])
    env = {**os.environ, **hubspot_env, "PYTHONPATH": str(Path(__file__).parent.parent)}
    return [str(wf), "--leads", str(leads), "--crm-url", crm_sim.url, "--concurrency", "32"], env


def test_a_store_whose_disk_fills_up_stops_the_run_and_resume_finishes_it(tmp_path, setup):
    args, env = setup
    db, out = tmp_path / "d.db", tmp_path / "out.jsonl"
    first = run([*args, "--db", str(db), "--out", str(out)], env, file_size_limit=256 * 1024)
    assert first.returncode == 1
    assert "Traceback" not in first.stderr
    stopped = [line for line in first.stderr.splitlines() if line.startswith("dupcheck: run stopped:")]
    assert len(stopped) == 1 and "the store refused the write" in stopped[0] and "--resume" in stopped[0]
    assert stopped[0].count("store refused") == 1  # the leads in flight met one error: said once, counted
    # the writer retries a failed batch commit by commit: one log line per distinct error, not per commit
    assert first.stderr.count("store write failed") <= 4, first.stderr
    decided_first = sqlite3.connect(db).execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    assert decided_first < ROWS

    again = run([*args, "--db", str(db), "--out", str(out), "--resume"], env)
    assert again.returncode == 0, again.stderr
    every_row_once(db, out)


def test_out_on_a_full_disk_stops_the_run_without_a_traceback_and_resume_repairs_it(tmp_path, setup):
    if not os.path.exists("/dev/full"):
        pytest.fail("this test needs /dev/full (a Linux device that is always full)")
    args, env = setup
    db, out = tmp_path / "d.db", tmp_path / "out.jsonl"
    first = run([*args, "--db", str(db), "--out", "/dev/full"], env)
    assert first.returncode == 1
    assert "Traceback" not in first.stderr
    [stopped] = [line for line in first.stderr.splitlines() if line.startswith("dupcheck: run stopped:")]
    assert "No space left on device" in stopped and "--resume" in stopped

    # the store kept what was decided; --resume writes it to the new --out and decides the rest
    again = run([*args, "--db", str(db), "--out", str(out), "--resume"], env)
    assert again.returncode == 0, again.stderr
    every_row_once(db, out)


@pytest.mark.parametrize("where", ["missing_folder", "a_directory"])
def test_an_out_that_cannot_be_opened_is_one_clear_line_and_decides_nothing(tmp_path, setup, where):
    args, env = setup
    db = tmp_path / "d.db"
    out = tmp_path / "no" / "out.jsonl" if where == "missing_folder" else tmp_path
    first = run([*args, "--db", str(db), "--out", str(out)], env)
    assert first.returncode == 1
    assert "Traceback" not in first.stderr
    [line] = [line for line in first.stderr.splitlines() if line.startswith("dupcheck:")]
    reason = "No such file or directory" if where == "missing_folder" else "Is a directory"
    assert line == f"dupcheck: cannot write --out {out}: {reason}. This run decided nothing", first.stderr
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0
    # the file's claim went with the failed run: the same command with a good --out decides every row
    good = tmp_path / "out.jsonl"
    again = run([*args, "--db", str(db), "--out", str(good)], env)
    assert again.returncode == 0, again.stderr
    every_row_once(db, good)
