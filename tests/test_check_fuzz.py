"""`dupcheck check` on thousands of broken configs: never an internal error.

Shipped adaptors and workflows are mutated as an author would break them
(a key deleted, renamed or given a value of another type, template text
corrupted, a line dropped, duplicated or cut short) and checked in-process,
as the command does. Every result is a list of problems, each placed at a
line and column of the file, and the report prints without a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dupcheck_plugin.config.checker import check_source
from dupcheck_plugin.config.positions import Positions, Span
from dupcheck_plugin.config.report import json_report, text_report
from dupcheck_plugin.plugins import default_registry
from dupcheck_plugin.resources import shipped_dir

FILES = sorted(shipped_dir("adaptors").glob("*.toml")) + sorted(shipped_dir("workflows").glob("*.toml"))
TEXTS = {p: p.read_text(encoding="utf-8") for p in FILES}
POSITIONS = {p: Positions(t) for p, t in TEXTS.items()}
REGISTRY = default_registry()
RESOLVERS: dict = {}  # shared by the examples: an unchanged adaptor is compiled once

TEMPLATE_NOISE = ["{{", "}}", "{%", "%}", "{{ phnoe }}", "{{ phone | e165 }}", "{{ phone is odd_test }}",
                  "{{ phone.__class__ }}", "{{ phone['_x'] }}", "{% for x in y %}", "{% block b %}{% endblock %}",
                  "{% include 'x' %}", "{{ secrets }}", "{{ fields['nope'] }}", "{{ 1/0 }}", "{{ phone(",
                  "{# open", "{% raw %}", "{{ lipsum() }}", "{{ range(10**9) | list }}", "\\u0000", "é", "\\\\"]
VALUES = ["0", "-1", "1.5", "true", '""', '"x"', "[]", '[1, "a"]', "{}", '{ k = "v" }', '"{{ phnoe }}"',
          "1979-05-27", '"hubspot"', '"GET"']


def offset(text: str, span: Span) -> int:
    lines = text.split("\n")
    return sum(len(line) + 1 for line in lines[: span.line - 1]) + span.column - 1


def mutate(path: Path, text: str, data: st.DataObject) -> str:
    positions = POSITIONS[path]
    how = data.draw(st.sampled_from(["delete", "rename", "retype", "template", "line"]), label="mutation")
    if how in ("delete", "rename"):
        keys = sorted((p for p in positions.keys if isinstance(p[-1], str) and p in positions.values), key=str)
        key = data.draw(st.sampled_from(keys), label="key")
        start, span = offset(text, positions.keys[key]), positions.values[key]
        if how == "delete":
            return text[:start] + text[offset(text, span) + len(span.text):]
        name = key[-1]
        new = data.draw(st.sampled_from([name[:-1] or "x", name + "s", name[::-1], name.upper(), '"$when"', "a.b"]))
        return text[:start] + new + text[start + len(positions.keys[key].text):]
    if how in ("retype", "template"):
        paths = sorted(positions.values, key=str)
        if how == "template":
            paths = [p for p in paths if positions.values[p].text.startswith(('"', "'"))]
        span = positions.values[data.draw(st.sampled_from(paths), label="value")]
        start = offset(text, span)
        if how == "retype":
            return text[:start] + data.draw(st.sampled_from(VALUES), label="new value") + text[start + len(span.text):]
        at = start + data.draw(st.integers(1, max(1, len(span.text) - 1)), label="at")
        return text[:at] + data.draw(st.sampled_from(TEMPLATE_NOISE), label="noise") + text[at:]
    lines = text.split("\n")
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    edit = data.draw(st.sampled_from(["drop", "duplicate", "cut"]), label="line edit")
    if edit == "drop":
        del lines[i]
    elif edit == "duplicate":
        lines.insert(i, lines[i])
    else:
        lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])), label="cut at")]
    return "\n".join(lines)


@settings(max_examples=2000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_configs_never_cause_an_internal_error(data):
    path: Path = data.draw(st.sampled_from(FILES), label="file")
    text = mutate(path, TEXTS[path], data)

    result = check_source(text, path, REGISTRY, RESOLVERS)

    lines = text.count("\n") + 1
    for problem in result.problems + result.warnings:
        assert problem.code != "internal_error", str(problem)
        assert isinstance(problem.line, int) and isinstance(problem.column, int), str(problem)
        assert 1 <= problem.line <= lines and problem.column >= 1, str(problem)
    out, err = text_report([result])
    assert "Traceback" not in out + err and "internal error" not in out
    json.loads(json_report([result]))
