"""Lead intake (pure): flatten, default and validate a lead before any node runs.

Answers use Convoso's codes: 6007 no phone number, 6008 invalid phone,
6079 invalid email, 6023 malformed input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..phone import PhoneError, to_e164

CODE_NO_PHONE = 6007
CODE_BAD_PHONE = 6008
CODE_BAD_EMAIL = 6079
CODE_MALFORMED = 6023

_EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


@dataclass(frozen=True)
class Intake:
    lead: dict[str, str]
    phone_e164: str | None
    code: int | None = None  # set when the lead is refused before any node runs
    text: str | None = None


def _flat(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def admit(raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> Intake:
    """Normalise one lead: every value a string, defaults applied, phone in
    E.164. Refusals carry a Convoso-style code and a reason."""
    nested = sorted(k for k, v in raw.items() if isinstance(v, (dict, list)))
    lead = {str(k): _flat(v) for k, v in raw.items()}
    if nested:
        return Intake(lead, None, CODE_MALFORMED, f"nested values are not allowed: {', '.join(nested)}")
    if not lead.get("phone_code"):
        lead["phone_code"] = str(defaults.get("phone_code", "1"))
    if not lead.get("list_id") and defaults.get("list_id"):
        lead["list_id"] = str(defaults["list_id"])
    phone = lead.get("phone_number", "").strip()
    if not phone:
        return Intake(lead, None, CODE_NO_PHONE, "The Lead requires a phone number")
    try:
        e164 = to_e164(phone, lead["phone_code"])
    except PhoneError as exc:
        return Intake(lead, None, CODE_BAD_PHONE, f"The phone number is invalid ({exc})")
    email = lead.get("email", "").strip()
    if email and not _EMAIL.match(email):
        return Intake(lead, e164, CODE_BAD_EMAIL, "Invalid Email(s)")
    return Intake(lead, e164)
