"""The simulator's contact book: people loaded from CSV or JSON, indexed for lookups.

CRM users type phone numbers any way they like, so every phone property is
indexed under its raw text, its digits, its E.164 form and its national
digits; a search by any of those forms finds the contact.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..phone import PhoneError, national_digits, to_e164

# properties holding phone numbers: searched in every normal form
PHONE_PROPERTIES = ("phone", "mobilephone")
_TRUE = {"true", "1", "yes", "y", "on"}


def phone_forms(value: str | None) -> frozenset[str]:
    """Every form a phone number may be searched or stored as."""
    raw = str(value or "").strip()
    if not raw:
        return frozenset()
    forms = {raw, "".join(ch for ch in raw if ch.isdigit())}
    try:
        forms.add(to_e164(raw))
        forms.add(national_digits(raw))
    except PhoneError:
        pass  # messy CRM data: still findable by its raw text
    forms.discard("")
    return frozenset(forms)


def truthy(value: Any) -> bool:
    return str(value or "").strip().lower() in _TRUE


@dataclass(frozen=True)
class Contact:
    id: str
    phone: str = ""
    email: str = ""
    properties: Mapping[str, str] = field(default_factory=dict)  # every other column, non-empty only

    def get(self, name: str) -> str:
        """A property's value as stored ("" when unset); id/phone/email included."""
        if name == "phone":
            return self.phone
        if name == "email":
            return self.email
        if name in ("id", "hs_object_id"):
            return self.id
        return self.properties.get(name, "")

    @property
    def dnc(self) -> bool:
        return truthy(self.properties.get("dnc"))

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "phone": self.phone, "email": self.email, **self.properties}


class ContactBook:
    """Contacts in file order plus indexes; ``find`` and ``by_property`` answer in that order."""

    def __init__(self, contacts: Iterable[Contact] = ()):
        self.contacts: list[Contact] = list(contacts)
        self._phone_keys: list[dict[str, frozenset[str]]] = []
        # property -> search key -> positions in self.contacts
        self._index: dict[str, dict[str, list[int]]] = {}
        for pos, c in enumerate(self.contacts):
            keys = {p: phone_forms(c.get(p)) for p in PHONE_PROPERTIES}
            self._phone_keys.append(keys)
            for p, forms in keys.items():
                for form in forms:
                    self._index.setdefault(p, {}).setdefault(form, []).append(pos)
            for name, value in (("email", c.email), ("id", c.id), *c.properties.items()):
                if name not in PHONE_PROPERTIES and value:
                    self._index.setdefault(name, {}).setdefault(value.casefold(), []).append(pos)

    def __len__(self) -> int:
        return len(self.contacts)

    def __iter__(self):
        return iter(self.contacts)

    # -- lookups -----------------------------------------------------------
    def positions(self, name: str, value: Any) -> list[int]:
        """Positions of contacts whose property ``name`` equals ``value``
        (phones in any normal form, other text case-insensitively)."""
        if name == "hs_object_id":
            name = "id"
        index = self._index.get(name)
        if not index or value is None or str(value).strip() == "":
            return []
        if name in PHONE_PROPERTIES:
            hits: set[int] = set()
            for form in phone_forms(str(value)):
                hits.update(index.get(form, ()))
            return sorted(hits)
        return list(index.get(str(value).strip().casefold(), ()))

    def by_property(self, name: str, value: Any) -> list[Contact]:
        return [self.contacts[i] for i in self.positions(name, value)]

    def find(self, phone: str | None = None, email: str | Iterable[str] | None = None) -> list[Contact]:
        """Contacts known by this phone (phone or mobilephone) or this email (or any of these emails)."""
        hits: set[int] = set()
        if phone:
            for p in PHONE_PROPERTIES:
                hits.update(self.positions(p, phone))
        for one in [email] if isinstance(email, str) else (email or ()):
            hits.update(self.positions("email", one))
        return [self.contacts[i] for i in sorted(hits)]

    def phone_matches(self, pos: int, name: str, value: Any) -> bool:
        """Whether contact ``pos``'s phone property ``name`` equals ``value`` in any form."""
        return bool(self._phone_keys[pos].get(name, frozenset()) & phone_forms(str(value)))

    # -- loading -----------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "ContactBook":
        """Read a CSV (header row) or JSON (a list, or ``{"contacts": [...]}``) file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{p}: cannot read contacts: {exc.strerror if isinstance(exc, OSError) else exc}") from None
        looks_json = p.suffix.lower() == ".json" or (p.suffix.lower() != ".csv" and text.lstrip()[:1] in ("[", "{"))
        rows = _json_rows(p, text) if looks_json else _csv_rows(p, text)
        return cls(_contacts(p, rows))


def _csv_rows(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValueError(f"{path}: empty file: expected a header row (id,phone,email,...)") from None
    except csv.Error as exc:
        raise ValueError(f"{path}:1: bad CSV: {exc}") from None
    if not any(header) or len(set(header)) != len(header) or "" in header:
        raise ValueError(f"{path}:1: bad header row {header!r}: names must be non-empty and unique")
    rows = []
    try:
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not any(cell.strip() for cell in row):
                continue  # blank lines are harmless
            if len(row) != len(header):
                raise ValueError(f"{where}: {len(row)} fields, the header has {len(header)}")
            rows.append((where, dict(zip(header, row))))
    except csv.Error as exc:
        raise ValueError(f"{path}:{reader.line_num}: bad CSV: {exc}") from None
    return rows


def _json_rows(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if isinstance(doc, dict) and isinstance(doc.get("contacts"), list):
        doc = doc["contacts"]
    if not isinstance(doc, list):
        raise ValueError(f'{path}: expected a list of contacts or {{"contacts": [...]}}')
    rows = []
    for i, item in enumerate(doc):
        where = f"{path}: contacts[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected an object, got {type(item).__name__}")
        rows.append((where, item))
    return rows


def _text(where: str, key: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    raise ValueError(f"{where}: {key!r} must be text, a number or a boolean, not {type(value).__name__}")


def _contacts(path: Path, rows: list[tuple[str, dict[str, Any]]]) -> list[Contact]:
    seen: dict[str, str] = {}
    parsed = []
    for where, row in rows:
        values = {str(k).strip(): _text(where, k, v) for k, v in row.items()}
        cid = values.pop("id", "")
        if cid:
            if cid in seen:
                raise ValueError(f"{where}: duplicate id {cid!r} (first at {seen[cid]})")
            seen[cid] = where
        phone, email = values.pop("phone", ""), values.pop("email", "")
        parsed.append((cid, phone, email, {k: v for k, v in values.items() if v}))
    next_id = 1
    out = []
    for cid, phone, email, props in parsed:
        if not cid:  # generated ids skip the ones the file already uses
            while str(next_id) in seen:
                next_id += 1
            cid = str(next_id)
            seen[cid] = "generated"
        out.append(Contact(cid, phone, email, props))
    return out
