"""Processes the client-side benchmarks start: the stub CRM, ``dupcheck`` commands."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

# The bench workflow: the shipped HubSpot adaptor and rules, no connection cap
# (so --concurrency sets the connections, as for the bare client), no
# request limiter and no batching: the stub has no quota, the baseline sends
# one request per lead, and these figures are about dupcheck's own cost per
# lead. Quota and batching figures are bench_crm_limits'.
BENCH_WORKFLOW = """\
name = "bench_hubspot"
[defaults]
phone_code = "1"
list_id = "1000"

[[nodes]]
id = "hubspot"
type = "convoso_connect"
config = { adaptor = "hubspot_contacts_search", timeout = 30, retry = { attempts = 1 }, limits = false, batch = false }

[[nodes]]
id = "dupcheck"
type = "api_duplicate_check"
[nodes.config]
connect = "hubspot"
on_error = { action = "create", status = "NOTCHECKED" }
rules = [
  { name = "customer", key = "results.0.properties.lifecyclestage", value = "customer", create_lead = false, add_to_dnc = true, success = false },
  { name = "known", key = "total", match = "gt", value = 0, create_lead = false, add_to_dnc = false, success = false },
]
"""

ENV = {**os.environ, "HUBSPOT_TOKEN": "bench"}
DUPCHECK = [sys.executable, "-m", "dupcheck_plugin.cli.main"]


def dupcheck_cmd(workflow: Path, leads: Path, db: Path, url: str, in_flight: int) -> list[str]:
    """``dupcheck run`` of a lead file against ``url``, records discarded."""
    return DUPCHECK + ["run", str(workflow), "--leads", str(leads), "--db", str(db), "--out", os.devnull,
                       "--no-progress", "--crm-url", url, "--concurrency", str(in_flight)]


def bare_cmd(url: str, leads: Path, in_flight: int) -> list[str]:
    """The bare aiohttp baseline: one HubSpot search per row of the lead file."""
    return [sys.executable, "-m", "benchmarks.bare_client", url, str(leads), "--in-flight", str(in_flight)]


def write_workflow(tmp: Path) -> Path:
    path = tmp / "bench_hubspot.toml"
    path.write_text(BENCH_WORKFLOW)
    return path


class ChildURL(str):
    """A started server's URL, with the ``pid`` of its process (whose CPU a benchmark may read)."""

    pid: int


@contextmanager
def child_url(cmd: list[str], marker: str = "http://", env: dict | None = None):
    """Start a server process that prints its URL on its first line; yield the URL (a :class:`ChildURL`)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = proc.stdout.readline()
        if marker not in line:
            raise RuntimeError(f"{' '.join(cmd[:5])} did not start: {line!r}")
        url = ChildURL(line[line.index(marker):].split()[0].strip())
        url.pid = proc.pid
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stub(latency_ms: float = 0.0, answer: str | None = None):
    cmd = [sys.executable, "-m", "benchmarks.stub_server", "--port", "0", "--latency-ms", str(latency_ms)]
    if answer is not None:
        cmd += ["--answer", answer]
    return child_url(cmd)
