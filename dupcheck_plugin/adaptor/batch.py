"""Many leads in one CRM request, and its answer split back per lead (pure).

An adaptor's ``[batch]`` table declares the batched request's ``query``
and/or ``body`` as data, like ``[request]``, with three constructs for
"one element per lead" (templates stay leaves: nothing builds JSON text):

- in a list, ``{ "$each" = T }`` becomes one element per lead, T's string
  leaves rendered with that lead's variables (a list T adds all its
  elements); ``"$when" = "{{ email }}"`` leaves out a lead for which it
  renders empty; repeated values are sent once.
- ``{ "$join" = ", ", "$each" = "'{{ phone | soql }}'" }`` is a string: the
  leads' renderings joined (empty ones left out), wrapped in ``$prefix`` and
  ``$suffix`` unless there are none. ``{ "$concat" = [...] }`` joins strings
  and joins into one string (a SOQL query, a Zoho criteria).
- an object with ``"$omit_if_empty" = true`` is left out when a ``$each``
  list inside it came out empty (no lead has an email: no email filter).

The answer is split by ``[[batch.match]]``: a returned record belongs to a
lead when one of its ``record`` fields, compared like the CRM compares
(``phone``: as E.164; ``text``: trimmed, case-insensitive), equals one of the
lead's ``lead`` values. Each lead then gets the answer its single call would
have had: the batch answer with ``records`` holding only that lead's records
(at most ``limit``), the ``set`` keys filled (``$count``: records kept,
``$total``: records found, ``$more``: whether there were more than
``limit``), or ``empty_status`` with no body when it has none (Zoho's 204).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from jinja2 import TemplateSyntaxError, meta

from ..errors import DupcheckError
from ..phone import PhoneError, to_e164
from .sandbox import budget_of, bounded_join, instrument
from ..rules.paths import MISSING, lookup, split_path

EACH, WHEN, JOIN, CONCAT, PREFIX, SUFFIX, OMIT = "$each", "$when", "$join", "$concat", "$prefix", "$suffix", "$omit_if_empty"
COMPARISONS = ("phone", "text")
_DROP = object()


class BatchError(DupcheckError, ValueError):
    """A lead could not be rendered into the batch (it is then asked alone)."""


@dataclass(frozen=True)
class Match:
    record: tuple[tuple[str, ...], ...]  # paths into one returned record
    lead: tuple[Any, ...]  # compiled templates: the lead's values
    compare: str  # phone | text


@dataclass
class BatchSpec:
    max_leads: int
    max_url_length: int | None
    max_records: int | None  # an answer holding this many records may have been cut short
    records: tuple[str, ...]
    limit: int | None
    empty_status: int | None
    set: dict[tuple[str, ...], Any]
    match: tuple[Match, ...]
    query: dict[str, Any] | None  # compiled: the query keys it replaces
    body: Any  # compiled: the whole body (None: the single request's body)
    env: Any = field(repr=False, default=None)

    # -- rendering --------------------------------------------------------------

    def render(self, leads: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any] | None, Any]:
        """(query keys, body) for these leads' template variables; raises BatchError."""
        try:
            query = {k: _expand(v, leads) for k, v in self.query.items()} if self.query is not None else None
            body = _expand(self.body, leads) if self.body is not None else None
        except Exception as exc:  # noqa: BLE001 - a filter refusing a value, the render budget: ask alone
            raise BatchError(f"{type(exc).__name__}: {exc}") from None
        return query, (None if body is _DROP else body)

    # -- splitting --------------------------------------------------------------

    def lead_keys(self, variables: Mapping[str, Any]) -> list[set[str]]:
        """Per match: the lead's values, normalised like the CRM compares them."""
        code = str(variables.get("phone_code") or "1")
        out = []
        for m in self.match:
            values = set()
            for tpl in m.lead:
                norm = _normalise(tpl.render(variables), m.compare, code)
                if norm:
                    values.add(norm)
            out.append(values)
        return out

    def split(self, status: int, body: Any, leads: Sequence[Mapping[str, Any]]) -> list[tuple[int, Any]] | None:
        """Each lead's (status, body), as its single call would have answered; None when
        the answer may have been cut short (ask again in smaller batches)."""
        if not 200 <= status < 300:
            return [(status, body)] * len(leads)  # an error answer is every lead's answer
        found = [] if body is None else lookup(body, self.records)
        if found is MISSING or found is None:
            found = []
        if not isinstance(found, list):
            return [(status, body)] * len(leads)  # not an answer of the declared shape: rules will see it as is
        if self.max_records and len(found) >= self.max_records:
            return None
        out = []
        for variables in leads:
            keys = self.lead_keys(variables)
            code = str(variables.get("phone_code") or "1")
            mine = [r for r in found if self._belongs(r, keys, code)]
            out.append(self._answer(status, body, mine))
        return out

    def _belongs(self, record: Any, keys: list[set[str]], code: str) -> bool:
        for m, wanted in zip(self.match, keys):
            if not wanted:
                continue
            for path in m.record:
                value = lookup(record, path)
                for v in value if isinstance(value, list) else [value]:
                    if v is not MISSING and v is not None and _normalise(str(v), m.compare, code) in wanted:
                        return True
        return False

    def _answer(self, status: int, body: Any, mine: list) -> tuple[int, Any]:
        if not mine and self.empty_status is not None:
            return self.empty_status, None
        kept = mine[:self.limit] if self.limit is not None else mine
        filled = {"$count": len(kept), "$total": len(mine), "$more": len(mine) > len(kept)}
        out = _with(body if isinstance(body, dict) else {}, self.records, kept)
        for path, value in self.set.items():
            out = _with(out, path, filled.get(value, value) if isinstance(value, str) else value)
        return status, out


def _with(data: dict, path: tuple[str, ...], value: Any) -> dict:
    """A copy of ``data`` with ``path`` set (dicts on the way copied, never mutated)."""
    out = dict(data)
    if len(path) == 1:
        out[path[0]] = value
    else:
        inner = out.get(path[0])
        out[path[0]] = _with(inner if isinstance(inner, dict) else {}, path[1:], value)
    return out


class _Leaf:
    """One template leaf, rendered within the sandbox's render budget."""

    def __init__(self, env: Any, source: str):
        self.template = env.from_string(instrument(env.parse(source)))

    def render(self, variables: Mapping[str, Any]) -> str:
        ctx = self.template.new_context(dict(variables))
        return bounded_join(self.template.root_render_func(ctx), budget_of(ctx))


def _normalise(value: str, compare: str, code: str) -> str:
    value = value.strip()
    if not value:
        return ""
    if compare == "phone":
        try:
            return to_e164(value, code)
        except (PhoneError, ValueError):
            return ""
    return value.casefold()


# -- expansion ----------------------------------------------------------------------

def _per_lead(tpl: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(tpl, dict):
        return {k: _per_lead(v, variables) for k, v in tpl.items()}
    if isinstance(tpl, list):
        return [_per_lead(v, variables) for v in tpl]
    if hasattr(tpl, "render"):
        return tpl.render(variables)
    return tpl


def _wanted(node: dict, variables: Mapping[str, Any]) -> bool:
    return WHEN not in node or bool(node[WHEN].render(variables).strip())


def _expand(node: Any, leads: Sequence[Mapping[str, Any]], empties: list | None = None) -> Any:
    if isinstance(node, dict):
        if JOIN in node:
            pieces: list[str] = []
            for variables in leads:
                piece = node[EACH].render(variables) if _wanted(node, variables) else ""
                if piece and piece not in pieces:
                    pieces.append(piece)
            if not pieces:
                return ""
            return node.get(PREFIX, "") + node[JOIN].join(pieces) + node.get(SUFFIX, "")
        if CONCAT in node:
            return "".join(str(_expand(part, leads, empties)) for part in node[CONCAT])
        mine = [] if node.get(OMIT) else empties
        out = {}
        for k, v in node.items():
            if k == OMIT:
                continue
            value = _expand(v, leads, mine)
            if value is not _DROP:
                out[k] = value
        if node.get(OMIT) and mine:
            return _DROP
        return out
    if isinstance(node, list):
        items: list[Any] = []
        for element in node:
            if isinstance(element, dict) and EACH in element and JOIN not in element:
                produced = []
                for variables in leads:
                    if not _wanted(element, variables):
                        continue
                    value = _per_lead(element[EACH], variables)
                    for v in value if isinstance(element[EACH], list) else [value]:
                        if not (isinstance(v, str) and v in produced):
                            produced.append(v)
                if not produced and empties is not None:
                    empties.append(1)
                items += produced
            else:
                value = _expand(element, leads, empties)
                if value is not _DROP:
                    items.append(value)
        return items
    if hasattr(node, "render"):
        return node.render({})
    return node


# -- compiling ------------------------------------------------------------------------

def compile_batch(doc: Mapping[str, Any], env: Any, allowed_vars: set[str],
                  lead_query_keys: set[str]) -> tuple[BatchSpec | None, list[tuple[tuple, str, str]]]:
    """The ``[batch]`` table compiled; problems as (path, message, code)."""
    problems: list[tuple[tuple, str, str]] = []

    def template(source: str, path: tuple, per_lead: bool) -> Any:
        try:
            ast = env.parse(source)
        except TemplateSyntaxError as exc:
            problems.append((path, f"Jinja syntax error at line {exc.lineno}: {exc.message}", "jinja_syntax"))
            return None
        used = meta.find_undeclared_variables(ast)
        if not per_lead and used:
            problems.append((path, f"uses {', '.join(sorted(used))} outside a $each: one request serves many leads "
                                   "(put lead values under $each or $join)", "batch_lead_value"))
        for var in sorted(used - allowed_vars - {"fields"}) if per_lead else ():
            problems.append((path, f"template variable {var!r} is not provided: map a lead field to it in [fields]",
                             "undeclared_variable"))
        return _Leaf(env, source)

    def walk(node: Any, path: tuple, per_lead: bool) -> Any:
        if isinstance(node, str):
            return template(node, path, per_lead)
        if isinstance(node, dict):
            if not per_lead and (EACH in node):
                if JOIN in node and not isinstance(node[EACH], str):
                    problems.append((path + (EACH,), "a $join's $each is one string template per lead", "batch_shape"))
                out = {k: (v if k in (JOIN, PREFIX, SUFFIX) else walk(v, path + (k,), True)) for k, v in node.items()}
                if JOIN not in node and path and not isinstance(path[-1], int):
                    problems.append((path, "$each stands in a list (one element per lead); use $join for a string",
                                     "batch_shape"))
                return out
            return {k: (v if k == OMIT else walk(v, path + (k,), per_lead)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path + (i,), per_lead) for i, v in enumerate(node)]
        return node

    query = walk(dict(doc["query"]), ("batch", "query"), False) if "query" in doc else None
    body = walk(doc["body"], ("batch", "body"), False) if "body" in doc else None
    if query is None and body is None:
        problems.append((("batch",), "a batch needs a query or a body that asks about many leads", "batch_shape"))
    for key in sorted(lead_query_keys - set(doc.get("query", {}))):
        problems.append((("batch", "query"), f"[request.query] {key!r} depends on the lead: [batch.query] must set it",
                         "batch_lead_value"))
    match = []
    for i, m in enumerate(doc.get("match", [])):
        leads = m["lead"] if isinstance(m["lead"], list) else [m["lead"]]
        records = m["record"] if isinstance(m["record"], list) else [m["record"]]
        match.append(Match(tuple(split_path(r) for r in records),
                           tuple(template(s, ("batch", "match", i, "lead"), True) for s in leads),
                           m.get("compare", "text")))
    if problems:
        return None, problems
    return BatchSpec(
        max_leads=int(doc.get("max_leads", 10)),
        max_url_length=doc.get("max_url_length"),
        max_records=doc.get("max_records"),
        records=split_path(doc["records"]),
        limit=doc.get("limit"),
        empty_status=doc.get("empty_status"),
        set={split_path(k): v for k, v in doc.get("set", {}).items()},
        match=tuple(match),
        query=query,
        body=body,
        env=env,
    ), []
