"""The query-language filters escape exactly the characters their language needs (pure)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dupcheck_plugin.adaptor.filters import soql, soql_like

SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def soql_reference(text: str) -> str:
    return "".join(SOQL_ESCAPES.get(ch, ch) for ch in text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(SOQL_ESCAPES) + ["a", "5", "+", "(", " ", "-", "@", "é", "%", "_"])))
def test_soql_escapes_each_special_character_and_nothing_else(text):
    assert soql(text) == soql_reference(text)


def test_soql_leaves_plain_values_as_they_are_and_reads_any_value_as_text():
    for value in ("+15550100101", "(555) 010-0101", "jo.doe+x@example.com", ""):
        assert soql(value) == value
    assert soql(5550100101) == "5550100101"
    assert soql("O'Brien\\") == "O\\'Brien\\\\"
    assert soql_like("100%_o'k") == "100\\%\\_o\\'k"
