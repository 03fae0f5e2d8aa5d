"""The per-lead frozen dataclasses build their instance in one step
(dupcheck_plugin.frozen) and stay frozen dataclasses in every other way."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from dupcheck_plugin.engine.intake import Intake
from dupcheck_plugin.frozen import one_step_init
from dupcheck_plugin.rules.decide import Decision
from dupcheck_plugin.store.contract import Commit, DncEntry, NewLead
from dupcheck_plugin.types import CheckOutcome, CrmAnswer

QUICK = [CrmAnswer, CheckOutcome, NewLead, DncEntry, Commit, Intake, Decision]


@pytest.mark.parametrize("cls", QUICK, ids=lambda c: c.__name__)
def test_the_signature_is_the_dataclass_one(cls):
    expected = [(f.name, inspect.Parameter.KEYWORD_ONLY if f.kw_only else inspect.Parameter.POSITIONAL_OR_KEYWORD,
                 inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
                for f in dataclasses.fields(cls)]
    got = [(p.name, p.kind, p.default) for p in list(inspect.signature(cls.__init__).parameters.values())[1:]]
    assert got == expected


@pytest.mark.parametrize("cls", QUICK, ids=lambda c: c.__name__)
def test_each_field_reads_back_what_it_was_given(cls):
    # a distinct object per field, by keyword and in order: NewLead has a field named "fields"
    values = {f.name: object() for f in dataclasses.fields(cls)}
    made = cls(**values)
    assert all(getattr(made, name) is value for name, value in values.items())
    assert dataclasses.replace(made) == made and vars(made) == values


def test_instances_read_compare_replace_and_stay_frozen():
    answer = CrmAnswer(200, {"a": "b"}, {"total": 1}, 1.5, request={"url": "u"})
    assert (answer.status_code, answer.headers, answer.body, answer.latency_ms, answer.error, answer.attempts,
            answer.request, answer.batch_size) == (200, {"a": "b"}, {"total": 1}, 1.5, None, 1, {"url": "u"}, 1)
    again = dataclasses.replace(answer, cached=True)
    assert again.cached and not answer.cached and again.body is answer.body
    assert dataclasses.replace(again, cached=False) == answer
    assert dataclasses.asdict(answer)["request"] == {"url": "u"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        answer.error = "timeout"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Decision("created", 200, "ok", True, "rules_row")  # type: ignore[misc]  # keyword-only, as declared
    with pytest.raises(TypeError):
        CrmAnswer(200, {}, None)  # type: ignore[call-arg]  # latency_ms has no default
    commit = Commit({"action": "created"})
    assert commit.lead is None and commit.dnc is None and commit == Commit({"action": "created"}, None, None)


def test_what_it_cannot_do_is_refused():
    @dataclasses.dataclass
    class Mutable:
        x: int

    @dataclasses.dataclass(frozen=True)
    class WithFactory:
        x: list = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        x: int

    for cls in (Mutable, WithFactory, Slotted):
        with pytest.raises(TypeError):
            one_step_init(cls)
