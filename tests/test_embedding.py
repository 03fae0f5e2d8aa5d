"""docs/embedding.md's host, run as written in a virtual environment where
dupcheck is installed as a wheel (not editable), importing only the public
host API."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "embedding.md"
WORKFLOW = "hubspot_dupcheck"
LEADS = [{"phone_number": "5550109001"}, {"phone_number": "5550109002"}, {"phone_number": "5550109002"},
         {"phone_number": "555"}, {"phone_number": "5550109003", "email": "no-at-sign"}]


def example() -> str:
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
               if "my_host.py" in b]
    return code


def test_the_example_imports_only_the_public_host_api():
    imported = set()
    for node in ast.walk(ast.parse(example())):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert {m for m in imported if m.split(".")[0] == "dupcheck_plugin"} == {"dupcheck_plugin.host"}
    assert {m for m in imported if m.split(".")[0] != "dupcheck_plugin"} <= set(sys.stdlib_module_names)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A new venv with dupcheck installed from a wheel built from this tree; its
    dependencies are read from the test run's own environment (nothing downloaded)."""
    base = tmp_path_factory.mktemp("venv")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # a plain path in a .pth: the deps' folder is searched, the editable install's .pth in it is not run
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(ROOT)],
                   check=True, timeout=600, capture_output=True)
    return python


def run_host(python: Path, tmp_path: Path, crm_url: str, *extra: str) -> list[dict]:
    script = tmp_path / "my_host.py"
    script.write_text(example(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([str(python), str(script), WORKFLOW, str(tmp_path / "leads.db"), crm_url, *extra],
                          input="".join(json.dumps(lead) + "\n" for lead in LEADS), capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**env, "HUBSPOT_TOKEN": "t"})
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_the_embedding_example_runs_as_written_from_a_wheel(wheel_venv, tmp_path, crm_stub):
    where = subprocess.run([str(wheel_venv), "-c", "import dupcheck_plugin; print(dupcheck_plugin.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert where.startswith(str(wheel_venv.parent.parent)) and str(ROOT) not in where  # the wheel, not this tree
    crm_stub.answer("5550109001", {"total": 1, "results": [{"id": "1", "properties": {"lifecyclestage": "lead"}}]})
    expected = [
        {"phone": "+15550109001", "action": "duplicate", "code": 6009, "text": "The phone number already exists",
         "created": False},
        {"phone": "+15550109002", "action": "created", "code": 200, "text": "Lead created", "created": True},
        {"phone": "+15550109002", "action": "duplicate", "code": 6009, "text": "The phone number already exists",
         "created": False},  # check_dup: the store knows it now
        {"phone": None, "action": "rejected", "code": 6008, "text": "The phone number is invalid", "created": False},
        {"phone": "+15550109003", "action": "rejected", "code": 6079, "text": "Invalid Email(s)", "created": False},
    ]
    one_call = tmp_path / "one"
    one_call.mkdir()
    assert run_host(wheel_venv, one_call, crm_stub.url) == expected
    steps = tmp_path / "steps"
    steps.mkdir()
    assert run_host(wheel_venv, steps, crm_stub.url, "--steps") == expected
