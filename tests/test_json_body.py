"""A request's JSON body: orjson's bytes are json.dumps' (as httpx's ``json=`` writes them),
and what json refuses is still refused, with json's own error."""

from __future__ import annotations

import datetime
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dupcheck_plugin.http.call import json_body


def _json(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


_scalars = st.none() | st.booleans() | st.integers() | st.text()
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4), max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(_values)
def test_the_bytes_are_json_dumps_bytes(value):
    try:
        expected = _json(value)
    except UnicodeEncodeError:  # a lone surrogate: refused both ways
        with pytest.raises(UnicodeEncodeError):
            json_body(value)
        return
    assert json_body(value) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=5))
def test_floats_are_the_same_numbers(values):
    assert json.loads(json_body(values)) == json.loads(_json(values))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_as_json_refuses_them(bad):
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        json_body({"x": [1, bad]})


def test_what_json_cannot_write_is_refused_with_its_error():
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_body({"when": datetime.date(2024, 1, 2)})  # a TOML date in a body


def test_non_ascii_kept_compact_and_null_written():
    assert json_body({"name": "Zoë", "n": [1, None], "big": 2**70}) == '{"name":"Zoë","n":[1,null],"big":1180591620717411303424}'.encode()
