"""``dupcheck check`` proves a request by rendering its sample lead as plain
Python, and compiles it with Jinja only when that cannot vouch for it: every
problem the compile and the Jinja render find must still be reported, with
the same message, and a checked request must render as a compiled one."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from dupcheck_plugin.adaptor.model import sample_lead
from dupcheck_plugin.config.adaptors import compile_adaptor
from dupcheck_plugin.config.checker import check_source
from dupcheck_plugin.config.toml import load_toml
from dupcheck_plugin.plugins import default_registry
from dupcheck_plugin.resources import shipped_dir

REGISTRY = default_registry()
ADAPTORS = sorted(shipped_dir("adaptors").glob("*.toml"))
BASE = load_toml(shipped_dir("adaptors") / "generic_json.toml")


def with_request(**changes) -> dict:
    doc = copy.deepcopy(BASE)
    for key, value in changes.items():
        doc["request"]["body" if key == "body" else key] = value
    return doc


BROKEN = {
    "unknown filter": (with_request(body={"phone": "{{ phone | e165 }}"}), "unknown_filter", "unknown filter 'e165'"),
    "syntax error": (with_request(body={"phone": "{{ phone | }}"}), "jinja_syntax", "Jinja syntax error at line 1"),
    "unknown test": (with_request(body={"phone": "{% if phone is phoneish %}1{% endif %}"}), "unknown_test",
                     "unknown test 'phoneish'"),
    # parses, fails only when Jinja compiles it
    "loop variable": (with_request(body={"p": "{% for loop in [1] %}{% endfor %}"}), "jinja_compile",
                      "Can't assign to special loop variable"),
    # each leaf parses alone; in the combined template "{" + "{% endblock %}" opens a "{{"
    "final brace": (with_request(body={"p": "{", "q": "{{ email }}"}), "jinja_compile", "Jinja error"),
    # compiles, fails for every lead
    "division by zero": (with_request(body={"p": "{{ 1 // 0 }}"}), "render", "(rendered with a sample lead)"),
    "pure filter refusing the sample": (with_request(body={"p": "{{ email | e164 }}"}), "render",
                                        "(rendered with a sample lead)"),
    "over the size limit": (with_request(body={"p": "x" * 300_000}), "render", "longer than"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_a_check_reports_what_compiling_and_rendering_report(name):
    doc, code, message = BROKEN[name]
    _, compiled = compile_adaptor(doc, "a.toml", REGISTRY.filters)
    _, checked = compile_adaptor(doc, "a.toml", REGISTRY.filters, check=True)
    assert checked == compiled
    assert [p.code for p in checked] == [code] and message in checked[0].message


def outcome(doc: dict, check: bool):
    try:
        return compile_adaptor(doc, "a.toml", REGISTRY.filters, check=check)[1]
    except Exception as exc:  # noqa: BLE001 - Python's parser refuses Jinja's code for a too deep chain
        return type(exc)


@pytest.mark.parametrize("chain", [150, 250])
def test_a_filter_chain_too_deep_for_a_plain_leaf_is_judged_as_compiled(chain):
    doc = with_request(body={"p": "{{ email" + " | digits" * chain + " }}"})  # a plain filter
    assert outcome(doc, check=True) == outcome(doc, check=False)


def test_the_checker_reports_them_in_the_file(tmp_path: Path):
    message = BROKEN["loop variable"][2]
    text = (shipped_dir("adaptors") / "generic_json.toml").read_text().replace(
        'dob = "{{ dob }}"', 'dob = "{% for loop in [1] %}{% endfor %}"')
    result = check_source(text, tmp_path / "adaptors" / "a.toml", REGISTRY)
    assert [p.code for p in result.problems] == ["jinja_compile"]
    assert message in result.problems[0].message and result.problems[0].path == ("request", "body", "dob")


@pytest.mark.parametrize("path", ADAPTORS, ids=lambda p: p.stem)
def test_a_checked_adaptor_renders_as_a_compiled_one(path):
    doc = load_toml(path)
    compiled, problems = compile_adaptor(doc, str(path), REGISTRY.filters)
    checked, checked_problems = compile_adaptor(doc, str(path), REGISTRY.filters, check=True)
    assert problems == checked_problems == []
    secrets = {name: f"s-{name}" for name in compiled.secret_names}
    lead = sample_lead(compiled.fields)
    assert checked.bind(secrets).render(lead) == compiled.bind(secrets).render(lead)
    assert checked.bind(secrets, preview=True).render(dict(lead, email="b@example.com")) == \
        compiled.bind(secrets, preview=True).render(dict(lead, email="b@example.com"))


def test_the_shipped_adaptors_are_checked_without_compiling_most_of_them():
    proven = [compile_adaptor(load_toml(p), str(p), REGISTRY.filters, check=True)[0].request.sample_rendered
              for p in ADAPTORS]
    assert sum(proven) >= len(ADAPTORS) - 2, proven
    assert not any(compile_adaptor(load_toml(p), str(p), REGISTRY.filters)[0].request.sample_rendered for p in ADAPTORS)
