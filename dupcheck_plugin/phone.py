"""Phone number normalisation (pure)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from .errors import DupcheckError

if TYPE_CHECKING:
    import phonenumbers

# phonenumbers (~15 ms to import) is imported where a number needs it: the
# common North American shapes never do, and `dupcheck check` never parses one


class PhoneError(DupcheckError, ValueError):
    """Not a phone number; the message says why."""


# phonenumbers' reasons (NumberParseException.error_type, imported only when a number is parsed)
# in plain words: its own read "(1) The string supplied did not seem to be a phone number."
_PARSE_ERRORS = {
    0: "no country has its country code",  # INVALID_COUNTRY_CODE
    1: "too few digits, or letters where digits go",  # NOT_A_NUMBER
    2: "too short",  # TOO_SHORT_AFTER_IDD
    3: "too short",  # TOO_SHORT_NSN
    4: "too long",  # TOO_LONG
}


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def country_code(text: str) -> str | None:
    """A lead's ``phone_code`` as its ASCII digits (" +44 " -> "44"), or None when it is not
    1 to 3 digits: Convoso's country calling code, not a country's letters ("GB")."""
    code = text.strip().removeprefix("+")
    if not (1 <= len(code) <= 3 and code.isdecimal()):
        return None
    return code if code.isascii() else str(int(code)).zfill(len(code))  # another script's digits


@lru_cache(maxsize=4096)
def parse_phone(number: str, phone_code: str = "1") -> phonenumbers.PhoneNumber:
    """Parse ``number`` dialled in the country of ``phone_code`` (Convoso's
    default is 1). A leading ``+`` means the number carries its own code."""
    import phonenumbers

    raw = str(number).strip()
    if not raw:
        raise PhoneError("empty phone number")
    code = _digits(str(phone_code or "1")) or "1"
    if raw.startswith("+"):
        text = raw
    else:
        text = f"+{code}{_digits(raw)}"
        # a national number typed with its country code already ("15551234567" with code 1)
        digits = _digits(raw)
        if digits.startswith(code) and len(digits) > 10 and code == "1":
            text = f"+{digits}"
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        why = _PARSE_ERRORS.get(exc.error_type, "it cannot be read as one")
        raise PhoneError(_known_shape(raw) or f"not a phone number: {why}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise PhoneError(_known_shape(raw) or "not a possible phone number for its country")
    return parsed


def _known_shape(raw: str) -> str | None:
    """Why a refused number is a spreadsheet's or a script's rewriting of one, or one with an
    extension, if it is: said on the refusal only (a number that parses never gets here)."""
    ext = _EXTENSION.search(raw)
    if ext and ext.start() > 0:
        return (f"not a phone number: it ends with an extension ({ext[0].strip()}), whose digits would be read "
                "as the number's: send the number without it")
    if _SCIENTIFIC.fullmatch(raw):
        return (f"not a phone number: {raw} is scientific notation, as a spreadsheet writes a long number "
                "(and may have rounded it): format the column as text and export again")
    if _FLOAT.fullmatch(raw):
        return (f"not a phone number: {raw} is a number written as a decimal (by a spreadsheet or a script); "
                "send its digits only")
    return None


_SCIENTIFIC = re.compile(r"[0-9](?:[.,][0-9]+)?[eE]\+?[0-9]+")
_FLOAT = re.compile(r"[0-9]{7,}\.0+")
_EXTENSION = re.compile(r"\s*(?:x|ext\.?|extension)\s*[0-9]{1,6}\s*$", re.IGNORECASE)


_SEPARATORS = str.maketrans("", "", " ()-.")


def nanp_fast_e164(number: str, phone_code: str) -> str | None:
    """E.164 of the common North American shapes (``5550100101``,
    ``(555) 010-0101``, ``+1 555-010-0101``, ``15550100101``) without
    ``phonenumbers``; None when not sure (then ``phonenumbers`` decides).
    For country code 1 ``phonenumbers`` only asks for ten national digits,
    which is all this checks; ``tests/test_phone.py`` holds the two equal."""
    if phone_code != "1" and _digits(str(phone_code or "1")) != "1":
        return None
    if len(number) == 10 and number.isascii() and number.isdigit():  # the commonest shape, as typed
        return "+1" + number
    s = number.strip().translate(_SEPARATORS)
    if s[:2] == "+1":
        s = s[2:]
    elif s[:1] == "+":
        return None
    elif len(s) == 11 and s[0] == "1":
        s = s[1:]
    if len(s) == 10 and s.isascii() and s.isdigit():
        return "+1" + s
    return None


@lru_cache(maxsize=8192)
def _normalised(number: str, phone_code: str) -> tuple[str, str]:
    """(E.164, national significant digits): one parse serves intake and both filters of a
    lead. A number that is refused raises each time (lru_cache keeps no exceptions)."""
    fast = nanp_fast_e164(str(number), phone_code)
    if fast is not None:  # "+1" and the ten national digits
        return fast, fast[2:]
    import phonenumbers

    parsed = parse_phone(number, phone_code)
    return (phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
            phonenumbers.national_significant_number(parsed))


def to_e164(number: str, phone_code: str = "1") -> str:
    return _normalised(number, phone_code)[0]


def national_digits(number: str, phone_code: str = "1") -> str:
    return _normalised(number, phone_code)[1]


def mask_phone(phone: str | None) -> str | None:
    """``+15551234567`` -> ``+1555***4567``: enough to correlate, not to dial."""
    if not phone:
        return phone
    if len(phone) <= 6:
        return "*" * len(phone)
    return phone[:-7] + "***" + phone[-4:]


def split_e164(phone_e164: str) -> tuple[str, str]:
    """``+15551234567`` -> (``5551234567``, ``1``): the shape Convoso's DNC API shows.
    A North American number (``+1`` and ten digits, what intake's fast path
    gives) is split as it is; ``tests/test_phone.py`` holds the two equal."""
    national = phone_e164[2:]
    if len(phone_e164) == 12 and phone_e164[:2] == "+1" and national.isascii() and national.isdigit():
        return national, "1"
    import phonenumbers

    try:
        parsed = phonenumbers.parse(phone_e164, None)
        return phonenumbers.national_significant_number(parsed), str(parsed.country_code)
    except phonenumbers.NumberParseException:
        # not parseable: keep the digits rather than refuse a DNC entry
        if phone_e164.startswith("+1"):
            return phone_e164[2:], "1"
        return phone_e164.lstrip("+"), ""
