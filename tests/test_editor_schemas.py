"""Editors complete and check configs offline: taplo (the engine of VS Code's
Even Better TOML) validates every shipped file with the shipped schemas,
`dupcheck schemas export` gives a pip-installed user the same, and
docs/reference.md is the schemas written out."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomli

from dupcheck_plugin.cli.main import main
from dupcheck_plugin.config.bundle import bundle
from dupcheck_plugin.config.reference import generate
from dupcheck_plugin.config.schemas import shipped_schemas
from dupcheck_plugin.resources import shipped_dir

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(shipped_dir("adaptors").glob("*.toml")) + sorted(shipped_dir("workflows").glob("*.toml"))
TAPLO = shutil.which("taplo", path=str(Path(sys.executable).parent)) or shutil.which("taplo")


def taplo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    assert TAPLO, "taplo is installed by the dev extra (PyPI's taplo)"
    return subprocess.run([TAPLO, "check", "--colors", "never", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_workflow_schema_carries_the_node_schemas():
    schemas = shipped_schemas()
    assert schemas["workflow.schema.json"] == bundle(schemas["workflow.schema.json"], schemas), (
        "schemas/workflow.schema.json holds stale copies of the node schemas: "
        "run `python -m dupcheck_plugin.config.bundle`")


def test_workflow_schema_refers_to_no_other_file():
    refs = re.findall(r'"\$ref":\s*"([^"]*)"', (shipped_dir("schemas") / "workflow.schema.json").read_text())
    assert refs and all(ref.startswith("#/") for ref in refs)


def test_taplo_checks_every_shipped_file():
    proc = taplo(*(str(p) for p in CONFIGS), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"total={len(CONFIGS)}" in proc.stderr  # every file was looked at


def break_a_workflow(folder: Path) -> tuple[Path, int]:
    """A copy of a shipped workflow (with the schemas beside it) whose timeout is text; returns it and that line."""
    shutil.copytree(shipped_dir("schemas"), folder / "schemas")
    (folder / "workflows").mkdir()
    path = folder / "workflows" / "hubspot_dupcheck.toml"
    text = (shipped_dir("workflows") / "hubspot_dupcheck.toml").read_text(encoding="utf-8")
    assert "timeout = 10," in text
    text = text.replace("timeout = 10,", 'timeout = "ten",', 1)
    path.write_text(text, encoding="utf-8")
    return path, text[: text.index('"ten"')].count("\n") + 1


def test_taplo_fails_on_a_broken_workflow_with_its_line(tmp_path):
    path, line = break_a_workflow(tmp_path)
    proc = taplo(str(path), cwd=tmp_path)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert f"{path}:{line}:" in output and '"ten" is not of type "number"' in output, output


def test_schemas_export_writes_schemas_and_a_taplo_config(tmp_path, capsys):
    out_dir = tmp_path / "editor-schemas"
    assert main(["schemas", "export", str(out_dir)]) == 0
    listed = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in listed) == sorted(
        [".taplo.toml"] + [p.name for p in shipped_dir("schemas").glob("*.schema.json")])
    for name, schema in shipped_schemas().items():
        assert json.loads((out_dir / name).read_text(encoding="utf-8")) == schema
    config = tomli.loads((out_dir / ".taplo.toml").read_text(encoding="utf-8"))
    assert {r["include"][0] for r in config["rule"]} == {"**/adaptors/*.toml", "**/workflows/*.toml"}

    # a project without '#:schema' lines, checked through the exported configuration alone
    project = tmp_path / "project"
    (project / "workflows").mkdir(parents=True)
    shutil.copy(out_dir / ".taplo.toml", project / ".taplo.toml")
    good = (shipped_dir("workflows") / "hubspot_dupcheck.toml").read_text(encoding="utf-8").split("\n", 1)[1]
    (project / "workflows" / "good.toml").write_text(good, encoding="utf-8")
    (project / "workflows" / "bad.toml").write_text(good.replace("timeout = 10,", 'timeout = "ten",'), encoding="utf-8")
    assert taplo("workflows/good.toml", cwd=project).returncode == 0
    bad = taplo("workflows/bad.toml", cwd=project)
    assert bad.returncode != 0 and "is not of type" in bad.stdout + bad.stderr


def test_schemas_export_into_a_file_is_a_usage_error(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["schemas", "export", str(target)]) == 2
    assert "is not a folder" in capsys.readouterr().err


# --- docs/reference.md -------------------------------------------------------------

def test_reference_is_the_schemas_written_out():
    assert (ROOT / "docs" / "reference.md").read_text(encoding="utf-8") == generate(), (
        "docs/reference.md disagrees with schemas/: run `python -m dupcheck_plugin.config.reference`")


def _property_names(value) -> set[str]:
    names = set()
    if isinstance(value, dict):
        names |= set(value.get("properties", {}))
        for v in value.values():
            names |= _property_names(v)
    elif isinstance(value, list):
        for v in value:
            names |= _property_names(v)
    return names


def test_reference_names_every_key_of_every_schema():
    text = generate()
    keys = set(re.findall(r"^\| `([^`]+)`", text, re.MULTILINE))
    last_parts = {re.split(r"[.\[\]]+", k.rstrip("]"))[-1] for k in keys} | {k.split(".")[-1] for k in keys}
    for name, schema in shipped_schemas().items():
        missing = _property_names(schema) - last_parts
        assert not missing, f"{name}: {sorted(missing)} not in the reference"


def test_readme_links_to_the_reference():
    assert "docs/reference.md" in (ROOT / "README.md").read_text(encoding="utf-8")
