"""Shared fixtures: a CRM simulator over loopback, independent workflow files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dupcheck_plugin.resources import shipped_dir

CONTACTS = shipped_dir("examples") / "contacts.csv"


@pytest.fixture(scope="session")
def sim_server():
    """One CRM simulator on a free loopback port (real HTTP) for the whole run."""
    from dupcheck_plugin.sim import SimulatorThread

    with SimulatorThread(CONTACTS) as sim:
        yield sim


@pytest.fixture
def crm_sim(sim_server):
    """The shared simulator with default knobs and zeroed counters; knobs reset after the test."""
    from dupcheck_plugin.sim import Knobs

    sim_server.set_knobs(Knobs())
    sim_server.reset()
    yield sim_server
    sim_server.set_knobs(Knobs())


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
    """A workflow file written the way a user would, outside the repo's workflows/."""
    connect = {"adaptor": adaptor, "timeout": 5, **(connect or {})}
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
