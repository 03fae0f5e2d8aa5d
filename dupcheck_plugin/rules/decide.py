"""Apply the API Duplicate Check settings to one CRM answer (pure).

The semantics are the README's "Rules table" section; keep them in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .. import codes
from ..codes import Code
from ..types import CrmAnswer
from .match import matches
from .paths import lookup, split_path


@dataclass(frozen=True)
class OnError:
    action: str = "create"  # create | reject
    status: str = "NOTCHECKED"
    success: bool = True
    code: int = codes.CHECK_UNAVAILABLE.code
    text: str = codes.CHECK_UNAVAILABLE.text


@dataclass(frozen=True)
class Rule:
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
    def from_config(cls, index: int, row: Mapping[str, Any]) -> "Rule":
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
    rules: tuple[Rule, ...]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "Settings":
        return cls(
            enabled=cfg.get("enabled", True),
            connect=cfg["connect"],
            default_status=cfg.get("default_status", "NEW"),
            duplicate_code=cfg.get("duplicate_code", codes.DUPLICATE.code),
            duplicate_text=cfg.get("duplicate_text", codes.DUPLICATE.text),
            on_error=OnError(**cfg.get("on_error", {})),
            rules=tuple(Rule.from_config(i, r) for i, r in enumerate(cfg.get("rules", []))),
        )


@dataclass(frozen=True, kw_only=True)
class Decision:
    """What to do with one lead, before anything is stored. Build one with
    the named constructors; ``text`` is the answer's text as Convoso (or the
    rules table) writes it, ``detail`` dupcheck's added reason."""

    action: str  # created | duplicate | rejected
    code: int
    text: str
    success: bool
    status: str | None = None
    add_to_dnc: bool = False
    matched_rule: int | None = None  # the index of the rules-table row that decided
    rule_name: str | None = None  # that row's name, or the local check that decided
    checked: bool = False  # the CRM answered and the rules read it
    retryable: bool = False
    detail: str | None = None

    @classmethod
    def created(cls, status: str | None, *, checked: bool, code: Code = codes.OK, success: bool = True,
                detail: str | None = None) -> "Decision":
        """Create the lead with ``status``; no rules-table row decided."""
        return cls(action="created", status=status, success=success, code=code.code, text=code.text,
                   checked=checked, detail=detail)

    @classmethod
    def refused(cls, code: Code, detail: str | None = None, *, retryable: bool = False,
                by: str | None = None) -> "Decision":
        """Refuse the lead before or without the rules (intake, a failed call,
        ``by`` a local check); ``retryable``: the same lead may pass later."""
        return cls(action="rejected", success=False, code=code.code, text=code.text, detail=detail,
                   retryable=retryable, rule_name=by)

    @classmethod
    def local_duplicate(cls, by: str) -> "Decision":
        """Skip the lead: ``by`` (a local check) found the phone."""
        return cls(action="duplicate", success=False, code=codes.DUPLICATE.code, text=codes.DUPLICATE.text,
                   rule_name=by)

    @classmethod
    def from_row(cls, rule: "Rule", *, default_status: str, duplicate: Code) -> "Decision":
        """What a matching rules-table row says."""
        if rule.success:
            code = codes.OK if rule.create_lead else codes.DUPLICATE_SKIPPED
        else:
            code = Code(rule.code if rule.code is not None else duplicate.code,
                        rule.text if rule.text is not None else duplicate.text)
        return cls(action="created" if rule.create_lead else "duplicate",
                   status=(rule.status or default_status) if rule.create_lead else None,
                   matched_rule=rule.index, rule_name=rule.name, add_to_dnc=rule.add_to_dnc,
                   success=rule.success, code=code.code, text=code.text, checked=True)


def first_match(rules: tuple[Rule, ...], answer: CrmAnswer) -> Rule | None:
    for rule in rules:
        if rule.matches(answer):
            return rule
    return None


def decide(settings: Settings, answer: CrmAnswer | None) -> Decision:
    """``answer`` is None when the check is disabled (the CRM was not called)."""
    if not settings.enabled or answer is None:
        return Decision.created(settings.default_status, checked=False)
    if answer.error == "render":
        return Decision.refused(codes.MISSING_FIELDS, f"Invalid lead: {answer.error_detail}")
    if answer.error is None:
        rule = first_match(settings.rules, answer)
        if rule is not None:
            return Decision.from_row(rule, default_status=settings.default_status,
                                     duplicate=Code(settings.duplicate_code, settings.duplicate_text))
        if 200 <= (answer.status_code or 0) < 300:
            return Decision.created(settings.default_status, checked=True)
        error = f"CRM answered HTTP {answer.status_code} and no row names that status"
    else:
        error = f"CRM call failed ({answer.error}): {answer.error_detail or ''}".rstrip(": ")
    return _on_error(settings.on_error, error)


def _on_error(policy: OnError, reason: str) -> Decision:
    code = Code(policy.code, policy.text)
    if policy.action == "reject":
        return Decision.refused(code, reason, retryable=True)
    if policy.success:
        return Decision.created(policy.status, checked=False,
                                code=Code(codes.OK.code, "Lead created (duplicate check unavailable)"), detail=reason)
    return Decision.created(policy.status, checked=False, code=code, success=False, detail=reason)


@dataclass(frozen=True)
class RowTrace:
    """How one row fared against an answer (for ``dupcheck explain``)."""

    index: int
    name: str | None
    status_ok: bool
    found: Any  # the value at the row's key (MISSING when absent)
    matched: bool


def trace(settings: Settings, answer: CrmAnswer) -> list[RowTrace]:
    """Every row evaluated, in order, up to and including the first match."""
    out = []
    for rule in settings.rules:
        if rule.http_status is not None:
            status_ok = answer.status_code in rule.http_status
        else:
            status_ok = answer.status_code is not None and 200 <= answer.status_code < 300
        found = lookup(answer.body, rule.key) if rule.key else None
        matched = answer.error is None and rule.matches(answer)
        out.append(RowTrace(rule.index, rule.name, status_ok, found, matched))
        if matched:
            break
    return out
