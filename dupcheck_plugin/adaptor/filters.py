"""Template filters for adaptors: phone formats and query-language escaping.

Each filter is a pure function of strings to a string. Query languages need
their own escaping; HTML autoescaping does not do it.
"""

from __future__ import annotations

import re

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


_ASCII_NON_DIGITS = str.maketrans("", "", "".join(chr(c) for c in range(128) if not chr(c).isdigit()))


def digits(value: str) -> str:
    """Only the digits of a value (any script's: what ``str.isdigit`` says)."""
    text = str(value)
    if text.isascii():
        return text.translate(_ASCII_NON_DIGITS)
    return "".join(ch for ch in text if ch.isdigit())


_SOQL = str.maketrans({"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
                       "\f": "\\f"})
# what _SOQL escapes: a value without any (a phone, an email) is returned as it is, since
# str.translate with a table that writes two characters looks each character up in a dict
# (a batched Salesforce lead passes seven values through soql: 49,000 -> 20,000 instructions)
_SOQL_SPECIAL = re.compile("[" + re.escape("".join(map(chr, _SOQL))) + "]")


def soql(value: str) -> str:
    """Escape for the inside of a SOQL string literal ('...')."""
    text = str(value)
    return text.translate(_SOQL) if _SOQL_SPECIAL.search(text) else text


def soql_like(value: str) -> str:
    """Escape for a SOQL LIKE pattern: a literal value, ``%`` and ``_`` included."""
    return soql(value).replace("%", "\\%").replace("_", "\\_")


# SOSL reserved characters (Salesforce SOSL FIND clause): ? & | ! { } [ ] ( ) ^ ~ * : \ " ' + -
_SOSL = str.maketrans({ch: "\\" + ch for ch in '?&|!{}[]()^~*:\\"\'+-'})


def sosl(value: str) -> str:
    """Escape SOSL reserved characters with a backslash each."""
    return str(value).translate(_SOSL)


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

# Pure functions of their arguments, linear in their length, calling no user code: a
# template made only of these, variables and text needs no Jinja to render (render.py).
PURE_FILTERS = frozenset(BUILTIN_FILTERS.values())
