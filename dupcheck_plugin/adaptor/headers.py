"""Which request headers can be sent (pure): RFC 9110's rule, which the h1
transport and the CRM client apply before a request goes out, and the
adaptor loader (so ``dupcheck check``) applies to an adaptor's fixed headers:
a fixed header that no lead could send is an error in the file, not a
refusal of every lead."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")  # a header name (RFC 9110 5.1)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # in a value: every control character but HTAB (5.5)


def unsendable(name: str, value: str) -> str | None:
    """Why this header cannot be sent, or None. The reason names the header,
    never its value (an Authorization header's value is a secret). A line
    break would start a header (or a request) of its own; other controls a
    CRM's parser may refuse or read otherwise; httpx sends ASCII only."""
    if _TOKEN.fullmatch(name) is None:
        return f"the header name {name!r} cannot be sent: a name is letters, digits and !#$%&'*+-.^_`|~ only"
    control = _CONTROL.search(value)
    if control is not None:
        return (f"the header {name!r} cannot be sent: its value holds a control character "
                f"(0x{ord(control.group()):02x})")
    if not value.isascii():
        return (f"the header {name!r} cannot be sent: its value holds a character that is not ASCII "
                "(a template filter such as urlencode can make it ASCII)")
    return None
