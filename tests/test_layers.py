"""The layer contracts of pyproject.toml ([tool.importlinter]) hold, and they
would catch a pure module that starts doing I/O."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]


def lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # this tree's package, before any installed one
    return subprocess.run(LINT + ["--config", str(cwd / "pyproject.toml"), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_layer_contracts_hold():
    proc = lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize("module, line, contract, found", [
    ("adaptor/fields.py", "import httpx  # a pure module doing I/O", "adaptor/ and rules/ are pure",
     "dupcheck_plugin.adaptor.fields -> httpx"),
    ("temporal/worker.py", "from ..engine.workflow import load_workflow  # the engine's insides",
     "the Temporal host uses the public host API only", "dupcheck_plugin.temporal.worker -> dupcheck_plugin.engine"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract, found):
    shutil.copytree(ROOT / "dupcheck_plugin", tmp_path / "dupcheck_plugin",
                    ignore=shutil.ignore_patterns("__pycache__", "_shipped"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "dupcheck_plugin" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n")
    proc = lint(tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert any(contract in line and line.endswith("BROKEN") for line in proc.stdout.splitlines()), proc.stdout
    assert found in proc.stdout


def test_the_temporal_host_contract_names_every_private_module():
    """A module added to the package later is forbidden to temporal/ unless it is public."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    temporal = next(c for c in contracts if c["source_modules"] == ["dupcheck_plugin.temporal"])
    public = {"host", "hookspecs", "types", "errors", "codes", "temporal", "__init__", "_shipped"}
    modules = {p.stem for p in (ROOT / "dupcheck_plugin").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert {m.removeprefix("dupcheck_plugin.") for m in temporal["forbidden_modules"]} == modules - public
