"""Commands import only what they use: ``dupcheck check`` is a cold start a
user pays on every save, so it must not load the server, the CRM simulator,
the HTTP clients or the connection code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import unlimited_copy

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e  # starts dupcheck processes

_PROBE = """
import json, sys
from dupcheck_plugin.cli.main import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""

_NOT_FOR_CHECK = ("httpx", "aiohttp", "starlette", "uvicorn", "authlib",
                  "dupcheck_plugin.server", "dupcheck_plugin.sim", "dupcheck_plugin.http",
                  "dupcheck_plugin.connection", "dupcheck_plugin.nodes.convoso_connect",
                  "dupcheck_plugin.engine.runner", "dupcheck_plugin.store.sqlite")


def _modules_after(*argv: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=env)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["rc"], out["modules"], proc.stdout + proc.stderr


# check reads whether an auth secret is set: that one stdlib-only module (and its
# package's empty __init__) is all of the connection code it may load
_ALLOWED = ("dupcheck_plugin.connection", "dupcheck_plugin.connection.secrets")


def _loaded(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    return [m for m in modules if m not in _ALLOWED and any(m == r or m.startswith(r + ".") for r in roots)]


# a clean check needs none of these either: jsonschema only explains a file the fast
# schema check refused, tree-sitter only places a problem, phonenumbers parses no lead,
# importlib.metadata loads plugins and no installed distribution declares one here
_NOT_FOR_A_CLEAN_CHECK = ("jsonschema", "referencing", "tree_sitter", "tree_sitter_toml", "phonenumbers", "orjson",
                          "importlib.metadata")
# and an adaptor alone has no rules table, no workflow and no connection to check, and stores nothing
_NOT_FOR_AN_ADAPTOR = ("dupcheck_plugin.nodes.api_duplicate_check", "dupcheck_plugin.rules.decide", "re2",
                       "dupcheck_plugin.engine.workflow", "dupcheck_plugin.nodes.connect_check", "dupcheck_plugin.store")


def test_check_imports_neither_server_nor_simulator_nor_http_client():
    rc, modules, out = _modules_after("check", "workflows/hubspot_dupcheck.toml", "adaptors")
    assert rc == 0, out
    assert "dupcheck_plugin.config.checker" in modules  # it did check
    assert _loaded(modules, _NOT_FOR_CHECK + _NOT_FOR_A_CLEAN_CHECK) == []


def test_checking_an_adaptor_leaves_the_rules_out():
    rc, modules, out = _modules_after("check", "adaptors/hubspot_contacts_search.toml")
    assert rc == 0, out
    assert "dupcheck_plugin.adaptor.render" in modules  # its templates were checked
    assert _loaded(modules, _NOT_FOR_CHECK + _NOT_FOR_A_CLEAN_CHECK + _NOT_FOR_AN_ADAPTOR) == []


def test_a_schema_mistake_brings_jsonschema_in_to_explain_it(tmp_path):
    bad = tmp_path / "adaptors" / "a.toml"
    bad.parent.mkdir()
    schema_line, rest = (ROOT / "adaptors" / "hubspot_contacts_search.toml").read_text().split("\n", 1)
    bad.write_text(f"{schema_line}\nnme = 1\n{rest}")
    rc, modules, out = _modules_after("check", str(bad))
    assert rc == 1, out
    assert "unknown key 'nme'" in out and "a.toml:" in out
    assert "jsonschema" in modules and "tree_sitter" in modules
    assert _loaded(modules, _NOT_FOR_CHECK) == []


def test_an_invalid_file_is_still_reported_without_them(tmp_path):
    bad = tmp_path / "wf.toml"
    bad.write_text('name = "x"\n[[nodes]]\nid = "a"\ntype = "convoso_connect"\nconfig = { adaptor = "no_such_adaptor" }\n')
    rc, modules, out = _modules_after("check", str(bad))
    assert rc == 1, out
    assert "no_such_adaptor" in out
    assert _loaded(modules, _NOT_FOR_CHECK) == []


def test_help_still_lists_every_command():
    proc = subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for command in ("demo", "run", "explain", "check", "render", "crm-sim", "serve", "plugins"):
        assert f"    {command} " in proc.stdout or f"    {command}\n" in proc.stdout, command


# a run of a bearer-token workflow without vendor limits on North American numbers: no
# command's module but its own, no schema library to report problems it does not have, no
# OAuth stack, no rate-limit library, no phone metadata, no progress bar, no XML parser for JSON answers
_NOT_FOR_THIS_RUN = ("dupcheck_plugin.server", "dupcheck_plugin.sim", "starlette", "uvicorn", "dupcheck_plugin.cli.check",
                     "dupcheck_plugin.cli.serve", "dupcheck_plugin.cli.explain", "dupcheck_plugin.config.checker",
                     "jsonschema", "referencing", "tree_sitter", "authlib", "joserfc", "cryptography",
                     "dupcheck_plugin.connection.oauth", "limits", "phonenumbers", "tqdm", "temporalio",
                     "defusedxml", "xml.etree")


def test_run_imports_only_what_this_run_uses(tmp_path, crm_stub):
    workflow = unlimited_copy(ROOT / "workflows" / "hubspot_dupcheck.toml", tmp_path)
    leads = tmp_path / "leads.csv"
    leads.write_text("phone_number,first_name\n(555) 010-8301,A\n")
    rc, modules, out = _modules_after("run", str(workflow), "--leads", str(leads), "--db", str(tmp_path / "r.db"),
                                      "--out", str(tmp_path / "out.jsonl"), "--no-progress", "--crm-url", crm_stub.url,
                                      env={**os.environ, "HUBSPOT_TOKEN": "t"})
    assert rc == 0, out
    assert len(crm_stub.requests) == 1  # it did ask the CRM
    assert json.loads((tmp_path / "out.jsonl").read_text())["action"] == "created"
    assert _loaded(modules, _NOT_FOR_THIS_RUN) == []
