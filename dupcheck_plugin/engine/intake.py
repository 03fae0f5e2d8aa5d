"""Lead intake (pure): flatten, default and validate a lead before any node runs.

Refusals use Convoso's codes (:mod:`dupcheck_plugin.codes`): 6007 no phone
number, 6008 invalid phone, 6079 invalid email, 6023 malformed input. The
phone is parsed here, once per lead; everything after reads ``phone_e164``.

A row that no CRM or store could carry is refused here with 6023 and the
reason, never let through to fail later: a field longer than
:data:`MAX_FIELD_CHARS`, a lead larger than :data:`MAX_ROW_CHARS`, text that
is not valid Unicode (invalid UTF-8 read from a file, a lone surrogate from
JSON ``"\ud800"``) or that holds a NUL character. ``run`` and ``serve``
apply the same limits; the refused lead is recorded with its values cut.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .. import codes
from ..frozen import one_step_init
from ..phone import PhoneError, country_code, nanp_fast_e164, to_e164
from ..rules.decide import Decision

log = logging.getLogger(__name__)

MAX_FIELD_CHARS = 64 * 1024  # a lead field: names, addresses, notes fit many times over
MAX_ROW_CHARS = 1024 * 1024  # a whole lead: serve's body limit
SHOWN_CHARS = 200  # of a refused value, in its decision record
NOT_UNICODE = "is not valid Unicode"  # a field's rejection detail says this (run counts such rows)

_EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


@one_step_init
@dataclass(frozen=True)
class Intake:
    """An admitted lead: every value a string, defaults applied, the phone in
    E.164 (None when it has none or it is invalid). ``refused`` is set when
    the lead is refused before any node runs."""

    lead: dict[str, str]
    phone_e164: str | None
    refused: Decision | None = None

    def as_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"lead": dict(self.lead), "phone_e164": self.phone_e164,
                "refused": asdict(self.refused) if self.refused else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Intake":
        refused = data.get("refused")
        return cls(dict(data["lead"]), data.get("phone_e164"), Decision(**refused) if refused else None)


def _flat(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def printable(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` as it can be stored and shown: cut, invalid Unicode and NUL escaped."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def printable_lead(lead: Mapping[str, Any]) -> dict[str, str]:
    return {printable(str(k)): printable(_flat(v)) for k, v in lead.items()}


def row_problem(lead: Mapping[str, str], text: str | None = None) -> str | None:
    """Why this lead (all values strings) cannot be decided, or None.
    ``text``: its keys and values joined, when the caller has them."""
    if text is None:
        text = "".join(lead) + "".join(lead.values())
    # the common row in one look at its whole text: short, ASCII (always encodes), no NUL
    if len(text) <= MAX_FIELD_CHARS and text.isascii() and "\x00" not in text:
        return None
    total = 0
    for key, value in lead.items():
        if len(value) > MAX_FIELD_CHARS:
            return f"field {printable(key, 40)!r} is longer than {MAX_FIELD_CHARS} characters ({len(value)})"
        total += len(key) + len(value)
        for text in (key, value):
            if "\x00" in text:
                return f"field {printable(key, 40)!r} holds a NUL character"
            if text.isascii():  # ASCII always encodes (the test is O(1) in CPython)
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return f"field {printable(key, 40)!r} {NOT_UNICODE} (invalid UTF-8 or a lone surrogate)"
    if total > MAX_ROW_CHARS:
        return f"the lead is larger than {MAX_ROW_CHARS} characters ({total})"
    return None


def normal_list_id(value: str) -> str | None:
    """``" 1000"``, ``"01000"`` and ``"1000"`` are one list (as serve reads them); None
    for what is not a list id: Convoso's are integers (serve answers 6002 for any other)."""
    text = value.strip()
    digits = text[1:] if text.startswith("-") else text
    return str(int(text)) if digits.isascii() and digits.isdigit() and len(digits) <= 18 else None


def _e164(phone: str, phone_code: str) -> tuple[str | None, str | None]:
    """(E.164, None) or (None, why not)."""
    try:
        return to_e164(phone, phone_code), None
    except PhoneError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a number the parser chokes on is an invalid number
        log.warning("phone parser failed", exc_info=True)
        return None, f"{type(exc).__name__}"


class IntakeDefaults:
    """A workflow's ``[defaults]`` as intake applies them, worked out once per
    workflow rather than per lead: the phone code as text, the list id as text
    and normalised (None when there is none)."""

    __slots__ = ("phone_code", "list_id")

    def __init__(self, defaults: Mapping[str, Any]):
        self.phone_code = str(defaults.get("phone_code", "1"))
        self.list_id = normal_list_id(str(defaults["list_id"])) if defaults.get("list_id") else None


def admit(raw: Mapping[str, Any], defaults: Mapping[str, Any] | IntakeDefaults) -> Intake:
    """Normalise one lead: every value a string, defaults applied, phone in E.164."""
    if type(defaults) is not IntakeDefaults:
        defaults = IntakeDefaults(defaults)
    try:  # a row whose keys and values are all text already (a CSV row): taken as it is
        text: str | None = "".join(raw) + "".join(raw.values())
    except TypeError:
        text = None
    nested: list[str] = []
    if text is not None:
        lead = dict(raw)
    else:
        lead = {}
        for k, v in raw.items():  # one pass; a value that is already text is kept as it is
            if type(v) is not str:
                if isinstance(v, (dict, list)):
                    nested.append(str(k))
                v = _flat(v)
            lead[k if type(k) is str else str(k)] = v
        nested.sort()
    problem = row_problem(lead, text)
    if problem:
        return Intake(printable_lead(lead), None,
                      Decision.refused(codes.MISSING_FIELDS, f"Malformed row: {problem}", by="intake"))
    if nested:
        return Intake(lead, None, Decision.refused(codes.MISSING_FIELDS, by="intake",
                                                   detail=f"nested values are not allowed: {', '.join(nested)}"))
    field = lead.get
    phone_code = field("phone_code")
    if not phone_code:
        phone_code = lead["phone_code"] = defaults.phone_code
    elif not (len(phone_code) <= 3 and phone_code.isdecimal() and phone_code.isascii()):
        code = country_code(phone_code)
        if code is None:  # "GB", "x44": its digits read as a code (or none: +1) checked the wrong country
            return Intake(lead, None, Decision.refused(
                codes.BAD_COUNTRY_CODE, by="intake",
                detail=f"phone_code {printable(phone_code, 20)!r} is not a country calling code (1 to 3 digits)"))
        phone_code = lead["phone_code"] = code
    list_id = field("list_id")
    bad_list_id = None
    if list_id and not list_id.isspace():
        normal = normal_list_id(list_id)
        if normal is None:  # "inf" (a JSON 1e400), "web": stored, it would name no list serve could search
            bad_list_id = list_id
        else:
            lead["list_id"] = normal
    elif defaults.list_id:
        lead["list_id"] = defaults.list_id
    phone = field("phone_number", "").strip()
    if not phone:
        return Intake(lead, None, Decision.refused(codes.NEED_PHONE_AND_LIST, "no phone_number", by="intake"))
    e164 = nanp_fast_e164(phone, phone_code)  # the common North American shapes, without the parser's cache
    if e164 is None:
        e164, why = _e164(phone, phone_code)
        if e164 is None and bad_list_id is None:
            return Intake(lead, None, Decision.refused(codes.BAD_PHONE, why, by="intake"))
    if bad_list_id is not None:  # refused first, as serve refuses it; the record keeps the phone to be found by
        return Intake(lead, e164, Decision.refused(
            codes.NO_SUCH_LIST, by="intake",
            detail=f"list_id must be an integer (Convoso's list ids are), not {printable(bad_list_id, 40)!r}"))
    email = field("email", "").strip()
    if email and not _EMAIL.match(email):
        return Intake(lead, e164, Decision.refused(codes.BAD_EMAIL, by="intake"))
    return Intake(lead, e164)


def malformed(raw: Mapping[str, Any] | None, reason: str) -> Intake:
    """An input row that is not a lead at all (a CSV line with too many fields)."""
    return Intake(printable_lead(raw or {}), None,
                  Decision.refused(codes.MISSING_FIELDS, f"Malformed row: {printable(reason, 300)}", by="intake"))
