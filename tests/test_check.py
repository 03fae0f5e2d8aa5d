"""`dupcheck check`: driven by the example files in tests/examples/ (valid/ and invalid/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dupcheck_plugin.cli.main import main
from dupcheck_plugin.resources import shipped_dir

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path(__file__).resolve().parent / "examples"
VALID, INVALID = EXAMPLES / "valid", EXAMPLES / "invalid"

# file -> (path of the problem, a fragment of its message, line, column of the offending key or value).
# One mistake, one problem: no follow-on reports, no hidden second mistake.
INVALID_CASES = {
    "adaptor_unknown_key.toml": ("request.header", "unknown key 'header' (did you mean 'headers'?)", 14, 1),
    "adaptor_bad_jinja.toml": ("request.body.phone", "Jinja syntax error at line 1: unexpected end of template", 16, 9),
    "adaptor_undeclared_variable.toml": ("request.body.zip", "template variable 'zip_code' is not provided", 17, 11),
    "adaptor_secrets_namespace.toml": ("request.headers.X-Api-Key", "use secrets.NAME for one secret", 16, 17),
    "adaptor_toml_syntax.toml": ("$", "TOML syntax error at line 9, column 15", 9, 15),
    "workflow_wrong_type.toml": ("nodes[0].config.timeout", "'ten' is not of type 'number'", 8, 48),
    "workflow_rule_missing_success.toml": ("nodes[1].config.rules[0]", "'success' is a required property", 17, 3),
    "workflow_unknown_adaptor.toml": ("nodes[0].config.adaptor", "no adaptor named 'acme_crm_lookup'", 8, 22),
    "workflow_unknown_connect.toml": ("nodes[1].config.connect", "no node with id 'hubspot'", 15, 11),
    "workflow_unknown_node_type.toml": ("nodes[0].type", "unknown node type 'convoso_conect'", 7, 8),
    "workflow_create_lead_status_number.toml": ("nodes[1].config.rules[0].status", "5 is not of type 'string'", 17, 83),
    "workflow_bad_regex.toml": ("nodes[1].config.rules[1].value", "not a regular expression RE2 can run", 18, 75),
    "workflow_duplicate_node_id.toml": ("nodes[1].id", "duplicate node id 'crm'", 11, 6),
}


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)  # file names print relative to the working directory


def check(capsys, *argv) -> tuple[int, str, str]:
    code = main(["check", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def check_json(capsys, *argv) -> tuple[int, dict]:
    code, out, _ = check(capsys, "-o", "json", *argv)
    return code, json.loads(out)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- the example files --------------------------------------------------------

def test_every_invalid_example_has_an_expectation_and_says_what_is_wrong():
    files = sorted(p.name for p in INVALID.glob("*.toml"))
    assert files == sorted(INVALID_CASES)
    for name in files:
        lines = (INVALID / name).read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("#:schema ../../../schemas/"), name
        assert lines[1].startswith("# invalid: "), name


@pytest.mark.parametrize("name", sorted(INVALID_CASES))
def test_invalid_example(capsys, name):
    path, fragment, line, column = INVALID_CASES[name]
    code, out, err = check(capsys, INVALID / name)
    assert code == 1
    [problem, source, caret] = out.splitlines()  # exactly one problem, with its line and a caret under it
    assert problem.startswith(f"{rel(INVALID / name)}:{line}:{column}::{path}: ") and fragment in problem, out
    number = f"  {line} | "
    assert source == number + (INVALID / name).read_text(encoding="utf-8").splitlines()[line - 1]
    assert caret.index("^") == len(number) + column - 1
    assert "1 file checked, 1 invalid" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("name", sorted(INVALID_CASES))
def test_invalid_example_json(capsys, name):
    path, fragment, line, column = INVALID_CASES[name]
    code, doc = check_json(capsys, INVALID / name)
    assert code == 1 and doc["ok"] is False
    [result] = doc["files"]
    assert result["ok"] is False
    assert result["kind"] == name.split("_", 1)[0]  # adaptor_* / workflow_*
    [problem] = result["problems"]
    assert problem["path"] == path and fragment in problem["message"]
    assert (problem["line"], problem["column"]) == (line, column)
    assert "suggestion" in problem
    assert result["warnings"] == []


def test_toml_syntax_error_shows_line_and_column(capsys):
    code, doc = check_json(capsys, INVALID / "adaptor_toml_syntax.toml")
    [problem] = doc["files"][0]["problems"]
    assert (problem["line"], problem["column"], problem["code"]) == (9, 15, "toml_syntax")


@pytest.mark.parametrize(("text", "says"), [
    # a connection setting pasted twice into the inline table of a node's config
    ('config = { timeout = 10, retry = { attempts = 2 }, retry = { attempts = 3 } }',
     "line 1, column 76: 'retry' is an inline table ({ ... }) already: it is set once, with all its keys inside"),
    ("timeout = 10\ntimeout = 20", "line 2, column 13: a key on this line already has a value (a key is set once"),
    ("[nodes.config]\na = 1\n[nodes.config]\nb = 2", "line 3, column 14: table [nodes.config] is declared twice: "
                                                      "put its keys under one [nodes.config]"),
    ("x = { a = 1, a = 2 }", "Duplicate inline table key 'a'"),  # tomli's own words are clear there
])
def test_a_key_or_table_given_twice_is_named_in_plain_words(text, says):
    from dupcheck_plugin.config.problems import ConfigError
    from dupcheck_plugin.config.toml import parse_toml

    with pytest.raises(ConfigError) as caught:
        parse_toml(text + "\n", "wf.toml")
    [problem] = caught.value.problems
    assert problem.code == "toml_syntax" and says in problem.message, problem.message
    assert "namespace" not in problem.message and "Cannot" not in problem.message


@pytest.mark.parametrize(("text", "says"), [
    ("create_lead = True", "Invalid value (True: TOML writes true, in lower case)"),
    ("status = NEW", 'Invalid value (NEW: text is written in quotes, "NEW")'),
    ("value = None", "Invalid value (None: TOML has no null: leave the key out)"),
    ('rules = [\n  { key = "a" }\n  { key = "b" },\n]', "line 3, column 3: Unclosed array (a comma or the closing ] "
                                                         "missing before this?)"),
    ("config = { timeout = 10 retry = 1 }", "Unclosed inline table (a comma or the closing } missing"),
])
def test_a_value_toml_cannot_read_says_what_was_likely_meant(text, says):
    """tomli says "Invalid value" or "Unclosed array" and no more: what an admin wrote
    (Python's True, a bare word, a missing comma between two rules) is said beside it."""
    from dupcheck_plugin.config.problems import ConfigError
    from dupcheck_plugin.config.toml import parse_toml

    with pytest.raises(ConfigError) as caught:
        parse_toml(text + "\n", "wf.toml")
    [problem] = caught.value.problems
    assert problem.code == "toml_syntax" and says in problem.message, problem.message


def test_invalid_folder_lists_every_error_sorted(capsys):
    code, out, err = check(capsys, INVALID)
    assert code == 1
    for name, (path, fragment, line, column) in INVALID_CASES.items():
        assert f"{rel(INVALID / name)}:{line}:{column}::{path}: " in out
    files = [line.split(":", 1)[0] for line in out.splitlines() if not line.startswith(" ")]
    assert files == sorted(files)
    assert err.startswith(f"{len(INVALID_CASES)} files checked, {len(INVALID_CASES)} invalid (")


def test_valid_examples(capsys):
    code, out, err = check(capsys, VALID)
    assert (code, out, err) == (0, "ok: 2 files checked\n", "")


def test_verbose_lists_valid_files(capsys):
    code, out, _ = check(capsys, "--verbose", VALID, INVALID / "workflow_bad_regex.toml")
    assert code == 1
    assert f"ok: {rel(VALID / 'acme_lookup.toml')} (adaptor)" in out
    assert f"ok: {rel(VALID / 'acme_dupcheck.toml')} (workflow)" in out


def test_json_output_is_one_object(capsys):
    code, doc = check_json(capsys, VALID, INVALID / "adaptor_bad_jinja.toml")
    assert code == 1
    assert set(doc) == {"ok", "files"} and doc["ok"] is False
    by_file = {f["file"]: f for f in doc["files"]}
    assert by_file[rel(VALID / "acme_lookup.toml")] == {
        "file": rel(VALID / "acme_lookup.toml"), "kind": "adaptor", "ok": True, "problems": [], "warnings": []}
    [problem] = by_file[rel(INVALID / "adaptor_bad_jinja.toml")]["problems"]
    assert set(problem) >= {"file", "path", "message", "code"}
    assert problem["code"] == "jinja_syntax"


def test_shipped_files_by_default(capsys):
    code, out, err = check(capsys)
    n = len(list(shipped_dir("adaptors").glob("*.toml"))) + len(list(shipped_dir("workflows").glob("*.toml")))
    assert (code, out, err) == (0, f"ok: {n} files checked\n", "")


# --- kind of a file, the #:schema line, warnings ----------------------------------

ADAPTOR = (VALID / "acme_lookup.toml").read_text(encoding="utf-8")
WORKFLOW = (VALID / "acme_dupcheck.toml").read_text(encoding="utf-8")


def without_directive(text: str) -> str:
    return text.split("\n", 1)[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_schema_line_is_a_warning_with_the_line_to_add(capsys, tmp_path):
    f = write(tmp_path / "crm.toml", without_directive(ADAPTOR))
    code, out, err = check(capsys, f)
    assert code == 0 and err == ""
    [warning, summary] = out.splitlines()
    assert warning.startswith(f"warning: {f}:1:1::$: first line should be '#:schema ")
    assert "schemas/adaptor.schema.json'" in warning
    assert summary == "ok: 1 file checked, 1 warning"
    # the suggested line leads to the shipped schema from the file's folder
    suggested = warning.split("'#:schema ", 1)[1].split("'", 1)[0]
    assert (tmp_path / suggested).resolve() == (shipped_dir("schemas") / "adaptor.schema.json").resolve()


def test_schema_line_that_leads_nowhere_is_a_warning(capsys, tmp_path):
    f = write(tmp_path / "crm.toml", "#:schema ../schemas/adaptor.schema.json\n" + without_directive(ADAPTOR))
    code, doc = check_json(capsys, f)
    assert code == 0
    [warning] = doc["files"][0]["warnings"]
    assert warning["code"] == "schema_directive" and "does not lead to a file" in warning["message"]


def test_warnings_come_after_errors_and_do_not_change_the_exit_code(capsys, tmp_path):
    good = write(tmp_path / "a_good.toml", without_directive(ADAPTOR))
    code, out, err = check(capsys, good, INVALID / "workflow_wrong_type.toml")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{rel(INVALID / 'workflow_wrong_type.toml')}:8:48::nodes[0].config.timeout: ")
    assert lines[3].startswith(f"warning: {good}:1:1::$: ")
    assert err == "2 files checked, 1 invalid (1 problem), 1 warning\n"


def test_kind_by_schema_line_first(capsys, tmp_path):
    # workflow content, but the first line says adaptor: checked as an adaptor
    f = write(tmp_path / "x.toml", "#:schema adaptor.schema.json\n" + without_directive(WORKFLOW))
    code, doc = check_json(capsys, f)
    assert code == 1 and doc["files"][0]["kind"] == "adaptor"
    assert any("'request' is a required property" in p["message"] for p in doc["files"][0]["problems"])


@pytest.mark.parametrize("text, kind", [(without_directive(ADAPTOR), "adaptor"), (without_directive(WORKFLOW), "workflow")])
def test_kind_by_content(capsys, tmp_path, text, kind):
    write(tmp_path / "acme_lookup.toml", ADAPTOR)  # the workflow's adaptor, next to it
    f = write(tmp_path / "x.toml", text)
    code, doc = check_json(capsys, f)
    assert code == 0 and doc["files"][0]["kind"] == kind


def test_kind_by_folder(capsys, tmp_path):
    f = write(tmp_path / "adaptors" / "x.toml", 'name = "x"\n')
    code, doc = check_json(capsys, f)
    assert code == 1 and doc["files"][0]["kind"] == "adaptor"
    assert [p["message"] for p in doc["files"][0]["problems"]] == ["'request' is a required property"]


def test_kind_of_unparsable_file_by_text_then_folder(capsys, tmp_path):
    f = write(tmp_path / "workflows" / "x.toml", 'name = "x\n')
    code, doc = check_json(capsys, f)
    assert code == 1 and doc["files"][0]["kind"] == "workflow"
    assert doc["files"][0]["problems"][0]["code"] == "toml_syntax"


def test_unknown_kind_is_a_problem(capsys, tmp_path):
    f = write(tmp_path / "settings.toml", 'name = "x"\n')
    code, out, err = check(capsys, f)
    assert code == 1
    assert out.startswith(f"{f}:1:1::$: not recognisably an adaptor or a workflow")
    assert "'#:schema " in out


def test_dynamic_url_host_is_a_warning(capsys, tmp_path):
    text = ADAPTOR.replace('url = "https://acme.example.com/api/v2/lookup"', 'url = "https://{{ host }}/lookup"')
    text = text.replace('[fields]\n', '[fields]\ncrm_host = "host"\n')
    f = write(tmp_path / "x.toml", text.replace("../../../schemas/", ""))
    code, doc = check_json(capsys, f)
    assert code == 0
    assert [w["code"] for w in doc["files"][0]["warnings"]] == ["schema_directive", "dynamic_origin"]
    assert doc["files"][0]["warnings"][1]["path"] == "request.url"


# --- usage errors and robustness -------------------------------------------------

def test_nonexistent_path_is_a_usage_error(capsys):
    code, out, err = check(capsys, VALID, "no/such/file.toml")
    assert (code, out) == (2, "")
    assert "no/such/file.toml: no such file or folder" in err


def test_folder_without_toml_is_a_usage_error(capsys, tmp_path):
    code, _, err = check(capsys, tmp_path)
    assert code == 2 and "no *.toml files" in err


def test_bad_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check", "-o", "yaml"])
    assert exc.value.code == 2


def test_folders_skip_hidden_dirs_and_files_are_checked_once(capsys, tmp_path):
    write(tmp_path / "a.toml", ADAPTOR.replace("../../../schemas/", ""))
    write(tmp_path / ".venv" / "b.toml", "not toml at all = =")
    code, doc = check_json(capsys, tmp_path, tmp_path / "a.toml")
    assert [Path(f["file"]).name for f in doc["files"]] == ["a.toml"]


def test_unexpected_exception_becomes_a_problem(capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("dupcheck_plugin.config.checker.compile_adaptor", boom)
    code, out, err = check(capsys, VALID)
    assert code == 1
    assert f"{rel(VALID / 'acme_lookup.toml')}:1:1::$: internal error while checking this file: RuntimeError: boom" in out
    assert "Traceback" not in out + err


def test_plugin_conflict_is_a_message(capsys, monkeypatch):
    from dupcheck_plugin.plugins import PluginConflict

    def conflict():
        raise PluginConflict("node type 'x' is registered by both a and b")

    monkeypatch.setattr("dupcheck_plugin.cli.check.default_registry", conflict)
    code, out, err = check(capsys, VALID)
    assert code == 1 and "registered by both a and b" in err


@pytest.mark.e2e
def test_console_script_prints_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "dupcheck_plugin.cli.main", "check", str(INVALID)],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "adaptor_toml_syntax.toml:9:15::$: TOML syntax error at line 9, column 15" in proc.stdout


# --- pre-commit -------------------------------------------------------------------

def test_pre_commit_hook():
    import re
    import tomli

    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "dupcheck-check"
    assert hook["entry"].split() == ["dupcheck", "check"]
    scripts = tomli.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "dupcheck" in scripts
    files = re.compile(hook["files"])
    assert files.search("workflows/hubspot_dupcheck.toml") and not files.search("README.md")


def test_schema_line_advice_for_a_pip_install_names_schemas_export(capsys, tmp_path, monkeypatch):
    installed = tmp_path / "site-packages" / "dupcheck_plugin" / "_shipped" / "schemas"
    installed.mkdir(parents=True)
    monkeypatch.setattr("dupcheck_plugin.config.checker.shipped_dir", lambda kind: installed.parent / kind)
    f = write(tmp_path / "project" / "crm.toml", without_directive(ADAPTOR))
    code, doc = check_json(capsys, f)
    [warning] = doc["files"][0]["warnings"]
    assert "dupcheck schemas export DIR" in warning["message"] and "'#:schema DIR/adaptor.schema.json'" in warning["message"]


def test_check_source_refuses_text_over_the_size_limit_as_a_file_is():
    from dupcheck_plugin.config.checker import check_source
    from dupcheck_plugin.config.toml import MAX_CONFIG_BYTES
    from dupcheck_plugin.plugins import default_registry

    text = ADAPTOR + "#" * MAX_CONFIG_BYTES
    result = check_source(text, ROOT / "adaptors" / "x.toml", default_registry())
    assert [(p.code, p.line) for p in result.problems] == [("too_large", 1)]
    assert check_source(ADAPTOR, VALID / "acme_lookup.toml", default_registry()).ok
