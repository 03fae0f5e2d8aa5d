"""Structured logs: one JSON object per line, phones masked, tokens never written."""

from __future__ import annotations

import json
import logging
import queue
import sys
from datetime import datetime, timezone
from logging.handlers import QueueHandler, QueueListener
from typing import Any, Iterable

from ..phone import PhoneError, mask_phone, to_e164

ACCESS = logging.getLogger("dupcheck_plugin.server.access")

PHONE_PARAMS = frozenset({"phone_number", "alt_phone_1", "alt_phone_2", "phone"})
# query values safe to show as sent; any other value (names, emails, addresses) is hidden
SHOWN_PARAMS = frozenset({"list_id", "lead_id", "phone_code", "check_dup", "check_dnc", "check_dup_archive",
                          "campaign_id", "offset", "limit"})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "logger": record.name,
        }
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)  # to the log only, never to a caller
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(level: str = "info", stream=None) -> QueueListener:
    """Route every logger (ours, uvicorn's, the engine's) to JSON lines on
    stderr. The event loop only queues records; a thread formats and writes
    them, so a slow stderr pipe never stalls requests. Call ``.stop()`` on
    the returned listener at exit to flush."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    records: queue.SimpleQueue = queue.SimpleQueue()
    listener = QueueListener(records, handler, respect_handler_level=False)
    listener.start()
    root = logging.getLogger()
    root.handlers[:] = [_KeepRecord(records)]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # uvicorn's access log prints the raw query string, auth_token included: ours replaces it
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every CRM request URL at INFO; a GET adaptor carries the phone in it
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return listener


class _KeepRecord(QueueHandler):
    """Queue the record as it is (its ``fields`` and traceback intact): the
    listener's JsonFormatter formats it."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()  # args may not survive the trip; the message does
        record.args = None
        return record


def masked_phone(value: str | None, phone_code: str | None = "1") -> str | None:
    """A phone as it may be logged: normalised to E.164 *before* it is masked,
    so trailing spaces, punctuation or an extension (``5550177773x123456``)
    never push the number's digits past the mask. A value that is not a phone
    number shows only its last two digits."""
    if not value:
        return None
    try:
        return mask_phone(to_e164(value, (phone_code or "1").strip().lstrip("+") or "1"))
    except (PhoneError, ValueError):
        digits = "".join(ch for ch in value if ch.isdigit())
        return "***" + digits[-2:] if len(digits) >= 6 else "***"


def mask_query(items: Iterable[tuple[str, str]]) -> str:
    """The query string as it may be logged: the token as ``****``, phones
    masked, other personal data replaced by ``*``."""
    parts = []
    for key, value in items:
        if key == "auth_token":
            value = "****"
        elif key in PHONE_PARAMS:
            value = masked_phone(value) or ""
        elif key not in SHOWN_PARAMS:
            value = "*" if value else ""
        elif len(value) > 40:
            value = value[:40] + "..."
        parts.append(f"{key[:40]}={value}")
    return "&".join(parts)


def access_logged() -> bool:
    """Whether requests are logged: what only the log needs (masked phones, the query) is built only then."""
    return ACCESS.isEnabledFor(logging.INFO)


def log_access(**fields: Any) -> None:
    if access_logged():
        ACCESS.info("request", extra={"fields": fields})
