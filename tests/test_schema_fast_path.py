"""The fast schema check (jsonschema-rs) may only say "valid" where jsonschema
says so too: every shipped config and thousands of broken copies of them go
through both. jsonschema alone reports problems, so a file the fast check finds
invalid costs time, never a different answer; one it wrongly found valid would
be a mistake ``dupcheck check`` stops catching."""

from __future__ import annotations

import copy
import datetime
from typing import Any, Iterator

import pytest
import tomli

from dupcheck_plugin.config.schemas import shipped_schema_problems, surely_valid, validator_for
from dupcheck_plugin.resources import shipped_dir

KINDS = {"adaptors": "adaptor.schema.json", "workflows": "workflow.schema.json"}

# values of every JSON type and the edges the schemas draw (empty, negative, a
# float where an integer goes, a bool where a number goes, a trailing newline
# after a pattern's $, a TOML date that is no JSON type at all)
WRONG: tuple[Any, ...] = ("", "x", "a\n", " https://x", "{{ lead.x }}", 0, -1, 1, 2.5, 1.0, 0.0, -0.5, True, False,
                          [], ["x"], [1, 1], {}, {"x": 1}, datetime.date(2024, 1, 2), float("nan"), 10 ** 20)


def _docs(kind: str) -> list[tuple[str, dict]]:
    return [(p.name, tomli.loads(p.read_text(encoding="utf-8"))) for p in sorted(shipped_dir(kind).glob("*.toml"))]


def _paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, path + (i,))


def _at(doc: Any, path: tuple) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def _mutants(doc: dict) -> Iterator[tuple[tuple, dict]]:
    """Copies of ``doc`` with one change each: a key dropped, a value of another
    type or edge, an unknown key added, a list item repeated; each with a label
    (the change and where, list indices left out) that is the same for the same
    change in another file."""
    for path in list(_paths(doc)):
        target = _at(doc, path)
        where = tuple("#" if isinstance(step, int) else step for step in path)
        if path:
            parent, last = path[:-1], path[-1]
            if isinstance(_at(doc, parent), dict):
                dropped = copy.deepcopy(doc)
                del _at(dropped, parent)[last]
                yield ("drop", where), dropped
            for wrong in WRONG:
                changed = copy.deepcopy(doc)
                _at(changed, parent)[last] = wrong
                yield ("set", where, repr(wrong)), changed
        if isinstance(target, dict):
            added = copy.deepcopy(doc)
            _at(added, path)["nme"] = "x"
            yield ("add", where), added
        if isinstance(target, list) and target:
            doubled = copy.deepcopy(doc)
            _at(doubled, path).append(copy.deepcopy(target[0]))
            yield ("repeat", where), doubled


def _jsonschema_valid(name: str, doc: Any) -> bool:
    return not any(True for _ in validator_for(name).iter_errors(doc))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_shipped_file_takes_the_fast_path(kind):
    # the fast path is what keeps jsonschema out of a clean check: it must say valid here
    name = KINDS[kind]
    for file, doc in _docs(kind):
        assert surely_valid(name, doc), file
        assert shipped_schema_problems(name, doc, file) == []


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_fast_check_never_passes_what_jsonschema_refuses(kind):
    name = KINDS[kind]
    confirmed: set[tuple] = set()  # changes jsonschema agreed were valid, in one file at least
    invalid = 0
    for file, doc in _docs(kind):
        for change, mutant in _mutants(doc):
            if not surely_valid(name, mutant):
                invalid += 1
            elif change not in confirmed:  # the same change elsewhere hits the same part of the schema
                assert _jsonschema_valid(name, mutant), (file, change)
                confirmed.add(change)
    assert len(confirmed) > 100 and invalid > 1000  # both sides were exercised


def test_what_the_fast_check_refuses_is_reported_by_jsonschema_as_before():
    _, doc = _docs("adaptors")[0]
    doc = dict(doc, nme="x", request=dict(doc["request"], method="FETCH"))
    problems = shipped_schema_problems("adaptor.schema.json", doc, "a.toml")
    assert [(p.path, p.message, p.suggestion) for p in problems] == [
        (("nme",), "unknown key 'nme'", "name"),
        (("request", "method"), "'FETCH' is not one of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']", None)]


def test_a_toml_date_the_fast_check_cannot_take_goes_to_jsonschema():
    _, doc = _docs("adaptors")[0]
    doc = dict(doc, name=datetime.date(2024, 1, 2))
    assert not surely_valid("adaptor.schema.json", doc)
    problems = shipped_schema_problems("adaptor.schema.json", doc, "a.toml")
    assert [p.path for p in problems] == [("name",)]
