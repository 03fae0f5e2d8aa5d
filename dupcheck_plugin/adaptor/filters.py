"""Template filters for adaptors: phone formats and query-language escaping.

Each filter is a pure function of strings to a string. Query languages need
their own escaping; HTML autoescaping does not do it.
"""

from __future__ import annotations

from ..phone import PhoneError, national_digits, to_e164


def _phone(fn, value, phone_code):
    value = "" if value is None else str(value)
    if not value.strip():
        return ""
    try:
        return fn(value, str(phone_code or "1"))
    except PhoneError as exc:
        raise ValueError(f"{value!r}: {exc}") from None


def e164(value: str, phone_code: str = "1") -> str:
    """``(555) 123-4567`` -> ``+15551234567``; empty stays empty."""
    return _phone(to_e164, value, phone_code)


def national(value: str, phone_code: str = "1") -> str:
    """The national significant digits: ``+1 555 123 4567`` -> ``5551234567``."""
    return _phone(national_digits, value, phone_code)


def digits(value: str) -> str:
    """Only the digits of a value."""
    return "".join(ch for ch in str(value) if ch.isdigit())


_SOQL = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def soql(value: str) -> str:
    """Escape for the inside of a SOQL string literal ('...')."""
    return "".join(_SOQL.get(ch, ch) for ch in str(value))


def soql_like(value: str) -> str:
    """Escape for a SOQL LIKE pattern: a literal value, ``%`` and ``_`` included."""
    return soql(value).replace("%", "\\%").replace("_", "\\_")


# SOSL reserved characters (Salesforce SOSL FIND clause): ? & | ! { } [ ] ( ) ^ ~ * : \ " ' + -
_SOSL_RESERVED = set('?&|!{}[]()^~*:\\"\'+-')


def sosl(value: str) -> str:
    """Escape SOSL reserved characters with a backslash each."""
    return "".join("\\" + ch if ch in _SOSL_RESERVED else ch for ch in str(value))


def zoho_criteria(value: str) -> str:
    """Escape a value inside Zoho CRM search ``criteria``: backslash, ``(``, ``)`` and ``,``."""
    out = str(value).replace("\\", "\\\\")
    for ch in "(),":
        out = out.replace(ch, "\\" + ch)
    return out


BUILTIN_FILTERS = {
    "e164": e164,
    "national": national,
    "digits": digits,
    "soql": soql,
    "soql_like": soql_like,
    "sosl": sosl,
    "zoho_criteria": zoho_criteria,
}
