"""Convoso's answer codes and texts, in one place (pure).

``text`` is exactly what Convoso writes for the code (clients match on it);
dupcheck's added detail (why the phone is invalid, which call failed) goes
in a separate ``detail`` field of the decision and the answer. Codes that
Convoso does not document are dupcheck's own choice (``convoso=False``).
One code may have different texts on different endpoints (6008 on
leads/insert and on dnc/insert), so each constant names its endpoint's use.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    code: int
    text: str
    convoso: bool = True  # False: not a Convoso code/text; dupcheck's own


# -- leads/insert (and every decision record) ---------------------------------
OK = Code(200, "Lead created", convoso=False)  # Convoso's success answer carries no text
DUPLICATE_SKIPPED = Code(200, "Duplicate lead skipped", convoso=False)
NO_SUCH_LIST = Code(6002, "No such List")
NEED_PHONE_AND_LIST = Code(6007, "The Lead requires a phone number and list id")
BAD_PHONE = Code(6008, "The phone number is invalid")
DUPLICATE = Code(6009, "The phone number already exists")
MISSING_FIELDS = Code(6023, "Required fields are missed")
ON_DNC = Code(6024, "The phone number is on the DNC list", convoso=False)  # Convoso documents none for check_dnc
BAD_EMAIL = Code(6079, "Invalid Email(s)")
INTERNAL = Code(6500, "Internal error, retry later", convoso=False)
CHECK_UNAVAILABLE = Code(6503, "Duplicate check unavailable, retry later", convoso=False)

# -- dnc/insert, dnc/search, leads/search -------------------------------------
INVALID_CAMPAIGN = Code(6006, "Invalid Campaign ID", convoso=False)
DNC_BAD_PHONE = Code(6007, "Invalid Phone Number", convoso=False)
DNC_PHONE_EXISTS = Code(6008, "The phone number already exists.")
BAD_COUNTRY_CODE = Code(6026, "Missing or Invalid Country Code", convoso=False)
INVALID_LIMIT = Code(7230, "Invalid limit value", convoso=False)
INVALID_OFFSET = Code(7231, "Invalid offset value", convoso=False)
