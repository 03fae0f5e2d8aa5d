"""Key paths on lists: which segments are list indexes (pure: rules/paths.py)."""

import re

import pytest
from hypothesis import given, settings, strategies as st

from dupcheck_plugin.rules.paths import MISSING, closest, lookup


# A list index in a key path is ASCII digits, or "-" and ASCII digits counting from the end
# (README, "The rules table": "-1 is the last"); "-0" counts nothing from the end.
_INDEX = re.compile(r"-?[0-9]+")


def _reference_index(part, length):
    if not _INDEX.fullmatch(part):
        return None
    index = int(part)
    if part.startswith("-") and index == 0:
        return None
    return index if -length <= index < length else None


@pytest.mark.parametrize("part", ["+0", "+1", "\u0660", "\u0661", "\uff11", "\u00b9", "0_0", "1_0", " 0", "0 ", "\t1",
                                  "1\n", "-0", "-00", "--1", "-", "", "0x1", "1.0", "1e0"])
def test_a_segment_that_is_not_a_plain_index_is_not_found_on_a_list(part):
    body = {"results": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}
    assert lookup(body, ("results", part, "id")) is MISSING, repr(part)
    assert lookup({part: "kept"}, (part,)) == "kept"  # on an object any segment is a plain key


_SEGMENT_CHARS = st.sampled_from("0123456789-+_ .\t\n\u0660\u0661\u06f3\u0967\uff10\u00b2\u2070xe")


@settings(max_examples=3000, deadline=None)
@given(st.text(_SEGMENT_CHARS, max_size=5), st.integers(min_value=0, max_value=12))
def test_list_indexes_follow_the_reference_rule(part, length):
    items = [{"n": i} for i in range(length)]
    want = _reference_index(part, length)
    found = lookup(items, (part,))
    if want is None:
        assert found is MISSING, repr(part)
    else:
        assert found is items[want], repr(part)


HUBSPOT_ANSWER = {"total": 1, "results": [{"id": "7", "properties": {"lifecyclestage": "customer", "hs_lead_status": "NEW"}}]}


@pytest.mark.parametrize(("typed", "meant"), [
    ("results.0.properties.lifecylestage", "results.0.properties.lifecyclestage"),  # a letter dropped
    ("results.0.properties.LifecycleStage", "results.0.properties.lifecyclestage"),  # case
    ("result.0.properties.lifecyclestage", "results.0.properties.lifecyclestage"),  # early segment, rest follows
    ("Total", "total"),
    ("results.0.properties.lead_status", "results.0.properties.hs_lead_status"),  # written without its prefix
])
def test_a_misspelt_key_is_told_the_path_it_likely_means(typed, meant):
    parts = tuple(typed.split("."))
    assert lookup(HUBSPOT_ANSWER, parts) is MISSING
    assert closest(HUBSPOT_ANSWER, parts) == tuple(meant.split("."))


@pytest.mark.parametrize(("body", "typed"), [
    ({"total": 0, "results": []}, "results.0.properties.lifecyclestage"),  # no record: not a typo
    (HUBSPOT_ANSWER, "results.3.id"),  # past the end of the list
    (HUBSPOT_ANSWER, "results.0.properties.owner"),  # nothing close
    (HUBSPOT_ANSWER, "result.0.properties.owner"),  # the fixed segment leads nowhere either
    (HUBSPOT_ANSWER, "total.count"),  # under a number
    ({"a_id": 1, "b_id": 2}, "id"),  # two keys end with it: no guess
    ("<xml/>", "total"),
])
def test_no_guess_where_nothing_in_the_answer_is_meant(body, typed):
    assert closest(body, tuple(typed.split("."))) is None
