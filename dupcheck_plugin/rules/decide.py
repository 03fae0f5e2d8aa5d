"""Apply the API Duplicate Check settings to one CRM answer (pure).

The semantics are the README's "Rules table" section; keep them in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..types import CrmAnswer
from .match import matches
from .paths import lookup, split_path

OK_CODE = 200
BAD_LEAD_CODE = 6023  # Convoso: "Required fields are missed"; we add the reason


@dataclass(frozen=True)
class OnError:
    action: str = "create"  # create | reject
    status: str = "NOTCHECKED"
    success: bool = True
    code: int = 6503
    text: str = "Duplicate check unavailable, retry later"


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
            duplicate_code=cfg.get("duplicate_code", 6009),
            duplicate_text=cfg.get("duplicate_text", "The phone number already exists"),
            on_error=OnError(**cfg.get("on_error", {})),
            rules=tuple(Rule.from_config(i, r) for i, r in enumerate(cfg.get("rules", []))),
        )


@dataclass(frozen=True)
class Decision:
    """What to do with one lead, before anything is stored."""

    action: str  # created | duplicate | rejected
    status: str | None
    matched_rule: int | None
    add_to_dnc: bool
    success: bool
    code: int
    text: str
    checked: bool  # the CRM answered and the rules read it
    rule_name: str | None = None
    retryable: bool = False


def first_match(rules: tuple[Rule, ...], answer: CrmAnswer) -> Rule | None:
    for rule in rules:
        if rule.matches(answer):
            return rule
    return None


def decide(settings: Settings, answer: CrmAnswer | None) -> Decision:
    """``answer`` is None when the check is disabled (the CRM was not called)."""
    if not settings.enabled or answer is None:
        return Decision("created", settings.default_status, None, False, True, OK_CODE, "Lead created", checked=False)
    if answer.error == "render":
        return Decision("rejected", None, None, False, False, BAD_LEAD_CODE,
                        f"Invalid lead: {answer.error_detail}", checked=False)
    if answer.error is None:
        rule = first_match(settings.rules, answer)
        if rule is not None:
            return _from_rule(settings, rule)
        if 200 <= (answer.status_code or 0) < 300:
            return Decision("created", settings.default_status, None, False, True, OK_CODE, "Lead created", checked=True)
        error = f"CRM answered HTTP {answer.status_code} and no row names that status"
    else:
        error = f"CRM call failed ({answer.error}): {answer.error_detail or ''}".rstrip(": ")
    return _on_error(settings.on_error, error)


def _from_rule(settings: Settings, rule: Rule) -> Decision:
    if rule.success:
        code, text = OK_CODE, ("Lead created" if rule.create_lead else "Duplicate lead skipped")
    else:
        code = rule.code if rule.code is not None else settings.duplicate_code
        text = rule.text if rule.text is not None else settings.duplicate_text
    return Decision(
        action="created" if rule.create_lead else "duplicate",
        status=(rule.status or settings.default_status) if rule.create_lead else None,
        matched_rule=rule.index,
        add_to_dnc=rule.add_to_dnc,
        success=rule.success,
        code=code,
        text=text,
        checked=True,
        rule_name=rule.name,
    )


def _on_error(policy: OnError, reason: str) -> Decision:
    if policy.action == "reject":
        return Decision("rejected", None, None, False, False, policy.code, f"{policy.text} ({reason})",
                        checked=False, retryable=True)
    code, text = (OK_CODE, "Lead created (duplicate check unavailable)") if policy.success else (policy.code, policy.text)
    return Decision("created", policy.status, None, False, policy.success, code, f"{text} ({reason})" if not policy.success else text,
                    checked=False)


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
