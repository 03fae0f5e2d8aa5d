"""The layer contracts of pyproject.toml ([tool.importlinter]) hold, and they
would catch a pure module that starts doing I/O."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    assert "2 kept, 0 broken" in proc.stdout


def test_adaptor_importing_httpx_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "dupcheck_plugin", tmp_path / "dupcheck_plugin",
                    ignore=shutil.ignore_patterns("__pycache__", "_shipped"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    fields = tmp_path / "dupcheck_plugin" / "adaptor" / "fields.py"
    fields.write_text(fields.read_text(encoding="utf-8") + "\nimport httpx  # a pure module doing I/O\n")
    proc = lint(tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert "adaptor/ and rules/ are pure" in proc.stdout and "BROKEN" in proc.stdout
    assert "dupcheck_plugin.adaptor.fields -> httpx" in proc.stdout
