"""A CRM answer's JSON is read as ``json.loads`` reads it, whether orjson or json does the reading:
the same values of the same types, and what json refuses is refused (``UnparsableBody``)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dupcheck_plugin.http.response import UnparsableBody, parse_body, parse_json


def same(a, b) -> bool:
    """Equal, and of the same types all the way down (1 is not 1.0, -0.0 is not 0.0, nan is nan)."""
    return repr(a) == repr(b)


_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**62, max_value=2**70)
            | st.integers(min_value=-2**70, max_value=-2**62) | st.floats() | st.text())
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(_values, st.sampled_from([{}, {"indent": 1}, {"ensure_ascii": False}]))
def test_any_document_reads_as_json_loads_reads_it(value, style):
    text = json.dumps(value, **style)  # NaN and Infinity written as json writes (and reads) them
    for encoded in (text.encode(), text.encode("utf-16")):
        assert same(parse_json(encoded), json.loads(encoded))


@pytest.mark.parametrize("raw", [
    b"18446744073709551616",  # past 64 bits: orjson would make it a float
    b'{"id": -9223372036854775809, "n": [123456789012345678901234567890]}',
    b"[0.1000000000000000055511151231257827, 5e-324, 1.7976931348623157e308, 1E5, -0]",
    b'{"a": 1, "b": 2, "a": 3}',  # the last of a repeated key, in the first one's place
    b"[NaN, Infinity, -Infinity, 1e400]",
    b'"\\ud800 lone surrogate"',
    b'\xef\xbb\xbf{"bom": true}',
    b' \r\n\t{"padded": "\\u0000"} ',
])
def test_what_orjson_would_read_otherwise_is_read_as_json_reads_it(raw):
    assert same(parse_json(raw), json.loads(raw))


# the last: nested past orjson's depth (1,024) and then json's recursion limit (a RecursionError,
# which failed the node: 6500 and a traceback, not on_error)
@pytest.mark.parametrize("raw", [b"{", b"[1,]", b'{"a": 1}x', b'"a\tb"', b'"\xff"', b"<html>bad gateway</html>",
                                 b"[" * 100_000 + b"]" * 100_000])
def test_what_json_refuses_is_an_unparsable_body(raw):
    with pytest.raises(UnparsableBody, match="not JSON"):
        parse_body(raw, "json", 200)


@pytest.mark.parametrize("blank", [b"", b" ", b"\r\n\t\x0b\x0c"])
def test_a_blank_body_is_none(blank):
    assert parse_body(blank, "json", 204) is None
