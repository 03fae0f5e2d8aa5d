"""The adaptor's field mapping: lead fields -> the CRM's names (pure).

As in Convoso: a row maps one lead field to one or more CRM names
("mapped to", comma-separated), with a default used when the lead's value
is empty and a date format for date fields. Only mapped fields reach the
templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone
from typing import Any, Mapping
from ..errors import DupcheckError

# Convoso/PHP-style date tokens -> strftime
_DATE_TOKENS = {"Y": "%Y", "y": "%y", "m": "%m", "d": "%d", "H": "%H", "i": "%M", "s": "%S"}
_INPUT_DATE_FORMATS = ("%m/%d/%Y", "%m/%d/%Y %H:%M:%S", "%Y%m%d", "%Y-%m-%d %H:%M:%S")


class FieldError(DupcheckError, ValueError):
    """A lead value the mapping cannot turn into a CRM value."""


def php_to_strftime(fmt: str) -> str:
    return "".join(_DATE_TOKENS.get(ch, ch.replace("%", "%%")) for ch in fmt)


def parse_date(value: str) -> datetime:
    """Accept ISO 8601, m/d/Y, Ymd, and epoch seconds."""
    v = value.strip()
    if v.isdigit() and len(v) != 8:
        return datetime.fromtimestamp(int(v), tz=timezone.utc)
    try:
        return datetime.fromisoformat(v)
    except ValueError:
        pass
    for fmt in _INPUT_DATE_FORMATS:
        try:
            return datetime.strptime(v, fmt)
        except ValueError:
            continue
    raise FieldError(f"{value!r} is not a date (use YYYY-MM-DD, MM/DD/YYYY, YYYYMMDD or epoch seconds)")


def format_date(value: str, fmt: str) -> str:
    parsed = parse_date(value)
    if fmt == "epoch":
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return str(int(parsed.timestamp()))
    return parsed.strftime(php_to_strftime(fmt))


@dataclass(frozen=True)
class FieldRule:
    lead_field: str
    names: tuple[str, ...]
    default: str = ""
    date_format: str | None = None
    required: bool = False

    def value_for(self, lead: Mapping[str, Any]) -> str:
        raw = lead.get(self.lead_field)
        value = "" if raw is None else str(raw)
        if not value.strip():
            if self.required and not self.default:
                raise FieldError(f"lead field {self.lead_field!r} is required (mapped to {', '.join(self.names)}) and is empty")
            return self.default
        if self.date_format:
            return format_date(value, self.date_format)
        return value


IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FieldMapping:
    rules: tuple[FieldRule, ...]

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> "FieldMapping":
        rules = []
        for lead_field, spec in table.items():
            if isinstance(spec, str):
                spec = {"mapped_to": spec}
            names = tuple(n.strip() for n in spec["mapped_to"].split(",") if n.strip())
            rules.append(FieldRule(
                lead_field=lead_field,
                names=names,
                default=str(spec.get("default", "")),
                date_format=spec.get("date_format"),
                required=bool(spec.get("required", False)),
            ))
        return cls(tuple(rules))

    @property
    def names(self) -> set[str]:
        return {n for r in self.rules for n in r.names}

    def template_vars(self, lead: Mapping[str, Any]) -> dict[str, Any]:
        """The template context for one lead: every mapped CRM name, plus
        ``fields`` holding them all (for names that are not identifiers)."""
        fields: dict[str, str] = {}
        out: dict[str, Any] = {}
        for rule, lead_field, names, identifiers in self._plan:
            raw = lead.get(lead_field)
            # text that does not start with a space, no date to format: as it is (what value_for
            # returns for it, without its call: once per mapped field per lead)
            if type(raw) is str and raw and not raw[0].isspace() and not rule.date_format:
                value = raw
            else:
                value = rule.value_for(lead)
            for name in names:
                fields[name] = value
            for name in identifiers:
                out[name] = value
        out["fields"] = fields
        return out

    @cached_property
    def _plan(self) -> tuple[tuple[FieldRule, str, tuple[str, ...], tuple[str, ...]], ...]:
        """(rule, its lead field, its names, those a template can use bare) per rule."""
        identifiers = self._identifiers
        return tuple((rule, rule.lead_field, rule.names, tuple(n for n in rule.names if n in identifiers))
                     for rule in self.rules)

    @cached_property
    def _identifiers(self) -> frozenset[str]:
        """The mapped names a template can use bare (the rest only as ``fields['name']``)."""
        return frozenset(n for n in self.names if IDENTIFIER.match(n))
