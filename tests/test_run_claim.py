"""Two `dupcheck run` processes on the same lead file and the same store at
once: the second is told another run of this workflow is deciding this file
in this store right now, and stops before deciding anything; the first
finishes, every row decided once. Real processes, a real SQLite file (and a
PostgreSQL database), a loopback CRM that holds the first run's first call
until the test lets it go (synchronised on events, not on time)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import write_workflow

pytestmark = pytest.mark.e2e  # starts a server and processes

ROW = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}
ROWS = 5
BACKSTOP_S = 120  # a wait that only a hung process reaches, never a slow one


class SlowCrm:
    """Knows every phone. Holds the first call it gets until ``release`` is set
    (``first`` is set when it arrives); answers every other call at once."""

    def __init__(self):
        self.first, self.release = threading.Event(), threading.Event()
        self.calls = 0
        crm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    crm.calls += 1
                    held = crm.calls == 1
                if held:
                    crm.first.set()
                    crm.release.wait(BACKSTOP_S)
                body = b'{"total": 1}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/search"

    def __enter__(self) -> "SlowCrm":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def setup(tmp_path: Path, crm: SlowCrm) -> tuple[Path, Path]:
    (tmp_path / "acme.toml").write_text(
        'name = "acme"\nresponse_format = "json"\n[fields]\nphone_number = { mapped_to = "phone", required = true }\n'
        f'[request]\nmethod = "POST"\nurl = "{crm.url}"\n[request.body]\nphone = "{{{{ phone }}}}"\n')
    wf = write_workflow(tmp_path, [ROW], adaptor="acme")
    leads = tmp_path / "leads.csv"
    leads.write_text("phone_number\n" + "".join(f"55501{n:05d}\n" for n in range(ROWS)))
    return wf, leads


def run_args(wf: Path, leads: Path, db: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "dupcheck_plugin.cli.main", "run", str(wf), "--leads", str(leads), "--db", db,
            "--out", str(out), "--concurrency", "1", "--no-progress"]


def second_run_while_the_first_decides(tmp_path: Path, db: str):
    """(the first run, the second run, CRM calls when the second ended, records of the first's --out)."""
    with SlowCrm() as crm:
        wf, leads = setup(tmp_path, crm)
        first = subprocess.Popen(run_args(wf, leads, db, tmp_path / "first.jsonl"), stderr=subprocess.PIPE, text=True)
        try:
            # the first run has claimed the file and is deciding its first row: its call is held
            assert crm.first.wait(BACKSTOP_S), first.stderr.read() if first.poll() is not None else "no call"
            second = subprocess.run(run_args(wf, leads, db, tmp_path / "second.jsonl"), capture_output=True,
                                    text=True, timeout=BACKSTOP_S)
            calls = crm.calls
        finally:
            crm.release.set()
            first.wait(timeout=BACKSTOP_S)
    records = [json.loads(line) for line in (tmp_path / "first.jsonl").read_text().splitlines()]
    return first, second, calls, records


def test_a_second_run_of_the_same_file_and_store_is_told_another_run_is_deciding_it(tmp_path):
    """Before: the second run decided the rows while the first waited for its CRM, and the
    first then stopped with 'this row of this lead file is already decided by this
    workflow' (or the second did), as if an earlier run had finished."""
    db = tmp_path / "shared.db"
    first, second, calls, records = second_run_while_the_first_decides(tmp_path, str(db))
    assert second.returncode != 0
    assert "Traceback" not in second.stderr
    leads = (tmp_path / "leads.csv").resolve()
    assert f"another run of workflow 'wf' is deciding {leads} in {db} right now (pid {first.pid}, since " \
           in second.stderr, second.stderr
    assert "This run decided nothing" in second.stderr
    assert calls == 1  # the second run made no CRM call
    assert not (tmp_path / "second.jsonl").exists()  # refused before its --out was opened
    # the first run went on and decided every row, once
    assert first.returncode == 0, first.stderr.read()
    assert sorted(r["source_row"] for r in records) == list(range(2, ROWS + 2))
    with sqlite3.connect(db) as conn:
        stored = [row for (row,) in conn.execute("SELECT row FROM decisions ORDER BY row")]
    assert stored == list(range(2, ROWS + 2))
    assert not list(tmp_path.glob("*.lock"))  # the claim's file goes with it

    # once it has ended, a run of the file is told its rows are decided (the claim was let go)
    again = subprocess.run(run_args(tmp_path / "wf.toml", tmp_path / "leads.csv", str(db), tmp_path / "again.jsonl"),
                           capture_output=True, text=True, timeout=BACKSTOP_S)
    assert again.returncode != 0 and f"{ROWS} rows of" in again.stderr and "--resume skips them" in again.stderr


def test_a_run_killed_mid_file_leaves_no_claim_behind(tmp_path):
    """kill -9 gives no chance to let go: the kernel does (the lock file stays, unheld)."""
    db = tmp_path / "shared.db"
    with SlowCrm() as crm:
        wf, leads = setup(tmp_path, crm)
        first = subprocess.Popen(run_args(wf, leads, str(db), tmp_path / "first.jsonl"), stderr=subprocess.PIPE)
        assert crm.first.wait(BACKSTOP_S)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=BACKSTOP_S)
        assert list(tmp_path.glob("*.lock"))  # left behind, as a crash leaves it
        crm.release.set()
        resumed = subprocess.run(run_args(wf, leads, str(db), tmp_path / "first.jsonl") + ["--resume"],
                                 capture_output=True, text=True, timeout=BACKSTOP_S)
    assert resumed.returncode == 0, resumed.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(DISTINCT row), COUNT(*) FROM decisions").fetchone() == (ROWS, ROWS)
    assert not list(tmp_path.glob("*.lock"))


def test_postgres_a_second_run_is_told_the_same(tmp_path, pg_url):
    first, second, calls, records = second_run_while_the_first_decides(tmp_path, pg_url)
    assert second.returncode != 0 and "Traceback" not in second.stderr
    assert "another run of workflow 'wf' is deciding" in second.stderr, second.stderr
    assert f"(dupcheck run (pid {first.pid}), since " in second.stderr, second.stderr
    assert calls == 1
    assert first.returncode == 0, first.stderr.read()
    assert sorted(r["source_row"] for r in records) == list(range(2, ROWS + 2))


@pytest.mark.parametrize("resume", [False, True])
def test_a_store_that_cannot_be_read_before_the_run_is_one_clear_line(tmp_path, monkeypatch, capsys, resume):
    """The store's own error (a disk error, a damaged file) while reading what this file
    already has decided: one line naming it, nothing decided, no traceback."""
    from dupcheck_plugin.cli.main import main
    from dupcheck_plugin.store.sqlite import SqliteStore

    def unreadable(self, workflow, source):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(SqliteStore, "decided_phones" if resume else "decided_rows", unreadable)
    monkeypatch.setenv("HUBSPOT_TOKEN", "t")
    wf = write_workflow(tmp_path, [ROW], connect={"batch": False})
    leads = tmp_path / "leads.csv"
    leads.write_text("phone_number\n5550100001\n")
    db = tmp_path / "s.db"
    code = main(["run", str(wf), "--leads", str(leads), "--db", str(db), "--out", str(tmp_path / "out.jsonl"),
                 "--no-progress"] + (["--resume"] if resume else []))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    assert "the store could not be read: OperationalError: disk I/O error. This run decided nothing" in err
    assert sqlite3.connect(db).execute("select count(*) from decisions").fetchone() == (0,)
