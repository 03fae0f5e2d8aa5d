"""A batch of commits as the rows of the leads, DNC and decisions tables (pure).

Both SQL stores insert a batch table by table (SQLite in multi-row INSERTs,
PostgreSQL in one ``executemany`` each), so every row must be known before
any is inserted: the new leads' ids come first (SQLite: the largest id plus
one, and on, under the write lock; PostgreSQL: reserved from the identity
sequence), and each decision row carries its lead's id and the record as
stored, with ``lead_id`` set.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, NamedTuple, Sequence

from .. import jsontext
from .contract import Commit, DncEntry


class BatchRows(NamedTuple):
    # (id, phone_e164, phone_number, phone_code, list_id, status, first_name, last_name, email, created_at, fields)
    leads: list[tuple]
    dncs: list[tuple[DncEntry, str]]  # (entry, inserted_at): each store words its own DNC insert
    # (phone_e164, lead_id, action, idempotency_key, workflow, source, row, decided_at, record)
    decisions: list[tuple]
    lead_ids: list[str | None]  # per commit, in order: the new lead's id or None
    texts: list[str]  # per commit, in order: the record as stored, JSON text (the decisions row's record)


# a record as the engine builds it for `run` ends with ``"lead_id": null`` (serve's and
# Temporal's add keys after it). JSON text that ends with this is such a record: inside
# a string a quote is escaped, and a nested object's end would add a brace
_LEAD_ID_LAST = ',"lead_id":null}'


def record_json(record: Mapping[str, Any], lead_id: str | None) -> str:
    """``record`` with ``lead_id`` set, as JSON text: one dump of the record
    as it is, the id put in its place (a decimal lead id needs no escaping)."""
    if (isinstance(record, dict) and record and next(reversed(record)) == "lead_id"
            and record["lead_id"] is None and (lead_id is None or lead_id.isdecimal())):
        text = jsontext.dumps(record)
        if text.endswith(_LEAD_ID_LAST):  # not so only for a record of lead_id alone
            return text if lead_id is None else f'{text[:-5]}"{lead_id}"}}'
    return jsontext.dumps({**record, "lead_id": lead_id})  # serve's records: lead_id mid-object


def batch_rows(commits: Sequence[Commit], new_ids: Iterator[int], now: str) -> BatchRows:
    """The rows of ``commits``; ``new_ids`` gives the id of each new lead in
    turn; ``now`` stands in for a record without ``decided_at``."""
    rows = BatchRows([], [], [], [], [])
    for commit in commits:
        record = commit.record
        decided_at = record.get("decided_at") or now
        lead_id: str | None = None
        if commit.lead is not None:
            lead = commit.lead
            new_id = next(new_ids)
            lead_id = str(new_id)
            rows.leads.append((new_id, lead.phone_e164, lead.phone_number, lead.phone_code, lead.list_id,
                               lead.status, lead.first_name, lead.last_name, lead.email, decided_at,
                               jsontext.dumps(dict(lead.fields))))
        if commit.dnc is not None:
            rows.dncs.append((commit.dnc, decided_at))
        text = record_json(record, lead_id)
        rows.decisions.append((
            record.get("phone_e164"), int(lead_id) if lead_id else None, record.get("action") or "",
            record.get("idempotency_key"), record.get("workflow"), record.get("source"),
            record.get("source_row"), decided_at, text))
        rows.lead_ids.append(lead_id)
        rows.texts.append(text)
    return rows
