"""Parse a CRM answer body as JSON, XML (to a dict) or text (pure)."""

from __future__ import annotations

import json
from typing import Any

from defusedxml import ElementTree as SafeET
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


def parse_body(content: bytes, fmt: str, status_code: int) -> Any:
    """The parsed body; an empty body parses to None (Zoho answers 204 with nothing)."""
    if not content.strip():
        return None
    if fmt == "json":
        try:
            return json.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UnparsableBody(f"not JSON: {exc}") from None
    if fmt == "xml":
        try:
            return xml_to_dict(SafeET.fromstring(content))
        except Exception as exc:  # defusedxml raises several types (ParseError, EntitiesForbidden...)
            raise UnparsableBody(f"not XML: {exc}") from None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("latin-1")
