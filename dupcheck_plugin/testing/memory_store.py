"""A store in memory: the :class:`~dupcheck_plugin.host.Store` contract and
nothing more. For tests and for hosts that keep their own records."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .. import hookimpl
from ..store.contract import Commit, DncEntry, Store, StoreError

if TYPE_CHECKING:
    from ..types import DecisionRecord


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class MemoryStore(Store):
    """Leads, DNC entries and decision records in lists, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.leads: list[dict[str, Any]] = []
        self.dnc: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        self.changes: list[dict[str, Any]] = []
        self.closed = False

    def apply(self, commits: Sequence[Commit]) -> list[str | None]:
        with self._lock:
            leads, dnc, records = list(self.leads), list(self.dnc), list(self.records)
            keys = {r.get("idempotency_key") for r in records} - {None}
            rows = {(r.get("workflow"), r.get("source"), r.get("source_row")) for r in records
                    if r.get("source") is not None and r.get("source_row") is not None}
            ids: list[str | None] = []
            for commit in commits:  # all into copies first: all land or none does
                record = commit.record
                key = record.get("idempotency_key")
                if key is not None and key in keys:
                    raise StoreError("a decision with this idempotency key is already stored")
                keys.add(key)
                row = (record.get("workflow"), record.get("source"), record.get("source_row"))
                if row[1] is not None and row[2] is not None:
                    if row in rows:
                        raise StoreError("this row of this lead file is already decided by this workflow")
                    rows.add(row)
                at = record.get("decided_at") or _now()
                lead_id = None
                if commit.lead is not None:
                    lead_id = str(len(leads) + 1)
                    new = commit.lead
                    leads.append({"id": lead_id, "phone_e164": new.phone_e164, "phone_number": new.phone_number,
                                  "phone_code": new.phone_code, "list_id": new.list_id, "status": new.status,
                                  "first_name": new.first_name, "last_name": new.last_name, "email": new.email,
                                  "created_at": at, "fields": dict(new.fields)})
                if commit.dnc is not None:
                    self._add_dnc(dnc, commit.dnc, at)
                records.append({**record, "lead_id": lead_id})
                ids.append(lead_id)
            self.leads, self.dnc, self.records = leads, dnc, records
            return ids

    @staticmethod
    def _add_dnc(entries: list[dict[str, Any]], entry: DncEntry, at: str) -> tuple[int, bool]:
        for old in entries:
            if old["phone_e164"] == entry.phone_e164 and old["campaign_id"] == str(entry.campaign_id):
                return old["id"], False
        entries.append({"id": len(entries) + 1, "phone_e164": entry.phone_e164, "phone_number": entry.phone_number,
                        "phone_code": entry.phone_code, "campaign_id": str(entry.campaign_id),
                        "reason": entry.reason, "inserted_at": at})
        return len(entries), True

    def dnc_add(self, entry: DncEntry) -> tuple[int, bool]:
        with self._lock:
            dnc = list(self.dnc)
            result = self._add_dnc(dnc, entry, _now())
            self.dnc = dnc
            return result

    def find_leads(self, phone_e164: str, list_id: str | None = None) -> list[dict[str, Any]]:
        return [lead for lead in reversed(self.leads) if lead["phone_e164"] == phone_e164
                and (list_id is None or lead["list_id"] == str(list_id))]

    def search_leads(self, *, lead_id: str | None = None, phone_e164: str | None = None,
                     list_id: str | None = None, email: str | None = None, offset: int = 0,
                     limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
        found = [lead for lead in reversed(self.leads)
                 if (lead_id is None or lead["id"] == str(lead_id))
                 and (phone_e164 is None or lead["phone_e164"] == phone_e164)
                 and (list_id is None or lead["list_id"] == str(list_id))
                 and (email is None or (lead["email"] or "").casefold() == email.casefold())]
        return len(found), found[offset:offset + limit]

    def lead_by_id(self, lead_id: str) -> dict[str, Any] | None:
        return next((lead for lead in self.leads if lead["id"] == str(lead_id)), None)

    def dnc_contains(self, phone_e164: str, campaign_id: str = "0") -> bool:
        return any(e["phone_e164"] == phone_e164 and e["campaign_id"] == str(campaign_id) for e in self.dnc)

    def dnc_search(self, phone_e164: str | None, campaign_id: str | None,
                   offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        found = [e for e in reversed(self.dnc) if (phone_e164 is None or e["phone_e164"] == phone_e164)
                 and (campaign_id is None or e["campaign_id"] == str(campaign_id))]
        return len(found), found[max(0, offset):max(0, offset) + max(0, limit)]

    def decisions(self, phone_e164: str) -> list[DecisionRecord]:
        return [dict(r) for r in self.records if r.get("phone_e164") == phone_e164]  # copies: callers own them

    def decision_by_idempotency_key(self, key: str) -> DecisionRecord | None:
        return next((dict(r) for r in self.records if r.get("idempotency_key") == key), None)

    def decided_rows(self, workflow: str, source: str) -> set[int]:
        return {r["source_row"] for r in self.records
                if r.get("workflow") == workflow and r.get("source") == source and r.get("source_row") is not None}

    def decided_records(self, workflow: str, source: str) -> Iterator[DecisionRecord]:
        return iter(sorted((r for r in self.records if r.get("workflow") == workflow and r.get("source") == source
                            and r.get("source_row") is not None), key=lambda r: r["source_row"]))

    def search_decisions(self, *, since: str | None = None, until: str | None = None, action: str | None = None,
                         rules_row: str | None = None, phone_e164: str | None = None, list_id: str | None = None,
                         offset: int = 0, limit: int = 50) -> tuple[int, list[DecisionRecord]]:
        def wanted(r: dict[str, Any]) -> bool:
            at = r.get("decided_at") or ""
            return ((since is None or at >= since) and (until is None or at <= until)
                    and (action is None or r.get("action") == action)
                    and (rules_row is None or rules_row in (r.get("rules_row_name"), r.get("decided_by"))
                         or (r.get("rules_row") is not None and str(r["rules_row"]) == rules_row))
                    and (phone_e164 is None or r.get("phone_e164") == phone_e164)
                    and (list_id is None or (r.get("lead") or {}).get("list_id") == list_id))

        found = [{"id": i + 1, **r} for i, r in enumerate(self.records) if wanted(r)][::-1]
        return len(found), found[max(0, offset):max(0, offset) + max(0, limit)]

    def decision_by_id(self, decision_id: int) -> DecisionRecord | None:
        i = int(decision_id) - 1
        return {"id": i + 1, **self.records[i]} if 0 <= i < len(self.records) else None

    def add_config_change(self, change: dict[str, Any]) -> int:
        with self._lock:
            self.changes.append({**change, "id": len(self.changes) + 1,
                                 "applied_at": change.get("applied_at") or _now()})
            return len(self.changes)

    def config_changes(self, workflow: str, limit: int = 50) -> list[dict[str, Any]]:
        return [dict(c) for c in reversed(self.changes) if c["workflow"] == workflow][:max(0, limit)]

    def config_change(self, change_id: int) -> dict[str, Any] | None:
        i = int(change_id) - 1
        return dict(self.changes[i]) if 0 <= i < len(self.changes) else None

    def counts(self) -> dict[str, int]:
        return {"leads": len(self.leads), "dnc": len(self.dnc), "decisions": len(self.records)}

    def close(self) -> None:
        self.closed = True


class MemoryStorePlugin:
    """A plugin that answers ``dupcheck_make_store`` with one :class:`MemoryStore`
    (``self.store``); register it ahead of the built-in SQLite store."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store or MemoryStore()

    @hookimpl
    def dupcheck_make_store(self, settings: dict[str, Any]) -> MemoryStore:
        return self.store
