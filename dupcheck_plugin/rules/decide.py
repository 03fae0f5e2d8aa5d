"""Apply the API Duplicate Check settings to one CRM answer (pure).

The semantics are the README's "Rules table" section; keep them in step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, Mapping, get_args

from .. import codes
from ..codes import Code
from ..frozen import one_step_init
from ..types import CrmAnswer
from .match import matches
from .paths import MISSING, closest, lookup, split_path


@dataclass(frozen=True)
class OnError:
    action: str = "create"  # create | reject
    status: str = "NOTCHECKED"
    success: bool = True
    code: int = codes.CHECK_UNAVAILABLE.code
    text: str = codes.CHECK_UNAVAILABLE.text


# What decided a lead (the record's ``decided_by``; the README's "Decision records"):
#   intake          refused before anything was asked: bad or missing fields (also those the
#                   CRM request needs), a malformed file row, parameters Convoso refuses
#   check_dup       Convoso's local duplicate check found the phone
#   check_dnc       Convoso's local DNC check found the phone
#   rules_row       a row of the rules table matched the CRM's answer (``rules_row`` says which)
#   default_status  the CRM answered 2xx and no row matched: created with ``default_status``
#   on_error        the CRM call failed or no row reads its answer: the ``on_error`` policy
#   check_off       the duplicate check is disabled (or the workflow has none): not asked
#   node_error      a node of the workflow failed (6500, retryable)
DecidedBy = Literal["intake", "check_dup", "check_dnc", "rules_row", "default_status", "on_error", "check_off",
                    "node_error"]
DECIDED_BY: tuple[str, ...] = get_args(DecidedBy)
LOCAL_CHECKS = ("check_dup", "check_dnc")


@dataclass(frozen=True)
class RulesRow:
    """One row of the rules table; ``index`` counts from 0, as ``rules[N]`` in the config."""

    index: int
    name: str | None
    key: tuple[str, ...] | None
    op: str
    value: Any
    http_status: frozenset[int] | None
    create_lead: bool
    status: str
    add_to_dnc: bool
    success: bool
    code: int | None
    text: str | None

    @classmethod
    def from_config(cls, index: int, row: Mapping[str, Any]) -> "RulesRow":
        hs = row.get("http_status")
        if isinstance(hs, int):
            hs = [hs]
        return cls(
            index=index,
            name=row.get("name"),
            key=split_path(row["key"]) if row.get("key") else None,
            op=row.get("match", "equals"),
            value=row.get("value"),
            http_status=frozenset(hs) if hs else None,
            create_lead=bool(row["create_lead"]),
            status=row.get("status", "") or "",
            add_to_dnc=bool(row["add_to_dnc"]),
            success=bool(row["success"]),
            code=row.get("code"),
            text=row.get("text"),
        )

    def matches(self, answer: CrmAnswer) -> bool:
        if self.http_status is not None:
            if answer.status_code not in self.http_status:
                return False
        elif not (answer.status_code is not None and 200 <= answer.status_code < 300):
            return False  # rows without http_status read 2xx answers only
        if self.key is None:
            return True
        return matches(self.op, lookup(answer.body, self.key), self.value)


@dataclass(frozen=True)
class Settings:
    enabled: bool
    connect: str
    default_status: str
    duplicate_code: int
    duplicate_text: str
    on_error: OnError
    rules: tuple[RulesRow, ...]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "Settings":
        return cls(
            enabled=cfg.get("enabled", True),
            connect=cfg["connect"],
            default_status=cfg.get("default_status", "NEW"),
            duplicate_code=cfg.get("duplicate_code", codes.DUPLICATE.code),
            duplicate_text=cfg.get("duplicate_text", codes.DUPLICATE.text),
            on_error=OnError(**cfg.get("on_error", {})),
            rules=tuple(RulesRow.from_config(i, r) for i, r in enumerate(cfg.get("rules", []))),
        )

    # Decisions are frozen: the ones a rules table can give on an answer are made once, not per lead
    @cached_property
    def row_decisions(self) -> tuple["Decision", ...]:
        """What each row of ``rules`` says, in order."""
        duplicate = Code(self.duplicate_code, self.duplicate_text)
        return tuple(Decision.from_row(row, default_status=self.default_status, duplicate=duplicate)
                     for row in self.rules)

    @cached_property
    def default_decision(self) -> "Decision":
        """A 2xx answer no row matched: created with ``default_status``."""
        return Decision.created(self.default_status, by="default_status", checked=True)


@one_step_init
@dataclass(frozen=True, kw_only=True)
class Decision:
    """What to do with one lead, before anything is stored. Build one with
    the named constructors; ``text`` is the answer's text as Convoso (or the
    rules table) writes it, ``detail`` dupcheck's added reason."""

    action: str  # created | duplicate | rejected
    code: int
    text: str
    success: bool
    decided_by: DecidedBy
    status: str | None = None
    add_to_dnc: bool = False
    rules_row: int | None = None  # the index of the rules-table row that decided (from 0)
    rules_row_name: str | None = None  # that row's name
    checked: bool = False  # the CRM answered and the rules read it
    retryable: bool = False
    detail: str | None = None

    @property
    def spends_key(self) -> bool:
        """Whether this decision is what an ``Idempotency-Key`` answers from now on. A
        retryable refusal ("retry later") created nothing: the caller's retry with the
        same key is decided again, not answered this for ever."""
        return not (self.retryable and self.action == "rejected")

    @classmethod
    def created(cls, status: str | None, *, by: DecidedBy, checked: bool, code: Code = codes.OK,
                success: bool = True, detail: str | None = None) -> "Decision":
        """Create the lead with ``status``; no rules-table row decided."""
        return cls(action="created", status=status, success=success, code=code.code, text=code.text,
                   checked=checked, detail=detail, decided_by=by)

    @classmethod
    def refused(cls, code: Code, detail: str | None = None, *, by: DecidedBy,
                retryable: bool = False) -> "Decision":
        """Refuse the lead before or without the rules (``by`` intake, a
        local check, on_error, a failed node); ``retryable``: the same lead
        may pass later."""
        return cls(action="rejected", success=False, code=code.code, text=code.text, detail=detail,
                   retryable=retryable, decided_by=by)

    @classmethod
    def local_duplicate(cls, by: DecidedBy) -> "Decision":
        """Skip the lead: ``by`` (a local check) found the phone."""
        return cls(action="duplicate", success=False, code=codes.DUPLICATE.code, text=codes.DUPLICATE.text,
                   decided_by=by)

    @classmethod
    def from_row(cls, row: RulesRow, *, default_status: str, duplicate: Code) -> "Decision":
        """What a matching rules-table row says."""
        if row.success:
            code = codes.OK if row.create_lead else codes.DUPLICATE_SKIPPED
        else:
            code = Code(row.code if row.code is not None else duplicate.code,
                        row.text if row.text is not None else duplicate.text)
        return cls(action="created" if row.create_lead else "duplicate",
                   status=(row.status or default_status) if row.create_lead else None,
                   rules_row=row.index, rules_row_name=row.name, decided_by="rules_row", add_to_dnc=row.add_to_dnc,
                   success=row.success, code=code.code, text=code.text, checked=True)


def decide(settings: Settings, answer: CrmAnswer | None) -> Decision:
    """``answer`` is None when the check is disabled (the CRM was not called)."""
    if not settings.enabled or answer is None:
        return Decision.created(settings.default_status, by="check_off", checked=False)
    if answer.error == "render":  # the lead lacks what the request needs
        return Decision.refused(codes.MISSING_FIELDS, f"Invalid lead: {answer.error_detail}", by="intake")
    if answer.error is None:
        for row, decision in zip(settings.rules, settings.row_decisions):
            if row.matches(answer):
                return decision
        if 200 <= (answer.status_code or 0) < 300:
            return settings.default_decision
        error = f"CRM answered HTTP {answer.status_code} and no row names that status"
    else:
        error = f"CRM call failed ({answer.error}): {answer.error_detail or ''}".rstrip(": ")
    return _on_error(settings.on_error, error)


def _on_error(policy: OnError, reason: str) -> Decision:
    code = Code(policy.code, policy.text)
    if policy.action == "reject":
        return Decision.refused(code, reason, by="on_error", retryable=True)
    if policy.success:
        return Decision.created(policy.status, by="on_error", checked=False,
                                code=Code(codes.OK.code, "Lead created (duplicate check unavailable)"), detail=reason)
    return Decision.created(policy.status, by="on_error", checked=False, code=code, success=False, detail=reason)


@dataclass(frozen=True)
class RowTrace:
    """How one row fared against an answer (for ``dupcheck explain``)."""

    index: int
    name: str | None
    status_ok: bool
    found: Any  # the value at the row's key (MISSING when absent)
    matched: bool
    meant: tuple[str, ...] | None = None  # the key is absent: the path in the answer it likely means (a typo)
    hint: str | None = None  # the value is there and did not match: what its type asks of the operator

    def shown(self) -> str:
        """The value found, as ``explain`` and the settings console show it."""
        if self.found is MISSING:
            return f"(missing; did you mean {'.'.join(self.meant)}?)" if self.meant else "(missing)"
        text = json.dumps(self.found, ensure_ascii=False)
        return f"{text} ({self.hint})" if self.hint else text


def type_hint(op: str, found: Any) -> str | None:
    """Why a value of this type matches no row with ``op`` whatever the row's value: a list
    or an object equals nothing, and orders against nothing (the README's "lists equal nothing")."""
    if op in ("exists", "missing", "contains"):
        return None
    if isinstance(found, list):
        return 'a list: match = "contains" tests its items, or name one item, as key.0'
    if isinstance(found, dict):
        return "an object: name one of its keys in the row's key"
    return None


def trace(settings: Settings, answer: CrmAnswer) -> list[RowTrace]:
    """Every row evaluated, in order, up to and including the first match."""
    out = []
    for row in settings.rules:
        if row.http_status is not None:
            status_ok = answer.status_code in row.http_status
        else:
            status_ok = answer.status_code is not None and 200 <= answer.status_code < 300
        found = lookup(answer.body, row.key) if row.key else None
        matched = answer.error is None and row.matches(answer)
        meant = closest(answer.body, row.key) if found is MISSING else None
        hint = type_hint(row.op, found) if row.key and not matched and found is not MISSING else None
        out.append(RowTrace(row.index, row.name, status_ok, found, matched, meant, hint))
        if matched:
            break
    return out
