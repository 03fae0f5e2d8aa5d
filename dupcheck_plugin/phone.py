"""Phone number normalisation (pure)."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


class PhoneError(ValueError):
    pass


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


@lru_cache(maxsize=4096)
def parse_phone(number: str, phone_code: str = "1") -> phonenumbers.PhoneNumber:
    """Parse ``number`` dialled in the country of ``phone_code`` (Convoso's
    default is 1). A leading ``+`` means the number carries its own code."""
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
        raise PhoneError(f"not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise PhoneError("not a possible phone number for its country")
    return parsed


@lru_cache(maxsize=4096)
def to_e164(number: str, phone_code: str = "1") -> str:
    return phonenumbers.format_number(parse_phone(number, phone_code), phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=4096)
def national_digits(number: str, phone_code: str = "1") -> str:
    return phonenumbers.national_significant_number(parse_phone(number, phone_code))


def mask_phone(phone: str | None) -> str | None:
    """``+15551234567`` -> ``+1555***4567``: enough to correlate, not to dial."""
    if not phone:
        return phone
    if len(phone) <= 6:
        return "*" * len(phone)
    return phone[:-7] + "***" + phone[-4:]
