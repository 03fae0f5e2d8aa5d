"""The Temporal host on a real dev server and a real PostgreSQL: several
`serve` instances and `dupcheck worker` processes, as deployed.

Each test gets its own database and task queue on the session's servers.
Nothing here waits on a clock window: processes are awaited by their
readiness, the run by its exit, a kill by the decisions already stored.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import pytest

from conftest import unlimited_copy
from dupcheck_plugin.dev.ports import free_port, wait_listening
from dupcheck_plugin.resources import shipped_dir
from dupcheck_plugin.store.postgres import PostgresStore

pytestmark = pytest.mark.services

WORKFLOW = "hubspot_dupcheck"
TOKEN = "temporal-test-token-0123"
CLI = [sys.executable, "-m", "dupcheck_plugin.cli.main"]


class Deployment:
    """Workers and serve instances on one dev server, one database, one simulator."""

    def __init__(self, temporal, db: str, sim_url: str, tmp: Path):
        self.temporal, self.db, self.sim_url, self.tmp = temporal, db, sim_url, tmp
        self.queue = "q-" + uuid.uuid4().hex[:8]
        self.procs: list[subprocess.Popen] = []
        self.ready: list[str] = []  # each worker's readiness line (it says the CRM rate it applies)
        self.env = {**os.environ, "HUBSPOT_TOKEN": "sim-token", "DUPCHECK_API_TOKENS": TOKEN}
        # HubSpot's own 4/s limit and batching off: the simulator enforces none, and the
        # Temporal path sends one lead per CRM call (the rate test sets its own limit)
        self.workflow = str(unlimited_copy(shipped_dir("workflows") / f"{WORKFLOW}.toml", tmp))

    def _start(self, args: list[str], name: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")
        proc = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=log, text=True, env=self.env,
                                stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def worker(self, *extra: str) -> subprocess.Popen:
        proc = self._start(["worker", self.workflow, "--temporal", self.temporal.target, "--task-queue", self.queue,
                            "--db", self.db, "--crm-url", self.sim_url, "--log-level", "warning", *extra],
                           f"worker{len(self.procs)}")
        line = proc.stdout.readline()  # readiness: it polls both queues from here on
        assert line.startswith("worker ready"), (line, (self.tmp / f"worker{len(self.procs) - 1}.log").read_text())
        self.ready.append(line.strip())
        return proc

    def limit_crm(self, requests: int, per_seconds: float) -> None:
        """Declare a limit on the workflow's CRM connection, as its [limits] would."""
        text = Path(self.workflow).read_text(encoding="utf-8")
        limited = text.replace('"limits" = false', f'"limits" = {{ "requests" = {requests}, "per_seconds" = {per_seconds} }}')
        assert limited != text
        Path(self.workflow).write_text(limited, encoding="utf-8")

    def crm_timeouts(self, seconds: float) -> None:
        """Set the CRM connection's ``timeout`` and ``connect_timeout``."""
        text = Path(self.workflow).read_text(encoding="utf-8")
        changed = text.replace('"timeout" = 10,', f'"timeout" = {seconds}, "connect_timeout" = {seconds},')
        assert changed != text
        Path(self.workflow).write_text(changed, encoding="utf-8")

    def serve(self) -> str:
        port = free_port()
        proc = self._start(["serve", self.workflow, "--port", str(port), "--db", self.db, "--engine", "temporal",
                            "--temporal", self.temporal.target, "--task-queue", self.queue, "--log-level", "warning"],
                           f"serve{len(self.procs)}")
        wait_listening(port, 60, alive=lambda: proc.poll() is None)
        return f"http://127.0.0.1:{port}"

    def run(self, leads: Path, *extra: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run(CLI + ["run", self.workflow, "--leads", str(leads), "--db", self.db, "--engine", "temporal",
                                     "--temporal", self.temporal.target, "--task-queue", self.queue, "--no-progress",
                                     *extra], capture_output=True, text=True, env=self.env, timeout=timeout)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()


@pytest.fixture
def deployment(temporal_server, pg_url, crm_sim, tmp_path):
    d = Deployment(temporal_server, pg_url, crm_sim.url, tmp_path)
    yield d
    d.stop()


def lead_file(path: Path, phones: list[str]) -> Path:
    path.write_text("phone_number,first_name,list_id\n" + "".join(f"{p},Lead{i},100\n" for i, p in enumerate(phones)),
                    encoding="utf-8")
    return path


def held(sim) -> int:
    """CRM calls the simulator holds (in flight) now."""
    return sim.stats()["vendors"]["hubspot"]["in_flight"]


def new_phones(n: int, prefix: str = "555") -> list[str]:
    """Phones the simulator's contact book does not know (contacts are 555-01xx)."""
    return [f"{prefix}7{i:06d}" for i in range(n)]


async def insert_all(urls: list[str], phones: list[str], concurrency: int = 40) -> list[httpx.Response]:
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=120) as http:
        async def one(i: int, phone: str) -> httpx.Response:
            async with limit:
                return await http.post(urls[i % len(urls)] + "/v1/leads/insert",
                                       data={"auth_token": TOKEN, "phone_number": phone, "list_id": "100"})
        return await asyncio.gather(*(one(i, p) for i, p in enumerate(phones)))


def test_two_instances_two_workers_one_lead_per_phone(deployment):
    deployment.worker()
    deployment.worker()
    urls = [deployment.serve(), deployment.serve()]

    # 50 concurrent inserts of one new phone, spread over both instances: one lead
    answers = asyncio.run(insert_all(urls, ["5558880001"] * 50, concurrency=50))
    assert [r.status_code for r in answers] == [200] * 50, answers[0].text
    codes = Counter(r.json().get("code", "created") for r in answers)
    assert codes == {"created": 1, 6009: 49}, codes  # one created; 49 answered "already exists" (check_dup)
    created = next(r.json() for r in answers if r.json()["success"])
    assert {r.json()["existing_lead_id"] for r in answers if not r.json()["success"]} == {created["data"]["lead_id"]}
    with PostgresStore(deployment.db) as store:
        assert len(store.find_leads("+15558880001")) == 1
        assert len(store.decisions("+15558880001")) == 50

    # 1,000 distinct phones: 1,000 leads and 1,000 decisions
    phones = new_phones(1000)
    answers = asyncio.run(insert_all(urls, phones))
    assert Counter(r.status_code for r in answers) == {200: 1000}
    assert all(r.json()["success"] and r.json()["data"]["lead_id"] for r in answers)
    with PostgresStore(deployment.db) as store:
        assert store.counts() == {"leads": 1001, "dnc": 0, "decisions": 1050}


def test_worker_killed_mid_run_loses_no_lead(deployment, crm_sim, tmp_path):
    # the CRM holds every call until the doomed worker is dead, so the kill lands while that
    # worker has leads in its hands and the run cannot have finished; no held call times out
    deployment.crm_timeouts(300)
    crm_sim.set_knobs(hold=True)
    doomed = deployment.worker()
    phones = new_phones(450, "556") + new_phones(50, "556")[:50]  # 50 phones twice: created once, then duplicate
    leads = lead_file(tmp_path / "leads.csv", phones)
    run = subprocess.Popen(CLI + ["run", deployment.workflow, "--leads", str(leads), "--db", deployment.db, "--engine",
                                  "temporal", "--temporal", deployment.temporal.target, "--task-queue",
                                  deployment.queue, "--no-progress", "--check-dup", "1", "--out",
                                  str(tmp_path / "out.jsonl")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=deployment.env)
    try:
        deadline = time.monotonic() + 120  # a backstop for a run that hangs, never reached by a slow one
        # the doomed worker, alone so far, takes the run's first leads: their CRM activities are in its
        # hands, one call out (its circuit breaker lets one call out until the CRM has answered once)
        while held(crm_sim) < 1:
            assert run.poll() is None, run.stderr.read()
            assert time.monotonic() < deadline, ("no CRM call reached the simulator", crm_sim.stats())
            time.sleep(0.05)
        deployment.worker()  # the survivor: it takes leads too, and the doomed worker's after its death
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(30)
        with PostgresStore(deployment.db) as store:
            assert store.counts()["decisions"] == 0  # mid-run by construction: no CRM call answered yet
        crm_sim.set_knobs(hold=False)
        _, err = run.communicate(timeout=300)
    finally:
        crm_sim.set_knobs(hold=False)
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    with PostgresStore(deployment.db) as store:
        counts = store.counts()
        rows = store.decided_rows(WORKFLOW, str(leads.resolve()))
        leads_per_phone = [len(store.find_leads(f"+1{p}")) for p in set(phones)]
    assert counts["decisions"] == 500 and rows == set(range(2, 502))  # every row once (line 1: the header)
    assert counts["leads"] == 450 and set(leads_per_phone) == {1}  # at most one lead per row, one per phone
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert Counter(r["action"] for r in records) == {"created": 450, "duplicate": 50}


@pytest.mark.parametrize("declared", [True, False], ids=["connection-limits", "crm-rate-flag"])
def test_crm_rate_capped_across_workers(deployment, crm_sim, tmp_path, declared):
    """20 requests/s, declared by the connection's limits or given as --crm-rate:
    two workers together keep to it, and every lead still gets its CRM call."""
    deployment.crm_timeouts(300)  # none a starved machine reaches: a lead's call fails only if the product gives up
    if declared:
        deployment.limit_crm(requests=20, per_seconds=1)
        flags, origin = ["--crm-workers", "2"], "the connection limits"
    else:
        flags, origin = ["--crm-rate", "20", "--crm-workers", "2"], "--crm-rate"
    deployment.worker(*flags)
    deployment.worker(*flags)
    assert all(line.endswith(f"CRM rate 20/s for 2 worker(s), from {origin}") for line in deployment.ready), \
        deployment.ready
    leads = lead_file(tmp_path / "leads.csv", new_phones(120, "557"))
    done = deployment.run(leads, "--concurrency", "64")
    assert done.returncode == 0, done.stderr
    stats = crm_sim.stats()
    with PostgresStore(deployment.db) as store:
        assert store.counts()["decisions"] == 120
    # every lead decided by a real CRM answer (none by on_error), so the cap below held for all 120 calls
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 120
    assert Counter((r["decided_by"], r["crm"]["called"], r["crm"]["status_code"], r["crm"]["error"]) for r in records) \
        == {("default_status", True, 200, None): 120}, [r for r in records if r["decided_by"] != "default_status"][:3]
    assert stats["requests"] >= 120, (stats, done.stderr)
    assert stats["busiest_second"] <= 20, stats


def test_embedded_and_temporal_decide_alike(deployment, crm_sim, tmp_path):
    """The same lead file through both engines: the same decision for each row."""
    deployment.worker()
    deployment.worker()
    rows = (Path(__file__).parent.parent / "examples" / "leads.csv").read_text(encoding="utf-8").splitlines()
    extra = ["5550100101,1,Again,Known,,1000", "5559990000,1,New,Person,,1000", "5559990000,1,New,Twice,,1000",
             ",1,No,Phone,,1000", "12,1,Bad,Phone,,1000", "5559990001,1,Bad,Email,not-an-email,1000"]
    leads = tmp_path / "leads.csv"
    leads.write_text("\n".join(rows + extra) + "\n", encoding="utf-8")

    embedded = subprocess.run(CLI + ["run", deployment.workflow, "--leads", str(leads), "--db", str(tmp_path / "e.db"),
                                     "--crm-url", crm_sim.url, "--check-dup", "1", "--no-progress"],
                              capture_output=True, text=True, env=deployment.env, timeout=120)
    assert embedded.returncode == 0, embedded.stderr
    temporal = deployment.run(leads, "--check-dup", "1")
    assert temporal.returncode == 0, temporal.stderr

    def outcomes(stdout: str) -> dict:
        by_phone = defaultdict(list)
        for line in stdout.splitlines():
            r = json.loads(line)
            key = r["phone_e164"] or f"row {r['source_row']}"
            by_phone[key].append((r["action"], r["status"], r["rules_row"], r["rules_row_name"], r["decided_by"], r["code"], r["text"],
                                  r["success"], r["dnc_added"], r["crm"]["status_code"], r["crm"]["error"]))
        # two rows of one phone may be decided in either order; the pair of decisions must agree
        return {k: sorted(v, key=repr) for k, v in by_phone.items()}

    got, want = outcomes(temporal.stdout), outcomes(embedded.stdout)
    assert got == want
    assert {a for v in want.values() for a, *_ in v} >= {"created", "duplicate", "rejected"}


def test_serve_rides_out_a_temporal_outage(pg_url, crm_sim, tmp_path):
    """Temporal goes away under a running `serve`: an insert gets Convoso's
    retry-later error and the log one line; when Temporal is back, on the same
    address, inserts work again without restarting anything."""
    from dupcheck_plugin.dev.temporal import TemporalDevServer

    def insert(url: str, phone: str) -> httpx.Response:
        return httpx.post(url + "/v1/leads/insert", data={"auth_token": TOKEN, "phone_number": phone, "list_id": "100"},
                          timeout=120)

    with TemporalDevServer() as server:  # its own: this test stops it
        d = Deployment(server, pg_url, crm_sim.url, tmp_path)
        try:
            d.worker()
            url = d.serve()
            serve_log = tmp_path / "serve1.log"
            assert insert(url, "5558870001").json()["success"]

            server.stop()
            down = insert(url, "5558870002")
            assert down.status_code == 503, down.text
            assert down.json() == {"success": False, "code": 6500,
                                   "text": "Internal error: the decision could not be stored, retry later"}
            logged = serve_log.read_text(encoding="utf-8")
            assert "Traceback" not in logged, logged
            [entry] = [json.loads(line) for line in logged.splitlines()]  # the failure's one line, nothing else
            assert entry["level"] == "error", logged
            assert entry["msg"].startswith(f"deciding a lead failed: Temporal at {server.target} did not answer: "), logged

            server.start()  # a new, empty server on the same port
            assert server.target == d.temporal.target
            back = insert(url, "5558870002")
            assert back.status_code == 200 and back.json()["success"] and back.json()["data"]["lead_id"], back.text
        finally:
            d.stop()
    with PostgresStore(pg_url) as store:
        assert store.counts() == {"leads": 2, "dnc": 0, "decisions": 2}


# --- what goes wrong before anything runs: one clear line, a non-zero exit, no traceback ---

def fails_cleanly(args: list[str], env: dict, code: int = 1) -> str:
    """Run the CLI; it must stop by itself with ``code`` and one message, no traceback."""
    done = subprocess.run(CLI + args, capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.strip() and "Traceback" not in done.stderr, done.stderr
    return done.stderr


def command(kind: str, workflow: str, tmp: Path, *extra: str) -> list[str]:
    if kind == "worker":
        return ["worker", workflow, *extra]
    if kind == "run":
        leads = lead_file(tmp / "leads.csv", ["5559870001"])
        return ["run", workflow, "--leads", str(leads), "--no-progress", *extra]
    return ["serve", workflow, "--port", str(free_port()), *extra]


ERROR_ENV = {**os.environ, "HUBSPOT_TOKEN": "sim-token", "DUPCHECK_API_TOKENS": TOKEN}


@pytest.mark.parametrize("kind", ["run", "serve"])
def test_engine_temporal_without_its_address(kind, tmp_path):
    err = fails_cleanly(command(kind, WORKFLOW, tmp_path, "--engine", "temporal", "--db", str(tmp_path / "x.db")),
                        ERROR_ENV, code=2)
    assert "--engine temporal needs --temporal HOST:PORT" in err


def test_worker_without_an_address(tmp_path):
    err = fails_cleanly(command("worker", WORKFLOW, tmp_path, "--db", str(tmp_path / "x.db")), ERROR_ENV, code=2)
    assert "needs --temporal HOST:PORT" in err


@pytest.mark.parametrize("kind", ["worker", "run", "serve"])
def test_temporal_unreachable(kind, tmp_path):
    target = f"127.0.0.1:{free_port()}"  # nothing listens there
    engine = [] if kind == "worker" else ["--engine", "temporal"]
    err = fails_cleanly(command(kind, WORKFLOW, tmp_path, *engine, "--temporal", target, "--db", str(tmp_path / "x.db")),
                        ERROR_ENV)
    assert f"cannot reach Temporal at {target}: Connection refused" in err
    assert not (tmp_path / "x.db").exists() or kind == "worker"  # serve and run stop before opening the store


@pytest.mark.parametrize("kind", ["worker", "run", "serve"])
def test_unknown_namespace(kind, temporal_server, tmp_path):
    engine = [] if kind == "worker" else ["--engine", "temporal"]
    err = fails_cleanly(command(kind, WORKFLOW, tmp_path, *engine, "--temporal", temporal_server.target,
                                "--namespace", "no-such-ns", "--db", str(tmp_path / "x.db")), ERROR_ENV)
    assert f"Temporal at {temporal_server.target} has no namespace 'no-such-ns'" in err


def test_worker_on_a_workflow_that_fails_check(temporal_server, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text((shipped_dir("workflows") / f"{WORKFLOW}.toml").read_text(encoding="utf-8")
                      .replace('connect = "hubspot"', 'connect = "hubspott"'), encoding="utf-8")
    assert 'connect = "hubspott"' in broken.read_text(encoding="utf-8")
    checked = subprocess.run(CLI + ["check", str(broken)], capture_output=True, text=True, env=ERROR_ENV, timeout=60)
    assert checked.returncode == 1  # what `dupcheck check` says of it ...
    err = fails_cleanly(command("worker", str(broken), tmp_path, "--temporal", temporal_server.target,
                                "--db", str(tmp_path / "x.db")), ERROR_ENV)
    assert "hubspott" in err and "did you mean" in err  # ... the worker says too, and polls nothing


# each command and engine meets each failure once (they share the store's opening)
@pytest.mark.parametrize("kind, engine, db", [
    ("worker", None, "unreachable"), ("worker", None, "bad-credentials"),
    ("run", "embedded", "unreachable"), ("serve", "embedded", "bad-credentials"),
    ("run", "temporal", "bad-credentials"), ("serve", "temporal", "unreachable"),
])
def test_postgres_unreachable_or_refusing(kind, engine, db, pg_cluster, temporal_server, tmp_path):
    if db == "unreachable":
        url, reason = f"postgresql://dupcheck:s3cret@127.0.0.1:{free_port()}/leads", "Connection refused"
    else:
        url, reason = f"postgresql://nobody:s3cret@127.0.0.1:{pg_cluster.port}/postgres", 'role "nobody" does not exist'
    extra = ["--temporal", temporal_server.target] if kind == "worker" or engine == "temporal" else []
    engine_flag = ["--engine", engine] if engine else []
    err = fails_cleanly(command(kind, WORKFLOW, tmp_path, *engine_flag, *extra, "--db", url), ERROR_ENV)
    assert "cannot connect to PostgreSQL at postgresql://" in err and reason in err, err
    assert "s3cret" not in err
