"""Record JSON text: orjson's output reads back as json.dumps' did, and what
orjson refuses still serialises the way it did before."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dupcheck_plugin.jsontext import dumps

_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(_values)
def test_reads_back_as_json_dumps_does(value):
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))


def test_compact_and_non_ascii_kept():
    assert dumps({"name": "Zoë", "n": [1, None]}) == '{"name":"Zoë","n":[1,null]}'


def test_int_keys_and_what_orjson_refuses_are_serialised_as_before():
    assert dumps({1: "a"}) == '{"1":"a"}'
    assert dumps({"big": 2**70}) == json.dumps({"big": 2**70}, separators=(",", ":"))
    assert dumps({"s": "\ud800"}) == json.dumps({"s": "\ud800"}, ensure_ascii=False, separators=(",", ":"))
