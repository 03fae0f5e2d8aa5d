"""Phone normalisation: the fast path for North American shapes gives exactly
what ``phonenumbers`` gives, or steps aside."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dupcheck_plugin.engine.intake import admit
from dupcheck_plugin.phone import PhoneError, nanp_fast_e164, national_digits, parse_phone, split_e164, to_e164


def slow_e164(number: str, code: str) -> str | None:
    try:
        return phonenumbers.format_number(parse_phone.__wrapped__(number, code), phonenumbers.PhoneNumberFormat.E164)
    except PhoneError:
        return None


@pytest.mark.parametrize("raw", ["5550100101", "(555) 010-0101", "+1 555-010-0101", "15550100101",
                                 " 555.010.0101 ", "+1(555)0100101"])
def test_common_shapes_take_the_fast_path_and_agree(raw):
    assert nanp_fast_e164(raw, "1") == "+15550100101" == slow_e164(raw, "1")


@pytest.mark.parametrize("raw,code", [("5550177773x123", "1"), ("+44 20 7946 0958", "1"), ("555010010", "1"),
                                      ("5550100101", "44"), ("５５５0100101", "1"), ("555-0100-1011", "1")])
def test_unsure_shapes_are_left_to_phonenumbers(raw, code):
    assert nanp_fast_e164(raw, code) is None


_chars = st.sampled_from(list("0123456789 ()-.+x1") + ["５", "\u00a0"])


@settings(max_examples=3000, deadline=None)
@given(st.text(_chars, min_size=0, max_size=18), st.sampled_from(["1", "+1", " 1", "44", "", "1 "]))
def test_fast_path_never_disagrees_with_phonenumbers(raw, code):
    fast = nanp_fast_e164(raw, code)
    if fast is not None:
        assert fast == slow_e164(raw, code)


@settings(max_examples=1000, deadline=None)
@given(st.text(_chars, min_size=0, max_size=18), st.sampled_from(["1", "+1", "44", ""]))
def test_national_digits_agree_with_phonenumbers(raw, code):
    try:
        slow = phonenumbers.national_significant_number(parse_phone.__wrapped__(raw, code))
    except PhoneError:
        slow = None
    try:
        fast = national_digits(raw, code)
    except PhoneError:
        fast = None
    assert fast == slow


def test_to_e164_still_refuses_what_is_not_a_phone():
    with pytest.raises(PhoneError):
        to_e164("12", "1")
    assert to_e164("+44 20 7946 0958", "1") == "+442079460958"


@pytest.mark.parametrize(("raw", "says"), [
    ("abc", "not a phone number: too few digits, or letters where digits go"),
    ("+999 5550100", "not a phone number: no country has its country code"),
    ("5" * 40, "not a phone number: too long"),
    # a spreadsheet's or a script's rewriting of a number: said as such
    ("5.55E+09", "not a phone number: 5.55E+09 is scientific notation, as a spreadsheet writes a long number (and "
                 "may have rounded it): format the column as text and export again"),
    ("5550100101.0", "not a phone number: 5550100101.0 is a number written as a decimal (by a spreadsheet or a "
                     "script); send its digits only"),
    # an extension's digits read as the number's: said as such (was "not a possible phone number")
    ("555-010-0801 x123", "not a phone number: it ends with an extension (x123), whose digits would be read as the "
                          "number's: send the number without it"),
    ("(555) 010-0801 Ext. 12", "not a phone number: it ends with an extension (Ext. 12), whose digits would be read "
                               "as the number's: send the number without it"),
])
def test_a_phone_refused_says_why_in_plain_words(raw, says):
    assert to_e164("555.010.0101", "1") == "+15550100101"  # dots as separators are a phone's own
    # before: phonenumbers' own text, "(1) The string supplied did not seem to be a phone number."
    with pytest.raises(PhoneError) as refused:
        to_e164(raw, "1")
    assert str(refused.value) == says


@settings(max_examples=2000, deadline=None)
@given(st.text(st.sampled_from(list("0123456789")), min_size=10, max_size=10))
def test_split_e164_of_north_american_numbers_agrees_with_phonenumbers(digits):
    parsed = phonenumbers.parse("+1" + digits, None)
    assert split_e164("+1" + digits) == (phonenumbers.national_significant_number(parsed), str(parsed.country_code))


def test_split_e164_of_other_numbers_asks_phonenumbers():
    assert split_e164("+442079460958") == ("2079460958", "44")
    assert split_e164("+1555010010") == ("555010010", "1")  # nine digits: phonenumbers' reading


# The shapes people type, built rather than drawn character by character (a random string
# is rarely ten digits with a +1 before them): prefixes, separators, now and then a
# character the fast path must not pass (another script's digit, a tab, a slash),
# extensions, whitespace around, and the country codes a list may carry.
_prefixes = st.sampled_from(["", "", "+1", "1", "+ 1", "+-1", "(+1)", "+(1)", "1 ", "+1-", "+11", "+", "++1",
                             "001", "(1)", "+1 ("])
_separators = st.sampled_from(["", "", "", " ", "-", ".", "(", ")", ") "])
_odd = st.sampled_from(["٣", "５", "۵", "\u00a0", "\t", "/", "+", "x"])


@st.composite
def _typed_numbers(draw):
    out = [draw(st.sampled_from(["", "", " ", "\u2003", "\n"])), draw(_prefixes)]
    for _ in range(draw(st.sampled_from([10, 10, 10, 11, 11, 9]))):
        out.append(draw(_separators))
        out.append(draw(_odd) if draw(st.integers(0, 20)) == 0 else draw(st.sampled_from("0123456789")))
    out.append(draw(st.sampled_from(["", "", "", "x123", " ext 5", " "])))
    return "".join(out)


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(_typed_numbers(), st.sampled_from(["1", "1", "+1", " 1", "44", "", "01", "١"]))
def test_typed_numbers_take_the_fast_path_only_where_phonenumbers_agrees(raw, code):
    fast = nanp_fast_e164(raw, code)
    if fast is not None:
        assert fast == slow_e164(raw, code)
    admitted = admit({"phone_number": raw, "phone_code": code, "list_id": "1"}, {}).phone_e164
    assert admitted == (slow_e164(raw.strip(), code) if raw.strip() else None)


@pytest.mark.parametrize("code, e164", [("44", "+442071838750"), (" +44 ", "+442071838750"), ("+1", "+12071838750"),
                                        ("١", "+12071838750")])
def test_a_country_calling_code_is_read_as_its_digits(code, e164):
    intake = admit({"phone_number": "2071838750", "phone_code": code, "list_id": "1"}, {})
    assert intake.refused is None and intake.phone_e164 == e164


@pytest.mark.parametrize("code", ["GB", "UK", "x44", "1234", "+", "4 4", "²"])
def test_a_phone_code_that_is_not_a_calling_code_is_refused_not_read_as_plus_one(code):
    """"GB" was read as no code, so +1: a London number checked and stored as one in Maine."""
    intake = admit({"phone_number": "2071838750", "phone_code": code, "list_id": "1"}, {})
    assert intake.phone_e164 is None and intake.refused.code == 6026
    assert "is not a country calling code" in intake.refused.detail
