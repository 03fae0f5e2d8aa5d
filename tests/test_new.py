"""`dupcheck new adaptor NAME`: a starting adaptor and workflow that pass `check` where they are written."""

from __future__ import annotations

import pytest

from dupcheck_plugin.cli.main import main
from dupcheck_plugin.config.checker import check_paths
from dupcheck_plugin.config.kinds import schema_target
from dupcheck_plugin.plugins import default_registry
from dupcheck_plugin.resources import shipped_dir, shipped_names


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("source", shipped_names("adaptors"))
def test_new_adaptor_and_workflow_pass_check(tmp_path, capsys, source):
    assert main(["new", "adaptor", "close_crm", "--from", source, "--dir", "project"]) == 0
    adaptor = tmp_path / "project" / "adaptors" / "close_crm.toml"
    workflow = tmp_path / "project" / "workflows" / "close_crm_dupcheck.toml"
    assert capsys.readouterr().out.split() == ["project/adaptors/close_crm.toml", "project/workflows/close_crm_dupcheck.toml"]
    results = check_paths([adaptor, workflow], default_registry())
    assert [(r.kind, r.problems, r.warnings) for r in results] == [("adaptor", [], []), ("workflow", [], [])]
    for path, schema in ((adaptor, "adaptor.schema.json"), (workflow, "workflow.schema.json")):
        text = path.read_text(encoding="utf-8")
        target = (path.parent / schema_target(text)).resolve()
        assert target == (shipped_dir("schemas") / schema).resolve()
        assert "\n# Change first:" in text
    assert 'name = "close_crm"' in adaptor.read_text(encoding="utf-8")
    assert 'adaptor = "close_crm"' in workflow.read_text(encoding="utf-8")


def test_new_never_overwrites(tmp_path, capsys):
    assert main(["new", "adaptor", "acme"]) == 0
    (tmp_path / "adaptors" / "acme.toml").write_text("# mine\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["new", "adaptor", "acme"]) == 2
    assert "already exist" in capsys.readouterr().err
    assert (tmp_path / "adaptors" / "acme.toml").read_text(encoding="utf-8") == "# mine\n"


@pytest.mark.parametrize("argv, fragment", [
    (["new", "adaptor", "acme", "--from", "hubspt_contacts_search"], "did you mean 'hubspot_contacts_search'?"),
    (["new", "adaptor", "ac/me"], "not a usable name"),
])
def test_new_usage_errors(capsys, argv, fragment):
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err
