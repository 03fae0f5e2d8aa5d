"""Convoso's public API, the pure part: parameters in, answers out.

Nothing here does I/O. Parameters arrive as query string, form fields or a
flat JSON object and are merged into one ``dict[str, str]`` (the body wins
over the query string, a repeated key keeps its last value, as PHP does).
Failures that Convoso answers with HTTP 200 raise :class:`Refusal`; a request
that is not usable at all (bad JSON, nested values) raises :class:`ApiError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl
from .. import codes
from ..codes import Code
from ..errors import DupcheckError
from ..host import row_label

MAX_BODY_BYTES = 1 << 20  # 1 MiB: Convoso leads are small; anything bigger is a mistake or an attack
MAX_KEY_CHARS = 200



# Convoso insert options: read here, never stored as lead fields. Options we do
# not implement (hopper, update_if_found, ...) are accepted and ignored.
CONTROL_PARAMS = frozenset({
    "auth_token", "check_dup", "check_dup_archive", "check_dnc", "check_wireless", "update_if_found",
    "hopper", "hopper_priority", "hopper_expires_in", "search_list_id", "search_campaign_id",
    "filter_phone_code", "reject_by_carrier_type", "update_order_by_last_called_time", "blueinkdigital_token",
})
SECRET_PARAMS = frozenset({"auth_token", "blueinkdigital_token"})


class ApiError(DupcheckError):
    """Answered with this HTTP status and a Convoso-style error body (bad body, auth, store down)."""

    def __init__(self, status: int, text: str, code: int = codes.MISSING_FIELDS.code):
        super().__init__(text)
        self.status, self.code, self.text = status, code, text


class Refusal(DupcheckError):
    """A Convoso failure answer (HTTP 200, ``success: false``): Convoso's code
    and text, and dupcheck's ``detail`` beside them."""

    def __init__(self, code: Code, detail: str | None = None):
        super().__init__(f"{code.text} ({detail})" if detail else code.text)
        self.code_info, self.detail = code, detail
        self.code, self.text = code.code, code.text


def error_body(code: int, text: str, detail: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"success": False, "code": code, "text": text, **extra}
    if detail:
        body["detail"] = detail
    return body


# -- parameters ---------------------------------------------------------------

def _scalar(key: str, value: Any) -> str | None:
    if isinstance(value, (dict, list)):
        raise ApiError(400, f"nested parameters are not allowed ({key[:MAX_KEY_CHARS]!r}): "
                              "send a flat JSON object")
    if value is None:
        return None  # JSON null: as if absent
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def json_params(body: bytes) -> list[tuple[str, str]]:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd numbers or depth
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "the JSON body must be an object of parameters")
    out = []
    for key, value in obj.items():
        flat = _scalar(key, value)
        if flat is not None:
            out.append((key, flat))
    return out


def form_params(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the form body is not valid UTF-8") from None
    if "%" not in text and "+" not in text:
        # nothing escaped, the common lead: parse_qsl's unquoting would change nothing, so split as
        # it splits (blank values kept, empty pairs dropped): ~2.5 us, parse_qsl ~10 us
        return [(name, value) for name, _, value in (pair.partition("=") for pair in text.split("&") if pair)]
    try:
        return parse_qsl(text, keep_blank_values=True, errors="strict")
    except (ValueError, UnicodeDecodeError):  # a %-escape that is not UTF-8
        raise ApiError(400, "the form body is not valid UTF-8") from None


def merge(*sources: Iterable[tuple[str, str]]) -> dict[str, str]:
    """One flat dict; later sources and later repeats win. Rejects what the
    store or a CRM could not carry (PHP-style ``a[b]`` keys, lone surrogates)."""
    out: dict[str, str] = {}
    for source in sources:
        for key, value in source:
            if "[" in key:
                raise ApiError(400, f"nested parameters are not allowed ({key[:MAX_KEY_CHARS]!r})")
            if len(key) > MAX_KEY_CHARS:
                raise ApiError(400, f"parameter name longer than {MAX_KEY_CHARS} characters")
            out[key] = value
    for key, value in out.items():
        try:
            key.encode("utf-8")
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from JSON "\ud800": SQLite cannot bind it
            raise ApiError(400, "parameters must be valid Unicode text") from None
    return out


def flag(value: str | None) -> bool:
    """Convoso clients send booleans as 1/0 or true/false."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on", "y")


_INT = re.compile(r"-?[0-9]{1,18}")


def _int(value: str) -> int | None:
    text = value.strip()
    return int(text) if _INT.fullmatch(text) else None


def params_hash(params: Mapping[str, str]) -> str:
    """Fingerprint of a request (secrets left out): a reused Idempotency-Key
    with other parameters is refused rather than answered with a stale answer."""
    data = json.dumps(sorted((k, v) for k, v in params.items() if k not in SECRET_PARAMS))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


# -- leads/insert -------------------------------------------------------------

@dataclass(frozen=True)
class InsertRequest:
    lead: dict[str, str]  # the lead's fields: everything but auth_token and insert options
    check_dup: int  # 0 none, 1 account, 2 list, 3 campaign (= list here: no campaigns)
    check_dnc: bool


def parse_check_dup(value: str | None, default: int) -> int:
    if value is None or not value.strip():
        return default
    text = value.strip().lower()
    if text == "true":  # Convoso: "Pass 1 or true"
        return 1
    if text == "false":
        return 0
    number = _int(text)
    if number is None or not 0 <= number <= 3:
        raise Refusal(codes.MISSING_FIELDS, "check_dup must be 0, 1, 2 or 3")
    return number


def lead_fields(params: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k not in CONTROL_PARAMS}


def parse_insert(params: Mapping[str, str], check_dup_default: int) -> InsertRequest:
    """Raises Refusal for what Convoso refuses before looking at the lead."""
    lead = lead_fields(params)
    if not lead.get("phone_number", "").strip() or not lead.get("list_id", "").strip():
        raise Refusal(codes.NEED_PHONE_AND_LIST)
    if _int(lead["list_id"]) is None:
        raise Refusal(codes.NO_SUCH_LIST, "list_id must be an integer")
    lead["list_id"] = str(_int(lead["list_id"]))  # " 0042" and "42" are one list
    return InsertRequest(lead, parse_check_dup(params.get("check_dup"), check_dup_default),
                         flag(params.get("check_dnc")))


def insert_answer(record: Mapping[str, Any]) -> dict[str, Any]:
    """The leads/insert answer, a pure function of the stored decision record,
    so an Idempotency-Key replay gives byte-for-byte the first answer."""
    lead_id = record.get("lead_id")
    api = record.get("api") or {}
    if record.get("success"):
        body: dict[str, Any] = {"success": True, "data": {"lead_id": lead_id}}
        if lead_id is None:  # a success row that skips the lead: say why there is no id
            body["text"] = record.get("text")
            body["row"] = row_label(record)
        return body
    body = error_body(record.get("code"), record.get("text"), record.get("detail"))
    if lead_id is not None:  # success = false rows still post the lead
        body["data"] = {"lead_id": lead_id}
    row = row_label(record)
    if row is not None:
        body["row"] = row
        if not api.get("local_check"):
            body["crm_record_id"] = record.get("crm_record_id")
    if api.get("existing_lead_id") is not None:
        body["existing_lead_id"] = api["existing_lead_id"]
    if record.get("retryable"):
        body["retryable"] = True
    return body


# -- search endpoints ---------------------------------------------------------

def page(params: Mapping[str, str], default_limit: int, max_limit: int, max_offset: int = 100_000) -> tuple[int, int]:
    offset = _int(params.get("offset") or "0")
    if offset is None or not 0 <= offset <= max_offset:
        raise Refusal(codes.INVALID_OFFSET, f"0 to {max_offset}")
    limit = _int(params.get("limit") or str(default_limit))
    if limit is None or not 1 <= limit <= max_limit:
        raise Refusal(codes.INVALID_LIMIT, f"1 to {max_limit}")
    return offset, limit


def convoso_time(iso: str | None) -> str:
    """Store timestamps (ISO 8601, UTC) in Convoso's ``YYYY-MM-DD hh:mm:ss``."""
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def lead_entry(lead: Mapping[str, Any]) -> dict[str, str]:
    """A stored lead as Convoso's leads/search shows it: every value a string."""
    fields = {k: "" if v is None else str(v) for k, v in (lead.get("fields") or {}).items()}
    created = convoso_time(lead.get("created_at"))
    entry = {**fields, "id": str(lead["id"]), "lead_id": str(lead["id"]), "list_id": lead.get("list_id") or "",
             "status": lead.get("status") or "", "phone_code": lead.get("phone_code") or "",
             "phone_number": lead.get("phone_number") or "", "first_name": lead.get("first_name") or "",
             "last_name": lead.get("last_name") or "", "email": lead.get("email") or "",
             "created_at": created, "modified_at": created}
    return entry


def dnc_entry(row: Mapping[str, Any]) -> dict[str, str]:
    campaign = str(row.get("campaign_id") or "0")
    return {"id": str(row["id"]), "phone_number": row.get("phone_number") or "",
            "phone_code": row.get("phone_code") or "", "campaign_id": campaign,
            "campaign_name": "Global" if campaign == "0" else "", "reason": row.get("reason") or "",
            "purpose": "", "insert_date": convoso_time(row.get("inserted_at"))}


def search_answer(offset: int, limit: int, total: int | str, entries: list) -> dict[str, Any]:
    return {"success": True, "data": {"offset": offset, "limit": limit, "total": total, "entries": entries}}
