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
from functools import cached_property
from typing import Any, Callable, Iterator, Mapping, Sequence

from jinja2 import TemplateError, TemplateSyntaxError, meta

from ..config.suggest import did_you_mean
from ..errors import DupcheckError
from ..phone import PhoneError, to_e164
from .render import _sandbox_problem, plain_function, plain_texts  # the request templates' rules hold for batch leaves too
from .sandbox import budget_of, bounded_join, instrument
from ..rules.paths import MISSING, lookup, split_path

EACH, WHEN, JOIN, CONCAT, PREFIX, SUFFIX, OMIT = "$each", "$when", "$join", "$concat", "$prefix", "$suffix", "$omit_if_empty"
COMPARISONS = ("phone", "text")
SET_FILLS = ("$count", "$total", "$more")  # what [batch] set fills in per lead (any other value is set as written)
_DROP = object()
_SKIP = object()  # a lead left out of a $each by its $when


class BatchError(DupcheckError, ValueError):
    """A lead could not be rendered into the batch (it is then asked alone)."""


class BatchShapeError(DupcheckError, ValueError):
    """A 2xx batch answer that cannot be split: no list where ``[batch] records`` says the
    records are (a mistyped path, another shape), or a record no lead takes by ``match``
    (a mistyped record field, a CRM comparing more loosely). Its leads are asked alone."""


@dataclass(frozen=True)
class Match:
    record: tuple[tuple[str, ...], ...]  # paths into one returned record
    lead: tuple[Any, ...]  # compiled templates: the lead's values
    compare: str  # phone | text


class _Leaf:
    """One template leaf of the [batch] table: a block of the spec's combined template
    (identical sources share one leaf: a lead renders it once)."""

    __slots__ = ("source", "block", "plain")

    def __init__(self, source: str):
        self.source = source
        self.block: Any = None  # bound once the combined template is compiled
        self.plain: Any = None  # Jinja's output without Jinja, for the plain shapes (render.plain_function)


@dataclass(frozen=True)
class _Each:
    """A ``$each``: one rendering of ``template`` per lead (``$when`` non-empty); joined
    into one string with a ``$join``, else the elements of the list it stands in."""

    index: int  # its slot in a BatchLead's renderings
    template: Any  # compiled: a leaf, or a list / table of them
    when: Any  # compiled $when, or None
    join: Any = None  # the separator; None: list elements
    prefix: Any = ""
    suffix: Any = ""


class _Renderer:
    """Leaves rendered with one context: one render budget, each leaf at most once."""

    __slots__ = ("combined", "variables", "ctx", "done")

    def __init__(self, combined: Any, variables: Mapping[str, Any]):
        self.combined = combined
        self.variables = variables
        self.ctx: Any = None  # made for the first leaf Jinja renders
        self.done: dict[_Leaf, str] = {}

    def __call__(self, leaf: Any) -> str:
        text = self.done.get(leaf)
        if text is None:
            if leaf.plain is not None:
                try:
                    text = leaf.plain(self.variables)
                except Exception:  # noqa: BLE001 - not sure of this lead: Jinja renders it and says why
                    text = None
            if text is None:
                if self.ctx is None:
                    self.ctx = self.combined.new_context(dict(self.variables))
                text = bounded_join(leaf.block(self.ctx), budget_of(self.ctx))
            self.done[leaf] = text
        return text


class BatchLead:
    """One lead as the batch sees it, rendered once (however often it is asked again in smaller
    batches): what each ``$each`` holds for it, and its match keys normalised like the CRM compares."""

    __slots__ = ("code", "each", "keys", "error")

    def __init__(self, code: str, each: list, keys: list[set[str]], error: str | None = None):
        self.code = code
        self.each = each
        self.keys = keys
        self.error = error  # why it cannot be rendered into a batch (then it is asked alone)


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
    eaches: tuple[_Each, ...] = ()  # every per-lead $each, by index
    combined: Any = field(repr=False, default=None)  # every leaf, one block each
    plain: Any = field(repr=False, default=None)  # variables -> the texts of plain_leaves, in one call
    plain_leaves: tuple[_Leaf, ...] = ()

    # -- one lead -----------------------------------------------------------------

    @property
    def plain_sources(self) -> tuple[str, ...]:
        """The templates of :attr:`plain_leaves`, in order: what a request's plan may render
        alongside the lead's own request (``RequestTemplate.bind(also=...)``)."""
        return tuple(leaf.source for leaf in self.plain_leaves)

    def prepare(self, variables: Mapping[str, Any], texts: Sequence[str] | None = None) -> BatchLead:
        """The lead's renderings for every ``$each`` and its match keys, in one pass; a
        template that fails for it (a filter refusing a value, the render budget) is kept
        as its ``error``. ``texts``: the :attr:`plain_leaves`' texts, rendered already (by
        the request's plan)."""
        code = str(variables.get("phone_code") or "1")
        try:
            if texts is not None and self._text_slots is not None:
                return self._prepared(code, texts, *self._text_slots)
            render = _Renderer(self.combined, variables)
            if texts is not None:
                render.done = dict(zip(self.plain_leaves, texts))
            elif self.plain is not None:
                try:
                    render.done = dict(zip(self.plain_leaves, self.plain(variables)))
                except Exception:  # noqa: BLE001 - not sure of this lead: leaf by leaf, as below
                    pass
            # this runs for every lead: a leaf the plain pass rendered is read from ``done``
            # here rather than through the renderer's call
            done = render.done
            each: list[Any] = []
            for e in self.eaches:
                if e.when is not None and not (done.get(e.when) or render(e.when)).strip():
                    each.append(_SKIP)
                elif type(e.template) is _Leaf:
                    each.append(done.get(e.template) or render(e.template))
                else:
                    each.append(_per_lead(e.template, render))
            keys = []
            for m in self.match:
                values = set()
                for leaf in m.lead:
                    norm = _normalise(done.get(leaf) or render(leaf), m.compare, code)
                    if norm:
                        values.add(norm)
                keys.append(values)
        except Exception as exc:  # noqa: BLE001 - this lead cannot join a batch: it is asked alone
            return BatchLead(code, [], [], f"{type(exc).__name__}: {exc}")
        return BatchLead(code, each, keys)

    @cached_property
    def _text_slots(self) -> tuple[dict[_Leaf, int], tuple, tuple[tuple[str, tuple[int, ...]], ...]] | None:
        """(each plain leaf's position among :attr:`plain_leaves`; per ``$each``, its ``$when``'s
        position and its template's, or the template itself when it is a table or list of
        leaves; per match, its compare and its leaves' positions); None when one of these
        leaves is not plain: then :meth:`prepare` renders leaf by leaf."""
        at = {leaf: i for i, leaf in enumerate(self.plain_leaves)}
        if any(leaf not in at for e in self.eaches for leaf in _leaves_in(e.template)):
            return None
        try:
            eaches = tuple((None if e.when is None else at[e.when],
                            at[e.template] if isinstance(e.template, _Leaf) else e.template) for e in self.eaches)
            match = tuple((m.compare, tuple(at[leaf] for leaf in m.lead)) for m in self.match)
        except KeyError:
            return None
        return at, eaches, match

    @staticmethod
    def _prepared(code: str, texts: Sequence[str], at: Mapping[_Leaf, int], eaches: tuple, match: tuple) -> BatchLead:
        """A lead prepared from its leaves' texts by their positions (see :attr:`_text_slots`):
        what :meth:`prepare` makes leaf by leaf, without a renderer or a table of the texts
        (this runs for every lead of a batching connection)."""
        each: list[Any] = []
        for when, template in eaches:
            if when is not None and not texts[when].strip():
                each.append(_SKIP)
            else:
                each.append(texts[template] if type(template) is int
                            else _per_lead(template, lambda leaf: texts[at[leaf]]))
        keys = []
        for compare, leaves in match:
            values = set()
            for i in leaves:
                norm = _normalise(texts[i], compare, code)
                if norm:
                    values.add(norm)
            keys.append(values)
        return BatchLead(code, each, keys)

    def _leads(self, leads: Sequence[Mapping[str, Any] | BatchLead]) -> list[BatchLead]:
        out = [lead if isinstance(lead, BatchLead) else self.prepare(lead) for lead in leads]
        for lead in out:
            if lead.error is not None:
                raise BatchError(lead.error)
        return out

    # -- rendering --------------------------------------------------------------

    def render(self, leads: Sequence[Mapping[str, Any] | BatchLead]) -> tuple[dict[str, Any] | None, Any]:
        """(query keys, body) for these leads (template variables, or prepared); raises BatchError."""
        prepared = self._leads(leads)
        try:
            static = _Renderer(self.combined, {})
            query = ({k: _expand(v, prepared, static) for k, v in self.query.items()}
                     if self.query is not None else None)
            body = _expand(self.body, prepared, static) if self.body is not None else None
        except Exception as exc:  # noqa: BLE001 - a filter refusing a value, the render budget: ask alone
            raise BatchError(f"{type(exc).__name__}: {exc}") from None
        return query, (None if body is _DROP else body)

    # -- splitting --------------------------------------------------------------

    def lead_keys(self, variables: Mapping[str, Any]) -> list[set[str]]:
        """Per match: the lead's values, normalised like the CRM compares them."""
        return self._leads([variables])[0].keys

    def split(self, status: int, body: Any,
              leads: Sequence[Mapping[str, Any] | BatchLead]) -> list[tuple[int, Any]] | None:
        """Each lead's (status, body), as its single call would have answered; None when
        the answer may have been cut short (ask again in smaller batches)."""
        if not 200 <= status < 300:
            return [(status, body)] * len(leads)  # an error answer is every lead's answer
        found = [] if body is None else lookup(body, self.records)
        if found is None:  # the key is there, null: no records
            found = []
        if not isinstance(found, list):
            # no records would make every lead new, and the whole body would give each the others' records
            where = ".".join(map(str, self.records))
            keys = f" (its keys: {', '.join(map(str, list(body)[:10]))})" if isinstance(body, dict) else ""
            raise BatchShapeError(f"[batch] records = {where!r}: the CRM's answer has "
                                  f"{'no such key' if found is MISSING else 'no list there'}{keys}")
        if self.max_records and len(found) >= self.max_records:
            return None
        index = _Index(self.match, found)
        # the leads the CRM found nothing for (most, usually) share one answer: the same object,
        # so what is made of it (the record's response) is made once per batch
        parts, empty = [], None
        for lead in self._leads(leads):
            mine = index.records_of(lead)
            if mine:
                parts.append(self._answer(status, body, mine))
            else:
                if empty is None:
                    empty = self._answer(status, body, mine)
                parts.append(empty)
        orphans = index.unclaimed()
        if orphans:
            # the CRM found it for one of these leads: that lead's own answer would have held it
            raise BatchShapeError(f"{len(orphans)} of the answer's {len(found)} records belong to no lead of the "
                                  f"batch by [batch] match (the first: {self._match_fields(found[orphans[0]])})")
        return parts

    def _match_fields(self, record: Any) -> str:
        """The fields ``match`` reads of a record, as the CRM sent them."""
        paths = dict.fromkeys(path for m in self.match for path in m.record)
        shown = []
        for path in paths:
            value = lookup(record, path)
            shown.append(f"{'.'.join(map(str, path))} {'missing' if value is MISSING else repr(value)}")
        return ", ".join(shown)

    def _answer(self, status: int, body: Any, mine: list) -> tuple[int, Any]:
        if not mine and self.empty_status is not None:
            return self.empty_status, None
        kept = mine[:self.limit] if self.limit is not None else mine
        filled = {"$count": len(kept), "$total": len(mine), "$more": len(mine) > len(kept)}
        out = _with(body if isinstance(body, dict) else {}, self.records, kept)
        for path, value in self.set.items():
            out = _with(out, path, filled.get(value, value) if isinstance(value, str) else value)
        return status, out

    def from_first_lead(self, leaves: Mapping[tuple, Any]) -> list[tuple[tuple, frozenset[str]]]:
        """The request's template leaves that read the lead but that a batch takes from its
        first lead alone (the URL and headers; the query keys and the body the batch does not
        replace): ``[(path, variables)]``. In a batch the other leads' values are not sent."""
        out = []
        for path, leaf in leaves.items():
            taken = (path[0] in ("url", "headers")
                     or (path[0] == "query" and (self.query is None or path[1] not in self.query))
                     or (path[0] == "body" and self.body is None))
            if taken and leaf.variables:
                out.append((path, leaf.variables))
        return out


class _Index:
    """An answer's records by their normalised match values, built once per answer (and
    per lead phone code, which a ``phone`` comparison reads the records' numbers with)."""

    def __init__(self, match: Sequence[Match], found: list):
        self.match = match
        self.found = found
        self._by_code: dict[str, list[dict[str, list[int]]]] = {}
        self._claimed: set[int] = set()

    def _for(self, code: str) -> list[dict[str, list[int]]]:
        tables = self._by_code.get(code)
        if tables is None:
            tables = self._by_code[code] = []
            for m in self.match:
                table: dict[str, list[int]] = {}
                for i, record in enumerate(self.found):
                    for path in m.record:
                        value = lookup(record, path)
                        for v in value if isinstance(value, list) else [value]:
                            if v is not MISSING and v is not None:
                                table.setdefault(_normalise(str(v), m.compare, code), []).append(i)
                tables.append(table)
        return tables

    def records_of(self, lead: BatchLead) -> list:
        """The records one of whose fields equals one of the lead's values, in the answer's order."""
        hits: set[int] = set()
        tables = None
        for n, wanted in enumerate(lead.keys):
            if wanted:
                tables = tables or self._for(lead.code)
                for value in wanted:
                    hits.update(tables[n].get(value, ()))
        self._claimed |= hits
        return [self.found[i] for i in sorted(hits)]

    def unclaimed(self) -> list[int]:
        """The records no lead has taken (:meth:`records_of`), in the answer's order."""
        if len(self._claimed) == len(self.found):
            return []
        return [i for i in range(len(self.found)) if i not in self._claimed]


def _with(data: dict, path: tuple[str, ...], value: Any) -> dict:
    """A copy of ``data`` with ``path`` set (dicts on the way copied, never mutated)."""
    out = dict(data)
    if len(path) == 1:
        out[path[0]] = value
    else:
        inner = out.get(path[0])
        out[path[0]] = _with(inner if isinstance(inner, dict) else {}, path[1:], value)
    return out


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


def _leaves_in(tpl: Any) -> Iterator[_Leaf]:
    """The leaves of a ``$each``'s template (a leaf, or a table or list of them)."""
    if isinstance(tpl, dict):
        tpl = list(tpl.values())
    if isinstance(tpl, list):
        for v in tpl:
            yield from _leaves_in(v)
    elif isinstance(tpl, _Leaf):
        yield tpl


# -- expansion ----------------------------------------------------------------------

def _per_lead(tpl: Any, render: Callable[[_Leaf], str]) -> Any:
    if isinstance(tpl, dict):
        return {k: _per_lead(v, render) for k, v in tpl.items()}
    if isinstance(tpl, list):
        return [_per_lead(v, render) for v in tpl]
    if isinstance(tpl, _Leaf):
        return render(tpl)
    return tpl


def _expand(node: Any, leads: Sequence[BatchLead], static: _Renderer, empties: list | None = None) -> Any:
    if isinstance(node, _Each):  # a $join (a $each without one stands in a list: below)
        pieces = {lead.each[node.index]: None for lead in leads}  # in order, each once
        pieces.pop(_SKIP, None)
        pieces.pop("", None)
        if not pieces:
            return ""
        return node.prefix + node.join.join(pieces) + node.suffix
    if isinstance(node, dict):
        if CONCAT in node:
            return "".join(str(_expand(part, leads, static, empties)) for part in node[CONCAT])
        mine = [] if node.get(OMIT) else empties
        out = {}
        for k, v in node.items():
            if k == OMIT:
                continue
            value = _expand(v, leads, static, mine)
            if value is not _DROP:
                out[k] = value
        if node.get(OMIT) and mine:
            return _DROP
        return out
    if isinstance(node, list):
        items: list[Any] = []
        for element in node:
            if isinstance(element, _Each) and element.join is None:
                produced: list[Any] = []
                seen: set[str] = set()  # repeated values are sent once
                for lead in leads:
                    value = lead.each[element.index]
                    if value is _SKIP:
                        continue
                    for v in value if isinstance(element.template, list) else [value]:
                        if isinstance(v, str):
                            if v in seen:
                                continue
                            seen.add(v)
                        produced.append(v)
                if not produced and empties is not None:
                    empties.append(1)
                items += produced
            else:
                value = _expand(element, leads, static, empties)
                if value is not _DROP:
                    items.append(value)
        return items
    if isinstance(node, _Leaf):
        return static(node)
    return node


# -- compiling ------------------------------------------------------------------------

def compile_batch(doc: Mapping[str, Any], env: Any, allowed_vars: set[str],
                  lead_query_keys: set[str]) -> tuple[BatchSpec | None, list[tuple[tuple, str, str]]]:
    """The ``[batch]`` table compiled; problems as (path, message, code)."""
    problems: list[tuple[tuple, str, str]] = []
    leaves: dict[str, tuple[_Leaf, tuple]] = {}  # by source: the leaf and where it first stands
    eaches: list[_Each] = []
    lead_sources: dict[str, None] = {}  # the leaves a lead renders (the others: once per batch)

    def template(source: str, path: tuple, per_lead: bool) -> Any:
        try:
            ast = env.parse(source)
        except TemplateSyntaxError as exc:
            problems.append((path, f"Jinja syntax error at line {exc.lineno}: {exc.message}", "jinja_syntax"))
            return None
        try:
            used = meta.find_undeclared_variables(ast)
        except TemplateError as exc:  # an unknown filter or test
            problems.append((path, f"Jinja error: {exc}", "jinja_compile"))
            return None
        if not per_lead and used:
            problems.append((path, f"uses {', '.join(sorted(used))} outside a $each: one request serves many leads "
                                   "(put lead values under $each or $join)", "batch_lead_value"))
        for var in sorted(used - allowed_vars - {"fields"}) if per_lead else ():
            problems.append((path, f"template variable {var!r} is not provided: map a lead field to it in [fields]",
                             "undeclared_variable"))
        refused = _sandbox_problem(ast)
        if refused:
            problems.append((path, refused, "jinja_tag"))
        if source not in leaves:
            leaves[source] = (_Leaf(source), path)
        if per_lead:
            lead_sources.setdefault(source, None)
        return leaves[source][0]

    def walk(node: Any, path: tuple, per_lead: bool) -> Any:
        if isinstance(node, str):
            return template(node, path, per_lead)
        if isinstance(node, dict):
            if not per_lead and (EACH in node or JOIN in node):
                if EACH not in node:
                    problems.append((path, "a $join needs a $each: one string template per lead", "batch_shape"))
                elif JOIN in node and not isinstance(node[EACH], str):
                    problems.append((path + (EACH,), "a $join's $each is one string template per lead", "batch_shape"))
                out = {k: (v if k in (JOIN, PREFIX, SUFFIX) else walk(v, path + (k,), True)) for k, v in node.items()}
                if JOIN not in node and path and not isinstance(path[-1], int):
                    problems.append((path, "$each stands in a list (one element per lead); use $join for a string",
                                     "batch_shape"))
                each = _Each(len(eaches), out.get(EACH), out.get(WHEN), node.get(JOIN),
                             node.get(PREFIX, ""), node.get(SUFFIX, ""))
                eaches.append(each)
                return each
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
    for key, value in doc.get("set", {}).items():
        meant = did_you_mean(value, SET_FILLS) if isinstance(value, str) and value not in SET_FILLS else None
        if meant is not None:  # a literal would be set for every lead: a rule on it never decides as meant
            problems.append((("batch", "set", key), f"{value!r} is not one of {', '.join(SET_FILLS)} (did you mean "
                                                    f"{meant!r}?): every lead would get the text {value!r} as its "
                                                    f"{key}", "unknown_fill"))
    match = []
    for i, m in enumerate(doc.get("match", [])):
        leads = m["lead"] if isinstance(m["lead"], list) else [m["lead"]]
        records = m["record"] if isinstance(m["record"], list) else [m["record"]]
        match.append(Match(tuple(split_path(r) for r in records),
                           tuple(template(s, ("batch", "match", i, "lead"), True) for s in leads),
                           m.get("compare", "text")))
    combined = None if problems else _combine(env, leaves, problems)
    if problems:
        return None, problems
    sources = list(lead_sources)
    plain, which = plain_texts(env, sources)
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
        eaches=tuple(eaches),
        combined=combined,
        plain=plain,
        plain_leaves=tuple(leaves[sources[i]][0] for i in which),
    ), []


def _combine(env: Any, leaves: Mapping[str, tuple[_Leaf, tuple]], problems: list) -> Any:
    """Every leaf as a block of one template: a lead's renderings then share one context (one
    render budget) instead of making a context per leaf, which costs more than most leaves."""
    names = {source: f"leaf{i}" for i, source in enumerate(leaves)}
    try:
        # every loop and ``~`` goes through the render budget (see sandbox.py)
        combined = env.from_string(instrument(env.parse(
            "".join(f"{{% block {names[source]} %}}{source}{{% endblock %}}" for source in leaves))))
    except TemplateError as exc:
        for source, (_, path) in leaves.items():  # which leaf: each compiled alone
            try:
                env.compile(env.parse(source))
            except TemplateError as leaf_exc:
                problems.append((path, f"Jinja error: {leaf_exc}", "jinja_compile"))
                return None
        problems.append((("batch",), f"Jinja error: {exc}", "jinja_compile"))
        return None
    for source, (leaf, _) in leaves.items():
        leaf.block = combined.blocks[names[source]]
        leaf.plain = plain_function(env, source)
    return combined
