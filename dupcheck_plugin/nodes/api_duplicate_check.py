"""The ``api_duplicate_check`` node: apply the rules table to the CRM's answer."""

from __future__ import annotations

import math
from typing import Any, Mapping

from ..rules.decide import Settings, decide
from ..rules.match import RegexError, compile_regex
from ..types import CRM_ANSWER, BuildContext, CheckNode, CheckOutcome, CrmAnswer, LeadContext, WorkflowView


class ApiDuplicateCheck(CheckNode):
    """Applies the rules table to the answer of node ``settings.connect``."""

    def __init__(self, node_id: str, config: Mapping[str, Any], build: BuildContext):
        self.id = node_id
        self.settings = Settings.from_config(config)

    async def run(self, lead: LeadContext) -> CheckOutcome:
        if not self.settings.enabled:
            return CheckOutcome(decide(self.settings, None), None)  # the CRM is not called
        answer = await lead.output(self.settings.connect)
        if not isinstance(answer, CrmAnswer):  # a plugin's node: its bug named, not an AttributeError in decide
            raise not_an_answer(self.settings.connect, answer)
        return CheckOutcome(decide(self.settings, answer), answer)


def not_an_answer(node_id: str, answer: Any) -> TypeError:
    return TypeError(f"node {node_id!r} returned a {type(answer).__name__}, not the CrmAnswer its node type "
                     f"declares (output = CRM_ANSWER)")


def inputs(config: Mapping[str, Any]) -> dict[str, str]:
    # declared even when disabled: the connect node is then not a sink, so it is never run
    return {"connect": config["connect"]}


def check(config: Mapping[str, Any], view: WorkflowView) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    connect = config["connect"]
    kind = view.node_types.get(connect)
    # a missing node is reported by the engine's input check, an unknown type by the type check
    if kind is not None and kind in view.outputs and view.outputs[kind] != CRM_ANSWER:
        out.append((("connect",), f"node {connect!r} is a {kind}, which gives no CRM answer: use a convoso_connect node"))
    for i, row in enumerate(config.get("rules", [])):
        if row.get("create_lead") and "status" in row and not isinstance(row["status"], str):
            out.append((("rules", i, "status"), "the status of a created lead must be a string (\"\" for the default status)"))
        value = row.get("value")
        if any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, list) else [value])):
            out.append((("rules", i, "value"), "nan and inf never match: a row compares numbers, and they are "
                                               "none (README, How a row matches)"))
        if row.get("match") == "regex":
            try:
                compile_regex(str(row.get("value", "")))
            except RegexError as exc:
                out.append((("rules", i, "value"), f"not a regular expression RE2 can run ({exc}){_re2_hint(str(exc))}"))
    return out


def _re2_hint(reason: str) -> str:
    """What to do about a pattern RE2 refuses, where its reason is a feature RE2 lacks (not
    for a typo: "missing ): (Old" needs its parenthesis, not this)."""
    if reason.startswith("invalid perl operator: (?=") or reason.startswith("invalid perl operator: (?!") \
            or reason.startswith("invalid perl operator: (?<"):
        return ": RE2 has no lookaround (match what you want, or use two rows)"
    if reason.startswith("invalid escape sequence: \\") and reason[-1:].isdigit():
        return ": RE2 has no backreferences"
    return ""
