"""Parse a CRM answer body as JSON, XML (to a dict) or text (pure)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from ..errors import DupcheckError


class UnparsableBody(DupcheckError, ValueError):
    pass


def _strip_ns(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def xml_to_dict(elem) -> Any:
    """``<r><total>2</total><c id="1"/><c id="2"/></r>`` ->
    ``{"total": "2", "c": [{"@id": "1"}, {"@id": "2"}]}``: attributes as
    ``@name``, repeated children as lists, text-only elements as strings
    (the root element itself is not a key)."""
    children = list(elem)
    attrs = {f"@{_strip_ns(k)}": v for k, v in elem.attrib.items()}
    text = (elem.text or "").strip()
    if not children and not attrs:
        return text
    out: dict[str, Any] = dict(attrs)
    for child in children:
        key = _strip_ns(child.tag)
        value = xml_to_dict(child)
        if key in out:
            if not isinstance(out[key], list):
                out[key] = [out[key]]
            out[key].append(value)
        else:
            out[key] = value
    if text:
        out["#text"] = text
    return out


# every byte to b" " but digits to b"0": a run of 19 digits in a body is a number orjson could read
# otherwise than json (an integer past 64 bits becomes a float there, silently)
_DIGITS = bytes(ord("0") if chr(i) in "0123456789" else ord(" ") for i in range(256))
_LONG_NUMBER = b"0" * 19


def parse_json(content: bytes) -> Any:
    """``json.loads(content)``, by orjson where the two agree (2.7 -> 0.6 us on an empty
    HubSpot search answer, 8 -> 4.4 on a two-contact one). orjson is not asked when the body
    holds a run of 19 digits (an integer past 64 bits: orjson makes it a float); what it
    refuses goes to json, which reads it its own way (NaN, 1e400, a lone surrogate, a BOM,
    UTF-16) or says why it is not JSON."""
    if type(content) is bytes and _LONG_NUMBER not in content.translate(_DIGITS):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return json.loads(content)


def parse_body(content: bytes, fmt: str, status_code: int) -> Any:
    """The parsed body; an empty body parses to None (Zoho answers 204 with nothing)."""
    if not content or content.isspace():
        return None
    if fmt == "json":
        try:
            return parse_json(content)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
            raise UnparsableBody(f"not JSON: {exc}") from None
    if fmt == "xml":
        # imported here: only an adaptor whose answers are XML needs it (defusedxml and
        # xml.etree: 4-6 ms of every `run`'s and `serve`'s start-up otherwise)
        from defusedxml import ElementTree as SafeET

        try:
            return xml_to_dict(SafeET.fromstring(content))
        except Exception as exc:  # defusedxml raises several types (ParseError, EntitiesForbidden...)
            raise UnparsableBody(f"not XML: {exc}") from None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("latin-1")
