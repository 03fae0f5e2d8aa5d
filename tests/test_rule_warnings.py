"""`dupcheck check`'s warnings about a rules table: a row an earlier row always
beats (rules/advice.py; nothing else is called dead), a status a row never
uses, a value a match never reads. Each at its place; the file stays valid."""

from __future__ import annotations

import pytest

from dupcheck_plugin.config.checker import check_paths
from dupcheck_plugin.plugins import default_registry
from dupcheck_plugin.rules.decide import RulesRow
from dupcheck_plugin.rules.advice import dead_rows
from dupcheck_plugin.resources import shipped_dir

OUT = {"create_lead": False, "add_to_dnc": False, "success": False}


def rows(*configs: dict) -> list[RulesRow]:
    return [RulesRow.from_config(i, {**OUT, **c}) for i, c in enumerate(configs)]


def dead(*configs: dict) -> list[tuple[int, int]]:
    return [(row.index, earlier.index) for row, earlier, _ in dead_rows(rows(*configs))]


STAGE = "results.0.properties.lifecyclestage"


@pytest.mark.parametrize(("table", "expected"), [
    # a copy of a row below it
    ([{"key": "total", "match": "gt", "value": 0}, {"key": STAGE, "value": "customer"},
      {"key": "total", "match": "gt", "value": 0}], [(2, 0)]),
    # a catch-all `exists` above rows that read the same key (every match but `missing` needs a value)
    ([{"key": STAGE, "match": "exists"}, {"key": STAGE, "value": "customer"},
      {"key": STAGE, "match": "regex", "value": "^cust"}, {"key": STAGE, "match": "missing"}], [(1, 0), (2, 0)]),
    # an HTTP-status row above a row that reads only those statuses; a 2xx row is not below a 404 one
    ([{"http_status": [404]}, {"key": "total", "value": 0, "http_status": [404]}, {"key": "total", "value": 0}], [(1, 0)]),
    # a 2xx row reads any 2xx answer: a row for 200 alone is below it
    ([{"key": "total", "match": "gt", "value": 0}, {"key": "total", "match": "gt", "value": 0, "http_status": [200]}],
     [(1, 0)]),
    # a number range above a narrower one on the same key (gte 0 takes every total over 10, equal to 3, ...)
    ([{"key": "total", "match": "gte", "value": 0}, {"key": "total", "match": "gt", "value": 10},
      {"key": "total", "value": 3}, {"key": "total", "match": "in", "value": [1, 2]},
      {"key": "total", "match": "lt", "value": 0}], [(1, 0), (2, 0), (3, 0)]),
    ([{"key": "total", "match": "lte", "value": 5}, {"key": "total", "match": "lt", "value": 5},
      {"key": "total", "match": "gt", "value": 5}], [(1, 0)]),
    ([{"key": "total", "match": "gt", "value": 0}, {"key": "total", "value": 0}, {"key": "total", "value": 1}],
     [(2, 0)]),
    # an `in` above an equals of one of its values, or a smaller `in`
    ([{"key": STAGE, "match": "in", "value": ["a", "b"]}, {"key": STAGE, "value": "a"},
      {"key": STAGE, "match": "in", "value": ["b"]}, {"key": STAGE, "value": "c"}], [(1, 0), (2, 0)]),
])
def test_a_row_an_earlier_row_always_beats_is_dead(table, expected):
    assert dead(*table) == expected


@pytest.mark.parametrize("table", [
    [{"key": "total", "match": "gt", "value": 1}, {"key": "total", "match": "gt", "value": 0}],  # a wider range below
    [{"key": "total", "match": "gt", "value": 0}, {"key": "total", "match": "lt", "value": 5}],  # another direction
    [{"key": "total", "match": "gte", "value": 0}, {"key": "total", "value": "n/a"}],  # text no range reads
    [{"key": "total", "match": "gte", "value": 0}, {"key": "total", "match": "in", "value": [3, "x"]}],
    [{"key": STAGE, "match": "in", "value": ["a", "b"]}, {"key": STAGE, "match": "in", "value": ["b", "c"]}],
    [{"key": "total", "value": 1}, {"key": "total", "value": 1.0}],  # written otherwise: not claimed
    [{"key": "total", "value": 1}, {"key": "total", "match": "gte", "value": 1}],  # another match
    [{"key": "total", "match": "gt", "value": 0}, {"key": STAGE, "value": "customer"}],  # another key: the CRM's business
    [{"key": STAGE, "match": "exists"}, {"key": STAGE, "match": "missing"}],
    [{"key": "total", "value": 0, "http_status": [200]}, {"key": "total", "value": 0}],  # the later reads 201 too
    [{"http_status": [404]}, {"key": "total", "value": 0}],  # 404 answers only
    [{"key": STAGE, "value": "customer"}, {"http_status": [200]}],  # a key row never beats a status row
])
def test_rows_that_may_decide_are_not_called_dead(table):
    assert dead(*table) == []


def test_check_warns_at_the_dead_row_and_the_file_stays_valid(shipped_copy):
    target = shipped_copy / "workflows/hubspot_dupcheck.toml"
    text = target.read_text(encoding="utf-8")
    known = next(line for line in text.splitlines() if 'name = "known"' in line)
    # a general row pasted at the top: the row below it on the same key can never decide
    text = text.replace("rules = [\n", "rules = [\n" + known.replace('"known"', '"any"').replace(
        'match = "gt", value = 0', 'match = "exists"') + "\n", 1)
    target.write_text(text, encoding="utf-8")

    [result] = check_paths([target], default_registry())
    assert result.problems == []
    dead_warnings = [w for w in result.warnings if w.code == "dead_row"]
    assert [w.path[-1] for w in dead_warnings] == [3]  # rules[3] (known: total gt 0); the stage rows read another key
    [warning] = dead_warnings
    line = text.splitlines()[warning.line - 1]
    assert 'name = "known"' in line and line[warning.column - 1] == "{"
    assert "rules[3] (known) can never decide: rules[0] (any) comes first" in warning.message


def test_check_warns_about_a_status_and_a_value_no_row_reads(shipped_copy):
    target = shipped_copy / "workflows/hubspot_dupcheck.toml"
    text = target.read_text(encoding="utf-8")
    # a status on a row that skips the lead; a value on an exists row
    text = text.replace('name = "known", key = "total", match = "gt", value = 0, create_lead = false,',
                        'name = "known", key = "total", match = "exists", value = 0, create_lead = false, status = "DUP",', 1)
    target.write_text(text, encoding="utf-8")

    [result] = check_paths([target], default_registry())
    assert result.problems == []
    found = {(w.code, w.path[-1]) for w in result.warnings if w.code in ("unused_status", "unused_value", "dead_row")}
    assert found == {("unused_value", "value"), ("unused_status", "status")}
    lines = text.splitlines()
    for w in result.warnings:
        if w.code == "unused_status":
            assert lines[w.line - 1][w.column - 1:].startswith('"DUP"')
        if w.code == "unused_value":
            assert lines[w.line - 1][w.column - 1:].startswith("0, create_lead")


@pytest.mark.parametrize(("key", "says"), [
    ("total ", "spaces around 'total'"),
    ("results..id", "an empty part"),
    # JSONPath habits: no answer has a key "$" or "results[0]" (and no unknown_answer_key for them too)
    ("$.total", "JSONPath's '$' start"),
    ("results[0].id", "a bracket index ('results[0]': an index or a key is one more dotted part here, results.0)"),
    ("results.0.properties['lifecyclestage']", "a bracket index (\"properties['lifecyclestage']\": an index or a "
                                               "key is one more dotted part here, properties.lifecyclestage)"),
    (".total", "an empty part"),
])
def test_check_warns_at_a_key_no_answer_has(shipped_copy, key, says):
    target = shipped_copy / "workflows/hubspot_dupcheck.toml"
    text = target.read_text(encoding="utf-8")
    assert 'name = "known", key = "total",' in text
    target.write_text(text.replace('name = "known", key = "total",', f'name = "known", key = "{key}",', 1),
                      encoding="utf-8")
    [result] = check_paths([target], default_registry())
    assert result.problems == []
    [warning] = [w for w in result.warnings if w.code == "odd_key"]
    assert warning.message.startswith(says) and warning.path[-1] == "key"
    assert target.read_text(encoding="utf-8").splitlines()[warning.line - 1][warning.column - 1:].startswith(f'"{key}"')


def test_check_warns_at_a_rules_key_a_typo_away_from_a_key_the_adaptor_names(shipped_copy):
    target = shipped_copy / "workflows/salesforce_dupcheck.toml"
    text = target.read_text(encoding="utf-8")
    assert 'key = "totalSize"' in text and 'key = "records.0.Status"' in text
    # a typo of salesforce_soql's totalSize (its [batch] set); a key the adaptor does not name is the CRM's
    text = text.replace('key = "totalSize"', 'key = "totalSiz"', 1).replace('key = "records.0.Status"',
                                                                           'key = "custom.Status"', 1)
    target.write_text(text, encoding="utf-8")
    [result] = check_paths([target], default_registry())
    assert result.problems == []
    [warning] = [w for w in result.warnings if w.code == "unknown_answer_key"]
    assert warning.suggestion == "totalSize" and "(done, records, totalSize)" in warning.message
    assert text.splitlines()[warning.line - 1][warning.column - 1:].startswith('"totalSiz"')


@pytest.mark.parametrize(("before", "after", "path", "code"), [
    # a failure code on a row that answers success
    ("add_to_dnc = true, success = false }", "add_to_dnc = true, success = true, code = 6010 }",
     ("rules", 0, "code"), "unused_code"),
    # on_error: reject answers failure and creates nothing; create answers success unless success = false
    ('on_error = { action = "create", status = "NOTCHECKED" }', 'on_error = { action = "reject", status = "X" }',
     ("on_error", "status"), "unused_setting"),
    ('on_error = { action = "create", status = "NOTCHECKED" }',
     'on_error = { action = "create", status = "NOTCHECKED", text = "try later" }', ("on_error", "text"),
     "unused_setting"),
])
def test_check_warns_at_an_answer_setting_its_row_or_on_error_never_reads(shipped_copy, before, after, path, code):
    target = shipped_copy / "workflows/hubspot_dupcheck.toml"
    text = target.read_text(encoding="utf-8")
    assert before in text
    target.write_text(text.replace(before, after, 1), encoding="utf-8")
    [result] = check_paths([target], default_registry())
    assert result.problems == []
    [warning] = result.warnings
    assert (warning.code, warning.path) == (code, ("nodes", 1, "config") + path)
    assert warning.message.startswith(f"this {'failure ' if code == 'unused_code' else ''}{path[-1]} is never used")


def test_a_failure_code_on_error_answers_with_is_no_warning(shipped_copy):
    target = shipped_copy / "workflows/hubspot_dupcheck.toml"
    text = target.read_text(encoding="utf-8")
    target.write_text(text.replace('on_error = { action = "create", status = "NOTCHECKED" }',
                                   'on_error = { action = "create", status = "NOTCHECKED", success = false, '
                                   'code = 6503 }', 1), encoding="utf-8")
    [result] = check_paths([target], default_registry())
    assert result.problems == [] and result.warnings == []


def test_the_shipped_workflows_have_no_rule_warnings():
    results = check_paths([shipped_dir("workflows")], default_registry())
    assert results and not [str(w) for r in results for w in r.warnings
                            if w.code in ("dead_row", "unused_status", "unused_value", "odd_key", "unknown_answer_key",
                                          "unused_code", "unused_setting")]
