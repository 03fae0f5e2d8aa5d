"""docs/plugin-guide.md, as written: its blocks make a project, which is
installed (a wheel, through its own pyproject's entry point) and whose tests
pass with dupcheck's pytest plugin."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugin-guide.md"


def write_project(base: Path) -> Path:
    blocks = re.findall(r"```(?:toml|python)\n# acme-dupcheck/(\S+)\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    assert {name for name, _ in blocks} == {"pyproject.toml", "acme_dupcheck.py", "adaptors/acme_search.toml",
                                             "workflows/acme.toml", "workflows/vip.toml", "tests/test_acme.py"}
    project = base / "acme-dupcheck"
    for name, text in blocks:
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return project


def test_the_guide_plugin_installs_and_its_tests_pass(tmp_path):
    project = write_project(tmp_path)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(project)], check=True, timeout=600, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = json.loads(subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", "plugins", "-o", "json"],
                                       capture_output=True, text=True, env=env, timeout=60, check=True).stdout)
    acme = next(p for p in listed if p["name"] == "acme")
    assert (acme["node_types"], acme["filters"], acme["distribution"]) == (
        ["acme_vip_list"], ["acme_dots"], "acme-dupcheck 1.0.0")
    checked = subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", "check", str(project / "workflows"),
                              str(project / "adaptors")], capture_output=True, text=True, env=env, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                           cwd=project, capture_output=True, text=True, env=env, timeout=300)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
