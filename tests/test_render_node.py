"""`dupcheck render WORKFLOW --node ID`: what a connection really sends (its
auth applied and masked, its URL override, --crm-url), and auth sanity at
`dupcheck check` time."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dupcheck_plugin.cli.main import main
from dupcheck_plugin.config.checker import check_paths
from dupcheck_plugin.plugins import default_registry
from dupcheck_plugin.resources import shipped_dir

LEAD = json.dumps({"phone_number": "5550100101", "email": "ann@example.com"})


def workflow(tmp_path: Path, connection: str, name: str = "wf.toml") -> Path:
    """The shipped generic JSON workflow with the connect node's config replaced."""
    text = (shipped_dir("workflows") / "generic_json_dupcheck.toml").read_text(encoding="utf-8")
    old = 'config = { adaptor = "generic_json", timeout = 5 }'
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, f"config = {{ adaptor = \"generic_json\", {connection} }}")
                    .replace("#:schema ../schemas/", f"#:schema {shipped_dir('schemas').as_posix()}/"), encoding="utf-8")
    return path


def render(capsys, *argv) -> tuple[int, dict | str, str]:
    code = main(["render", *map(str, argv), "--lead", LEAD, "-o", "json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else out), err


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for name in ("GENERIC_CRM_TOKEN", "CLOSE_KEY", "CLOSE_AUTH"):
        monkeypatch.delenv(name, raising=False)


def test_the_connection_applies_auth_masked_and_overrides_the_url(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLOSE_KEY", "real-secret-value")
    monkeypatch.setenv("GENERIC_CRM_TOKEN", "t")
    path = workflow(tmp_path, 'url = "https://sandbox.example.com:8443", auth = { type = "header", name = "X-Close-Key", '
                              'secret = "CLOSE_KEY" }, headers = { X-Trace = "yes" }')
    code, view, err = render(capsys, path, "--node", "crm")
    assert code == 0, err
    assert view["url"].startswith("https://sandbox.example.com:8443/")
    assert view["headers"]["X-Close-Key"] == "****" and view["headers"]["X-Trace"] == "yes"
    assert "real-secret-value" not in json.dumps(view)
    adaptor_only = render(capsys, "generic_json")[1]
    assert adaptor_only["url"].startswith("https://") and "X-Close-Key" not in adaptor_only["headers"]
    assert adaptor_only["body"] == view["body"]


def test_crm_url_wins_and_missing_secrets_are_named(tmp_path, capsys):
    path = workflow(tmp_path, 'url = "https://sandbox.example.com", auth = { type = "bearer", secret = "CLOSE_KEY" }')
    code, view, err = render(capsys, path, "--node", "crm", "--crm-url", "http://127.0.0.1:9999")
    assert code == 0
    assert view["url"].startswith("http://127.0.0.1:9999/")
    assert view["headers"]["Authorization"] == "Bearer ****"
    assert "CLOSE_KEY" in err and "GENERIC_CRM_TOKEN" in err and "not set" in err


def test_the_adaptor_form_takes_crm_url_too(capsys):
    code, view, _ = render(capsys, "generic_json", "--crm-url", "http://127.0.0.1:9999")
    assert code == 0 and view["url"].startswith("http://127.0.0.1:9999/")


def test_a_node_that_sends_nothing_or_does_not_exist_is_a_usage_error(tmp_path, capsys):
    path = workflow(tmp_path, "timeout = 5")
    code, _, err = render(capsys, path, "--node", "dupcheck")
    assert code == 2 and "api_duplicate_check node, which sends no request (connection nodes: crm)" in err
    code, _, err = render(capsys, path, "--node", "crn")
    assert code == 2 and "no such node" in err and "did you mean 'crm'?" in err


def test_a_workflow_without_node_is_a_usage_error_that_names_its_connection_nodes(tmp_path, capsys):
    code, _, err = render(capsys, workflow(tmp_path, "timeout = 5"))
    assert code == 2
    assert err.strip().endswith("is a workflow, not an adaptor: render a workflow's request with --node ID "
                                "(its connection nodes: crm)"), err
    # a workflow that does not load gets no hint, only what it is
    code, _, err = render(capsys, workflow(tmp_path, 'timeout = "ten"', name="bad.toml"))
    assert code == 2 and err.strip().endswith("is a workflow, not an adaptor"), err


def test_a_workflow_named_without_node_gets_the_same_hint(tmp_path, capsys, monkeypatch):
    code, _, err = render(capsys, "hubspot_dupcheck")  # a shipped workflow's name, not an adaptor's
    assert code == 2
    assert err.strip() == ("dupcheck render: hubspot_dupcheck is a workflow, not an adaptor: render a workflow's "
                           "request with --node ID (its connection nodes: hubspot)"), err
    monkeypatch.chdir(tmp_path)  # a workflow file found by name in the working folder
    workflow(tmp_path, "timeout = 5", name="mine.toml")
    code, _, err = render(capsys, "mine")
    assert code == 2 and err.strip().endswith("(its connection nodes: crm)"), err
    # a name that is neither still lists the shipped adaptors
    code, _, err = render(capsys, "hubspot_dupchek")
    assert code == 2 and "no such adaptor file or shipped adaptor (shipped: " in err and "--node" not in err


def test_an_invalid_workflow_is_named(tmp_path, capsys):
    path = workflow(tmp_path, 'timeout = "ten"')
    code, _, err = render(capsys, path, "--node", "crm")
    assert code == 1 and "workflow" in err and "is invalid" in err and "'ten' is not of type 'number'" in err


# --- auth sanity at check time ---------------------------------------------------------

def check(path: Path):
    [result] = check_paths([path], default_registry())
    return result


def test_basic_auth_secret_without_a_colon_is_a_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOSE_AUTH", "api_9f8e7d")  # a bare API key: the CRM would answer 401
    text_path = workflow(tmp_path, 'auth = { type = "basic", secret = "CLOSE_AUTH" }')
    result = check(text_path)
    [problem] = result.problems
    assert problem.code == "auth_basic_secret" and "CLOSE_AUTH" in problem.message and "user:password" in problem.message
    assert "api_9f8e7d" not in problem.message  # never print a secret
    line = text_path.read_text(encoding="utf-8").split("\n")[problem.line - 1]
    assert line[problem.column - 1:].startswith('"CLOSE_AUTH"')

    monkeypatch.setenv("CLOSE_AUTH", "api_9f8e7d:")  # Close's form: the key as user, empty password
    assert check(text_path).problems == []
    assert base64.b64decode(base64.b64encode(b"api_9f8e7d:")) == b"api_9f8e7d:"


@pytest.mark.parametrize("value, credential", [
    ("pat-na1-4f3a2b1c-9d8e-4f7a-b6c5-1234567890ab", True),  # a HubSpot private app token: not a name at all
    ("sk_live_51HaBcDeFgHiJkLmNoPqRsTuVwX", True),  # a name by the pattern, a Stripe-style key by its look
    ("9f86d081884c7d659a2feaa0c55ad015", True),  # 32 hex characters
    ("HUBSPOT-TOKEN", False),  # not a name, not a credential either
])
def test_a_credential_where_a_secret_name_goes_is_a_problem_that_never_shows_it(tmp_path, capsys, value, credential):
    """Before: "'pat-na1-...' does not match '^[A-Za-z_][A-Za-z0-9_]*$'" with the token quoted, or (a
    value that fits the pattern) a warning that "sk_live_... is not set in this environment", and both
    over the file's line with the token in it."""
    path = workflow(tmp_path, f'auth = {{ type = "bearer", secret = "{value}" }}')
    [problem] = check(path).problems
    assert problem.path[-2:] == ("auth", "secret") and problem.line is not None
    assert ("looks like the credential itself" in problem.message) == credential, problem.message
    assert value not in problem.message
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr()
    assert value not in out.out + out.err
    assert 'secret = "' + "*" * len(value) + '"' in out.out + out.err  # the line shown, the value starred out
    assert "rotate" not in problem.message or credential


def test_the_schemas_secret_name_is_the_pattern_check_words_its_message_for():
    from dupcheck_plugin.config.secret_names import NAME_PATTERN

    for file, defs in (("workflow.schema.json", ("$defs", "convoso_connect", "$defs")),
                       ("convoso_connect.schema.json", ("$defs",))):
        schema = json.loads((shipped_dir("schemas") / file).read_text(encoding="utf-8"))
        for key in defs:
            schema = schema[key]
        assert schema["secret_name"]["pattern"] == NAME_PATTERN, file


@pytest.mark.parametrize("name", ["CRM2_TOKEN3_V4_APP5_X6", "sk_token_name", "AKIA_PROD_KEY", "hubspot_token_v2"])
def test_an_unset_name_that_merely_has_digits_or_a_prefix_is_only_a_warning(tmp_path, name):
    result = check(workflow(tmp_path, f'auth = {{ type = "bearer", secret = "{name}" }}'))
    assert result.problems == [] and [w.code for w in result.warnings if w.path[-1] == "secret"] == [
        "auth_secret_missing"]


def test_a_set_variable_is_a_name_however_it_looks(tmp_path, monkeypatch):
    monkeypatch.setenv("AKIA_KEYS_ACCOUNT1_2B3C4D5E", "x")  # starts as an AWS key id does; it is set: a name
    assert check(workflow(tmp_path, 'auth = { type = "bearer", secret = "AKIA_KEYS_ACCOUNT1_2B3C4D5E" }')).problems == []


def test_run_does_not_echo_a_credential_given_as_a_secret_name():
    from dupcheck_plugin.connection.secrets import SecretMissing, Secrets

    with pytest.raises(SecretMissing) as caught:
        Secrets({}).get("sk_live_51HaBcDeFgHiJkLmNoPqRsTu")
    assert "sk_live" not in str(caught.value) and "looks like the credential itself" in str(caught.value)
    with pytest.raises(SecretMissing, match="secret HUBSPOT_TOKEN not set"):
        Secrets({}).get("HUBSPOT_TOKEN")


@pytest.mark.parametrize("auth", ['{ type = "bearer", secret = "CLOSE_KEY" }',
                                  '{ type = "header", name = "X-Key", secret = "CLOSE_KEY" }',
                                  '{ type = "query", name = "api_key", secret = "CLOSE_KEY" }',
                                  '{ type = "basic", secret = "CLOSE_KEY" }'])
def test_a_missing_auth_secret_is_a_warning_naming_the_variable(tmp_path, auth):
    result = check(workflow(tmp_path, f"auth = {auth}"))
    assert result.problems == []
    [warning] = [w for w in result.warnings if w.code == "auth_secret_missing"]
    assert "CLOSE_KEY" in warning.message and warning.line is not None
