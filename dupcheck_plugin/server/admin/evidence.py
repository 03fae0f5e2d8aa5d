"""A decision's evidence as the Decisions page shows it (pure): the CRM
answer's body, and the rules-table row that decided as it read then.

A record keeps the row's number and name; the row's settings come from the
version of the workflow file in force when the lead was decided, found in
the change log (every Apply and reload keeps the whole file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import tomlkit

from .workflow_file import check_node_index


@dataclass(frozen=True)
class RowInForce:
    text: str  # the row as the file wrote it: a TOML inline table
    source: str  # which version of the file it comes from
    warning: str | None = None  # the row's name there is not the record's


def response_body(response: Mapping[str, Any] | None) -> str | None:
    """The body for reading: pretty JSON when it is whole JSON, else the text as kept."""
    if not response:
        return None
    body = str(response.get("body", ""))
    if not response.get("truncated"):
        try:
            return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return body


def version_in_force(changes: Sequence[Mapping[str, Any]], decided_at: str) -> Mapping[str, Any] | None:
    """Of the change log (newest first), the version applied last before ``decided_at``;
    the oldest entry (the file before the first change) for a decision older than every change."""
    for change in changes:
        if str(change.get("applied_at", "")) <= decided_at:
            return change
    return changes[-1] if changes else None


def row_in_force(record: Mapping[str, Any], changes: Sequence[Mapping[str, Any]], current_text: str,
                 check_id: str | None) -> RowInForce | None:
    """The rules-table row that decided ``record``, as the file in force then wrote it."""
    number = record.get("rules_row")
    if not isinstance(number, int):
        return None
    version = version_in_force(changes, str(record.get("decided_at") or ""))
    if version is not None:
        text, source = str(version["text"]), f"version #{version['id']} of the workflow file (change log)"
    else:
        text, source = current_text, "the workflow file as it is now (no change is logged)"
    try:
        doc = tomlkit.parse(text)
    except Exception:  # noqa: BLE001 - a version that does not parse shows no row, the rest stays
        return None
    index = check_node_index(doc, check_id)
    if index is None:
        index = check_node_index(doc)
    rules = doc["nodes"][index].get("config", {}).get("rules", []) if index is not None else []
    if number >= len(rules):
        return None
    row, name = rules[number], record.get("rules_row_name")
    if not isinstance(row, Mapping):
        return None
    warning = None
    if row.get("name") != name:
        warning = f"the row's name there is {row.get('name')!r}, the record says {name!r}: the file may have changed since"
    return RowInForce(row.as_string().strip(), source, warning)
