"""The shipped schemas and configs: well-formed, self-describing, resolved offline, valid."""

from __future__ import annotations

import json
import re
import socket
import urllib.request

import pytest
import referencing.exceptions
from jsonschema import Draft202012Validator

from dupcheck_plugin.cli.main import main
from dupcheck_plugin.config.schemas import BASE_ID, make_registry, validator_for, validator_for_schema
from dupcheck_plugin.resources import shipped_dir

SCHEMAS = sorted(shipped_dir("schemas").glob("*.schema.json"))
CONFIGS = sorted(shipped_dir("adaptors").glob("*.toml")) + sorted(shipped_dir("workflows").glob("*.toml"))
DIRECTIVE = re.compile(r"^#:schema (\.\./schemas/[a-z_]+\.schema\.json)$")


def test_the_expected_schemas_ship():
    assert {"adaptor.schema.json", "workflow.schema.json", "convoso_connect.schema.json",
            "api_duplicate_check.schema.json"} <= {p.name for p in SCHEMAS}


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_schema_is_a_valid_2020_12_schema_with_an_id(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == BASE_ID + path.name


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_toml_starts_with_a_schema_line(path):
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    match = DIRECTIVE.match(first)
    assert match, f"{path.name}: first line {first!r} is not '#:schema ../schemas/<name>.schema.json'"
    target = (path.parent / match.group(1)).resolve()
    assert target.is_file()
    assert target.name == {"adaptors": "adaptor.schema.json", "workflows": "workflow.schema.json"}[path.parent.name]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_toml_is_valid(capsys, path):
    code = main(["check", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert out == "ok: 1 file checked\n"  # no warning either


def test_all_shipped_configs_are_valid(capsys):
    code = main(["check"])
    out, err = capsys.readouterr()
    assert (code, out, err) == (0, f"ok: {len(CONFIGS)} files checked\n", "")


# --- references resolve locally, never over the network -------------------------------

@pytest.fixture
def no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


def test_registry_does_not_retrieve_unknown_uris(no_network):
    with pytest.raises(referencing.exceptions.NoSuchResource):
        make_registry().get_or_retrieve("https://example.com/schemas/remote.schema.json")
    assert no_network == []


def test_ref_to_an_unknown_https_uri_is_an_error_not_a_fetch(no_network):
    validator = validator_for_schema({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "properties": {"x": {"$ref": "https://example.com/schemas/remote.schema.json"}},
    })
    with pytest.raises(referencing.exceptions.Unresolvable):
        validator.validate({"x": 1})
    assert no_network == []


def test_shipped_refs_resolve_locally(no_network):
    # workflow.schema.json reaches the node schemas by relative $ref
    doc = {"nodes": [{"id": "crm", "type": "convoso_connect", "config": {"adaptor": "a", "timeout": "ten"}}]}
    errors = list(validator_for("workflow.schema.json").iter_errors(doc))
    assert any(list(e.absolute_path) == ["nodes", 0, "config", "timeout"] for e in errors)
    assert no_network == []
