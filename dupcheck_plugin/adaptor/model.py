"""Adaptor files: load, validate, compile; bind secrets; render a lead."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..config.problems import ConfigError, Problem
from ..rules.paths import split_path
from .batch import BatchLead, BatchSpec, compile_batch
from .directives import BATCH_DIRECTIVES, REQUEST_DIRECTIVES, directive_problems
from .fields import FieldError, FieldMapping
from .headers import unsendable
from .render import MASK, BoundRequest, Rendered, RenderError, RequestTemplate, make_environment

RESERVED_NAMES = {"secrets", "fields"}


@dataclass(frozen=True)
class RateLimitRule:
    """How a CRM says "over the limit": an answer to retry, not to decide on."""

    status: int
    key: str | None = None
    value: Any = None
    retry_after_header: str | None = "Retry-After"
    clears: bool = True  # False: the limit does not reopen in seconds (a spent daily budget); stop calling


@dataclass
class Adaptor:
    name: str
    description: str
    source: str
    response_format: str
    fields: FieldMapping
    request: RequestTemplate
    rate_limits: tuple[RateLimitRule, ...]
    simulator: str | None = None  # the CRM simulator's answer shape for this adaptor
    record_id: str | list[str] | None = None  # path(s) of the matched record's id in an answer
    limits: Mapping[str, Any] = field(default_factory=dict)  # the CRM's documented limits ([limits])
    batch: BatchSpec | None = None  # many leads in one request ([batch])

    @property
    def secret_names(self) -> set[str]:
        return self.request.secret_names

    @property
    def answer_keys(self) -> frozenset[str]:
        """The top-level keys of a CRM answer this adaptor names: its record_id's,
        its [batch] records' and set's (what a rules key is checked against)."""
        ids = self.record_id if isinstance(self.record_id, list) else [self.record_id]
        paths = [split_path(p) for p in ids if isinstance(p, str)]
        if self.batch is not None:
            paths += [self.batch.records, *self.batch.set]
        return frozenset(p[0] for p in paths if p)

    def bind(self, environ: Mapping[str, str] | None = None, *, preview: bool = False,
             batched: bool = False, origin: str | None = None) -> "BoundAdaptor":
        """Resolve ``secrets.NAME`` from the environment. In ``preview`` mode a
        missing secret renders as ``****`` instead of failing. ``batched``: leads go
        in batches (:meth:`BoundAdaptor.render_for_batch`). ``origin``: the
        scheme://host:port requests go to instead of the adaptor's."""
        environ = os.environ if environ is None else environ
        missing = sorted(n for n in self.secret_names if not environ.get(n))
        if missing and not preview:
            raise ConfigError([Problem(self.source, ("request",), (
                f"secret(s) {', '.join(missing)} not set: export them as environment variables"), code="secret_missing")])
        secrets = {n: environ.get(n) or MASK for n in self.secret_names}
        try:
            # renders the leaves that use no lead value; batched: the plan renders the batch's too
            request = self.request.bind(secrets, self.batch.plain_sources if batched and self.batch else (), origin)
        except RenderError as exc:
            raise ConfigError([Problem(self.source, ("request",) + tuple(exc.path or ()), exc.reason, "render")]) from None
        return BoundAdaptor(self, request, missing)


class BoundAdaptor:
    def __init__(self, adaptor: Adaptor, request: BoundRequest, missing_secrets: list[str]):
        self.adaptor = adaptor
        self._request = request
        self.missing_secrets = missing_secrets

    def render(self, lead: Mapping[str, Any]) -> tuple[Rendered, Rendered]:
        """(request to send, same request with secrets masked); raises RenderError."""
        real, masked, _ = self._request.render_also(self._variables(lead))
        return real, masked

    def render_for_batch(self, lead: Mapping[str, Any]) -> tuple[Rendered, Rendered, BatchLead]:
        """(request to send, masked request, the lead as a batch renders it); raises RenderError.
        A plan bound ``batched`` renders the batch's leaves in the same call."""
        variables = self._variables(lead)
        real, masked, texts = self._request.render_also(variables)
        return real, masked, self.adaptor.batch.prepare(variables, texts)  # type: ignore[union-attr]

    def _variables(self, lead: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self.adaptor.fields.template_vars(lead)
        except FieldError as exc:
            raise RenderError(str(exc)) from None


def build_adaptor(doc: Mapping[str, Any], source: str, filters: Mapping[str, Any],
                  check: bool = False) -> tuple[Adaptor | None, list[Problem]]:
    """Compile an adaptor document already valid against ``adaptor.schema.json``
    (:func:`dupcheck_plugin.config.adaptors.compile_adaptor` checks it first):
    the field mapping, the request templates, what a schema cannot see.
    ``check``: for ``dupcheck check`` only, which never sends a request: a request
    whose sample render is proven without Jinja is not compiled by Jinja until bound."""
    problems: list[Problem] = []
    fields = FieldMapping.from_config(doc.get("fields", {}))
    owner: dict[str, str] = {}
    for rule in fields.rules:
        for name in rule.names:
            if name in RESERVED_NAMES:
                problems.append(Problem(source, ("fields", rule.lead_field, "mapped_to"), f"{name!r} is reserved for the template namespace", "reserved_name"))
            elif name in owner:
                problems.append(Problem(source, ("fields", rule.lead_field, "mapped_to"), f"{name!r} is already mapped from lead field {owner[name]!r}", "duplicate_mapping"))
            owner[name] = rule.lead_field
    request = dict(doc["request"])
    request.setdefault("body_format", doc.get("body_format", "json" if request.get("body") is not None else "none"))
    sample = None
    if check:
        try:
            sample = fields.template_vars(sample_lead(fields))
        except FieldError:  # as trial_render: the template itself is not at fault
            pass
    tpl, tproblems = RequestTemplate.compile(make_environment(filters), request, fields.names, sample)
    # a Jinja line number counts inside the template string: it stays in the message, not in Problem.line
    problems += [Problem(source, p.path, p.message, p.code, token=p.token, suggestion=p.suggestion) for p in tproblems]
    problems += directive_problems(doc["request"], ("request",), REQUEST_DIRECTIVES, source)
    # before the batch compiles: a misspelt $each would read as a lead value outside any $each
    problems += directive_problems(doc.get("batch"), ("batch",), BATCH_DIRECTIVES, source)
    if problems:
        return None, problems
    problems = fixed_header_problems(request.get("headers") or {}, source)
    if not problems and not tpl.sample_rendered:
        problems = trial_render(tpl, fields, source)
    batch = None
    if problems:
        return None, problems
    if "batch" in doc:
        lead_query = {path[1] for path, leaf in tpl.leaves.items() if path[0] == "query" and leaf.variables}
        if any(path[0] == "url" and leaf.variables for path, leaf in tpl.leaves.items()):
            problems.append(Problem(source, ("batch",), "the request URL depends on the lead: it cannot be batched", "batch_shape"))
        batch, bproblems = compile_batch(doc["batch"], tpl.env, fields.names, lead_query)
        problems += [Problem(source, path, message, code) for path, message, code in bproblems]
    if problems:
        return None, problems
    rate_limits = tuple(RateLimitRule(**rl) for rl in doc.get("rate_limit", []))
    return Adaptor(
        name=doc.get("name") or Path(source).stem,
        description=doc.get("description", ""),
        source=source,
        response_format=doc.get("response_format", "json"),
        fields=fields,
        request=tpl,
        rate_limits=rate_limits,
        simulator=doc.get("simulator"),
        record_id=doc.get("record_id"),
        limits=dict(doc.get("limits", {})),
        batch=batch,
    ), []


SAMPLE_VALUES = {"phone_number": "5550100101", "alt_phone_1": "5550100102", "alt_phone_2": "5550100103",
                 "phone_code": "1", "email": "sample@example.com"}


def sample_lead(fields: FieldMapping) -> dict[str, str]:
    """A plausible lead for every mapped field: what ``check`` renders each leaf with."""
    return {rule.lead_field: "2024-01-02" if rule.date_format else SAMPLE_VALUES.get(rule.lead_field, "sample")
            for rule in fields.rules}


def trial_render(request: RequestTemplate, fields: FieldMapping, source: str) -> list[Problem]:
    """Render every leaf once, secrets masked, with a sample lead: a template that
    fails whatever the lead (``{{ 1//0 }}``, over the render budget) is refused
    here, as ``file::path: message``, rather than at the first lead."""
    try:
        request.bind({name: MASK for name in request.secret_names}).render(fields.template_vars(sample_lead(fields)))
    except RenderError as exc:
        return [Problem(source, ("request",) + tuple(exc.path or ()),
                        f"{exc.reason} (rendered with a sample lead)", "render")]
    except FieldError:  # the sample does not fit a field rule: the template itself is not at fault
        return []
    return []


def fixed_header_problems(headers: Mapping[str, Any], source: str) -> list[Problem]:
    """Headers no lead could send (adaptor.headers' rule): a name that is not a
    token, a fixed value (no template) with a control character or a letter
    that is not ASCII. Found here rather than as every lead's refusal."""
    return [Problem(source, ("request", "headers", name), problem, "unsendable_header")
            for name, value in headers.items()
            if (problem := unsendable(str(name), value if isinstance(value, str) and "{" not in value else ""))]
