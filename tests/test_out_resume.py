"""`run --out F` survives kill -9: after --resume, F holds each row exactly once (issue 10)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_workflow
from dupcheck_plugin.cli.outfile import cut_torn_tail, repair, rows_in
from dupcheck_plugin.host import upgrade_record

BASE_ROW = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}
ROWS = 300
BUDGET = 30  # CRM calls each killed run may make


def decided(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("select count(*) from decisions").fetchone()[0]
    except sqlite3.OperationalError:  # the file exists, its tables are not created yet
        return 0


def kill_when(proc: subprocess.Popen, db: Path, count: int) -> None:
    """kill -9 the run once the store holds ``count`` decisions (awaited, not timed)."""
    deadline = time.monotonic() + 120  # a backstop for a run that hangs, never reached by a slow one
    while decided(db) < count:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_kill_9_three_times_then_resume_leaves_each_row_once_in_out(tmp_path, crm_sim, hubspot_env):
    # the gate: each run may send BUDGET CRM calls (one per lead), then waits a day for its
    # budget to reopen, so it cannot finish before it is killed, however fast the machine
    gated = {"limits": {"budget": BUDGET, "when_spent": "wait"}}
    wf = write_workflow(tmp_path, [BASE_ROW], connect=gated)
    leads = tmp_path / "leads.csv"
    leads.write_text("phone_number\n" + "".join(f"55502{n:05d}\n" for n in range(ROWS)))
    db, out = tmp_path / "r.db", tmp_path / "out.jsonl"
    args = [sys.executable, "-m", "dupcheck_plugin.cli.main", "run", str(wf), "--leads", str(leads),
            "--crm-url", crm_sim.url, "--db", str(db), "--concurrency", "4", "--out", str(out), "--no-progress"]
    for i in range(3):
        proc = subprocess.Popen(args + (["--resume"] if i else []), stderr=subprocess.PIPE, text=True)
        kill_when(proc, db, BUDGET * (i + 1))
        assert decided(db) == BUDGET * (i + 1)  # killed at the gate: the spent budget let no lead past
    write_workflow(tmp_path, [BASE_ROW])  # the same workflow, ungated: the resume finishes
    done = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    rows = sorted(r["source_row"] for r in records)
    assert rows == list(range(2, ROWS + 2)), "each row exactly once"
    assert decided(db) == ROWS


def test_repair_cuts_a_torn_line_and_adds_what_the_store_has(tmp_path):
    out = tmp_path / "out.jsonl"
    rec = lambda row: {"workflow": "w", "source": "s", "source_row": row, "action": "created"}  # noqa: E731
    older = {"workflow": "w", "source": "s", "row": 2, "action": "created"}  # a line an older version wrote
    out.write_text(json.dumps(older) + "\n" + json.dumps(rec(4)) + "\n" + '{"workflow": "w", "sou')
    added = repair(str(out), "w", "s", lambda: [rec(2), rec(3), rec(4), rec(5)], json.dumps)
    assert added == 2
    lines = out.read_text().splitlines()
    assert [upgrade_record(json.loads(line))["source_row"] for line in lines] == [2, 4, 3, 5]
    assert rows_in(str(out), "w", "s") == {2, 3, 4, 5}


@pytest.mark.parametrize("text, kept", [("", ""), ("a\n", "a\n"), ("a\nb", "a\n"), ("abc", "")])
def test_cut_torn_tail(tmp_path, text, kept):
    path = tmp_path / "f"
    path.write_text(text)
    cut_torn_tail(str(path))
    assert path.read_text() == kept


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", "run", *args], capture_output=True,
                          text=True, timeout=120, **kw)


def test_out_that_names_the_lead_file_or_the_store_is_refused_before_either_is_touched(tmp_path, crm_sim,
                                                                                    hubspot_env):
    """--out was opened for writing (truncated) after the lead file and the store were open:
    '--out leads.csv' emptied the leads and said 'decided 0 leads', '--out r.db' erased every
    decision of the store."""
    wf = write_workflow(tmp_path, [BASE_ROW])
    leads, db = tmp_path / "leads.csv", tmp_path / "r.db"
    text = "phone_number\n" + "".join(f"55502{n:05d}\n" for n in range(5))
    leads.write_text(text)
    common = [str(wf), "--leads", str(leads), "--crm-url", crm_sim.url, "--no-progress"]
    first = _run(common + ["--db", str(db), "--out", str(tmp_path / "a.jsonl")])
    assert first.returncode == 0, first.stderr
    stored = decided(db)
    for out, says in ((leads, "is the lead file --leads reads"), (db, "is the store's file"),
                      (Path(str(db) + "-wal"), "is the store's file")):
        done = _run(common + ["--db", str(db), "--out", str(out), "--resume"])
        assert done.returncode == 2 and says in done.stderr, done.stderr
    assert leads.read_text() == text and decided(db) == stored == 5


def test_resume_from_stdin_is_refused_not_decided_again(tmp_path, crm_sim, hubspot_env):
    """stdin has no path to find what an earlier run decided: every row was decided again,
    and --out (opened anew) lost the first run's records."""
    wf = write_workflow(tmp_path, [BASE_ROW])
    text = "phone_number\n" + "".join(f"55502{n:05d}\n" for n in range(5))
    args = [str(wf), "--leads", "-", "--db", str(tmp_path / "r.db"), "--out", str(tmp_path / "o.jsonl"),
            "--crm-url", crm_sim.url, "--no-progress"]
    assert _run(args, input=text).returncode == 0
    again = _run(args + ["--resume"], input=text)
    assert again.returncode == 2 and "--resume needs a lead file" in again.stderr
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 5 and decided(tmp_path / "r.db") == 5
