"""Which values a numeric comparison reads as numbers (pure: rules/match.py).

The rule (README, "How a row matches"): a JSON number, or a string holding a
plain decimal number (ASCII digits, an optional leading "-", an optional
fraction): no spaces, no "+", no "_", no exponent, no other script's digits.
NaN and infinities are never numbers: they match no numeric comparison.
"""

import math
import operator

import pytest
from hypothesis import given, settings, strategies as st

from dupcheck_plugin.rules.match import matches

ASCII_DIGITS = set("0123456789")


def plain_decimal(text):
    """The README's rule spelled out, not as the code's pattern: an optional
    "-", ASCII digits, then optionally "." and ASCII digits."""
    whole, dot, fraction = (text[1:] if text.startswith("-") else text).partition(".")
    return bool(whole) and set(whole) <= ASCII_DIGITS and (not dot or (bool(fraction) and set(fraction) <= ASCII_DIGITS))


def reference_number(v):
    """The number a rules-table author reads in ``v``, or None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, str) and plain_decimal(v):
        if "." not in v:
            return int(v)
        f = float(v)  # as a JSON number with a fraction reads: a double
        return f if math.isfinite(f) else None
    return None


_ORDERED = {"equals": operator.eq, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def reference_match(op, found, expected):
    a, b = reference_number(found), reference_number(expected)
    return a is not None and b is not None and _ORDERED[op](a, b)


@pytest.mark.parametrize("text,number", [
    ("1_000", 1000), (" 12 ", 12), ("12 ", 12), (" 12", 12), ("\t12", 12), ("12\n", 12), ("+12", 12),
    ("1e3", 1000), ("1E3", 1000), ("1.2e1", 12), ("nan", 5), ("NaN", 5), ("inf", 5), ("-inf", 5),
    ("Infinity", 5), ("\u0661\u0662", 12), ("\uff11\uff12", 12), ("12.", 12), (".5", 0.5), ("0x10", 16),
    ("1" * 400 + ".0", 5),
])
def test_a_string_that_is_not_a_plain_decimal_number_matches_no_numeric_comparison(text, number):
    for op in ("equals", "gt", "gte", "lt", "lte"):
        assert not matches(op, text, number), (op, text, number)
        assert not matches(op, number, text), (op, number, text)
    assert matches("in", text, [number]) is False
    assert matches("contains", [text], number) is False


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_match_no_numeric_comparison(value):
    for op in ("equals", "gt", "gte", "lt", "lte"):
        for other in (0, 1.5, -(10 ** 6), "3", value):
            assert not matches(op, value, other), (op, value, other)
            assert not matches(op, other, value), (op, other, value)


def test_plain_decimal_strings_still_count_as_numbers():
    assert matches("equals", "3", 3) and matches("equals", "3.0", 3) and matches("equals", "0042", 42)
    assert matches("equals", "-12.50", -12.5) and matches("gt", "10", 9) and matches("lte", "-0", 0)
    assert matches("gt", 3, "2") and matches("in", "2", [1, 2])


def test_a_json_integer_too_large_for_a_double_compares_exactly():
    huge = 10 ** 400  # json.loads reads it as an int; float() of it raises OverflowError
    assert matches("gt", huge, 0) and not matches("lt", huge, 0) and not matches("equals", huge, 1e308)
    assert matches("equals", str(huge), huge)
    assert matches("equals", "12345678901234567891", 12345678901234567891)
    assert not matches("equals", "12345678901234567891", 12345678901234567890)


_TEXT = st.text(st.sampled_from("0123456789-+._ eEnaifNIty\t\n١２x"), max_size=12)
_NUMBER = st.one_of(st.integers(min_value=-(10 ** 30), max_value=10 ** 30), st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(sorted(_ORDERED)), st.one_of(_TEXT, _NUMBER), _NUMBER, st.booleans())
def test_numeric_comparisons_follow_the_reference_rule(op, value, number, swap):
    found, expected = (number, value) if swap else (value, number)
    assert matches(op, found, expected) is reference_match(op, found, expected), (op, found, expected)


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(["gt", "gte", "lt", "lte"]), _TEXT, _TEXT)
def test_ordered_comparisons_of_two_strings_follow_the_reference_rule(op, found, expected):
    assert matches(op, found, expected) is reference_match(op, found, expected), (op, found, expected)
