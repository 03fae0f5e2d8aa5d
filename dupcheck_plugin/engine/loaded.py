"""A loaded workflow: its spec, its built nodes, the plugins it was built with.

Every step of one lead that needs no store lives here, each callable on its
own with plain-data inputs and outputs (a workflow engine such as Temporal
runs them as separate activities): :meth:`Workflow.admit` (pure),
:meth:`Workflow.ask_crm` (the CRM call), :meth:`Workflow.decide` (pure),
:meth:`Workflow.record` (pure). :meth:`Workflow.evaluate` runs the whole
node graph for one lead. The host takes one ``Workflow`` per lead, so a
reloaded one can be swapped in between leads.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from .. import codes
from ..plugins import Registry, default_registry
from ..rules.decide import Decision, decide
from ..types import CHECK_OUTCOME, CRM_ANSWER, CheckNode, CheckOutcome, CrmAnswer, CrmNode, LeadContext, Node
from ..nodes.api_duplicate_check import ApiDuplicateCheck, not_an_answer
from .intake import Intake, IntakeDefaults, admit, malformed
from .record import DecisionRecord, build_record
from .workflow import NODE_BASES, WorkflowSpec, build_nodes, load_workflow

log = logging.getLogger(__name__)

NO_CHECK_STATUS = "NEW"  # a workflow without a duplicate check creates every lead with this status


class Workflow:
    """Load one with :meth:`load`; close it with :meth:`aclose` when no lead uses it any more."""

    def __init__(self, spec: WorkflowSpec, nodes: Mapping[str, Node], registry: Registry):
        self.spec = spec
        self.nodes = dict(nodes)
        self.registry = registry
        self._defaults = IntakeDefaults(spec.defaults)  # applied to every lead: worked out once
        outputs = {n.id: registry.node_types[n.type].output for n in spec.nodes}
        sinks = self.sinks = spec.sinks  # the nodes evaluate() runs, worked out once
        checks = [nid for nid in sinks if outputs.get(nid) == CHECK_OUTCOME]
        checks += [nid for nid, out in outputs.items() if out == CHECK_OUTCOME and nid not in checks]
        self.check_id = checks[0] if checks else None
        self.check: CheckNode | None = self.nodes[checks[0]] if checks else None  # type: ignore[assignment]
        self.crm: CrmNode | None = None
        if self.check is not None and outputs.get(self.check.settings.connect) == CRM_ANSWER:
            self.crm = self.nodes[self.check.settings.connect]  # type: ignore[assignment]
        # the usual graph, a CRM node read by the shipped duplicate check and nothing else:
        # evaluate() runs the check's two steps itself, two coroutines and an outcome fewer per lead
        self._direct = (self.crm is not None and sinks == [self.check_id]
                        and type(self.check) is ApiDuplicateCheck)

    @classmethod
    def load(cls, workflow: str | WorkflowSpec, *, registry: Registry | None = None, crm_url: str | None = None,
             environ: Mapping[str, str] | None = None, offline: bool = False,
             max_connections: int | None = None, http_transport: Any = None,
             interactive: bool = False, single_attempt: bool = False) -> "Workflow":
        """Load the workflow (a shipped name or a path) and build its nodes
        through the plugins' node types. ``crm_url`` replaces the CRM URL's
        scheme://host:port; ``environ`` holds the secrets (default
        ``os.environ``); ``offline``: nothing will be called (``explain``),
        missing secrets are masked instead of refused; ``http_transport``: an
        ``httpx.AsyncBaseTransport`` for every CRM call (a test's
        ``httpx.MockTransport``); ``single_attempt``: each CRM call makes one
        attempt, the host retries (a workflow engine's retry policy). Raises
        :class:`~dupcheck_plugin.config.problems.ConfigError`."""
        registry = registry or default_registry()
        spec = workflow if isinstance(workflow, WorkflowSpec) else load_workflow(workflow, registry)
        settings: dict[str, Any] = {"crm_url": crm_url, "offline": offline, "environ": environ,
                                    "http_transport": http_transport, "interactive": interactive,
                                    "single_attempt": single_attempt}
        if max_connections:
            settings["max_connections"] = max_connections
        return cls(spec, build_nodes(spec, registry, settings), registry)

    @property
    def name(self) -> str:
        return self.spec.name

    def node_ids(self, output: str) -> list[str]:
        """The nodes whose type gives ``output`` (``CRM_ANSWER``: the nodes
        that call the CRM), in the workflow's order."""
        return [n.id for n in self.spec.nodes if self.registry.node_types[n.type].output == output]

    def with_nodes(self, replacements: Mapping[str, Node]) -> "Workflow":
        """This workflow with the nodes of ``replacements`` (by id) put in
        place of its own: a host that runs CRM calls elsewhere (Temporal's
        activities) puts stand-ins there. The other nodes are shared."""
        unknown = sorted(set(replacements) - set(self.nodes))
        if unknown:
            raise KeyError(f"workflow {self.name!r} has no node {', '.join(unknown)}")
        outputs = {n.id: self.registry.node_types[n.type].output for n in self.spec.nodes}
        for nid, node in replacements.items():
            base = NODE_BASES.get(outputs[nid], Node)
            if not isinstance(node, base):  # the same contract a node type's factory is held to
                raise TypeError(f"node {nid!r} of workflow {self.name!r} needs a {base.__name__}, "
                                f"got a {type(node).__name__}")
        return Workflow(self.spec, {**self.nodes, **replacements}, self.registry)

    @property
    def secret_names(self) -> frozenset[str]:
        """The environment variables the workflow's CRM nodes read their secrets from."""
        return frozenset(name for nid in self.node_ids(CRM_ANSWER) for name in self.nodes[nid].secret_names)

    def health(self) -> dict[str, dict[str, Any]]:
        """node id -> state, for the nodes that report one (a connection's
        circuit breaker, say): what /healthz and /metrics show."""
        states = {nid: node.health() for nid, node in self.nodes.items()}
        return {nid: state for nid, state in states.items() if state is not None}

    # -- the steps of one lead ---------------------------------------------------

    def admit(self, raw: Mapping[str, Any]) -> Intake:
        """Flatten, default (the workflow's ``[defaults]``) and validate a lead; pure."""
        return admit(raw, self._defaults)

    def malformed(self, raw: Mapping[str, Any] | None, reason: str) -> Intake:
        """The intake of an input row that is not a lead at all."""
        return malformed(raw, reason)

    async def ask_crm(self, intake: Intake) -> CrmAnswer | None:
        """Call the CRM for an admitted lead; None when the workflow's check is
        disabled or it has none (the CRM is then never called)."""
        if self.check is None or not self.check.settings.enabled or self.crm is None:
            return None
        return await LeadContext(intake.lead, intake.phone_e164, self.nodes).output(self.check.settings.connect)

    async def run_node(self, node_id: str, intake: Intake) -> Any:
        """One node's output for an admitted lead, pulling what it reads: a
        workflow engine runs each CRM node as an activity this way."""
        return await LeadContext(intake.lead, intake.phone_e164, self.nodes).output(node_id)

    def decide(self, answer: CrmAnswer | None) -> Decision:
        """The decision on a CRM answer (None: not called); pure."""
        if self.check is None:
            return Decision.created(NO_CHECK_STATUS, by="check_off", checked=False)
        return decide(self.check.settings, answer)

    async def evaluate(self, intake: Intake) -> tuple[Decision, CrmAnswer | None]:
        """Run the node graph for an admitted lead: every sink node, each
        pulling what it reads. A node that fails still gives the lead its
        one decision (6500, retryable)."""
        if intake.refused is not None:
            return intake.refused, None
        ctx = LeadContext(intake.lead, intake.phone_e164, self.nodes)
        try:
            if self._direct:  # what ApiDuplicateCheck.run does, without its coroutine
                settings = self.check.settings  # type: ignore[union-attr]
                answer = await self.crm.run(ctx) if settings.enabled else None  # type: ignore[union-attr]
                if answer.__class__ is not CrmAnswer and answer is not None and not isinstance(answer, CrmAnswer):
                    raise not_an_answer(settings.connect, answer)  # a plugin's node: its bug named
                return decide(settings, answer), answer
            for sink in self.sinks:
                await ctx.output(sink)
        except Exception as exc:  # a node bug must still give this lead its one decision
            log.exception("a node of workflow %s failed", self.name)
            return Decision.refused(codes.INTERNAL, f"{type(exc).__name__}: {exc}", by="node_error",
                                    retryable=True), None
        outcome: CheckOutcome | None = ctx.outputs.get(self.check_id) if self.check_id else None
        if outcome is None:
            return self.decide(None), None
        return outcome.decision, outcome.answer

    def record(self, intake: Intake, decision: Decision, answer: CrmAnswer | None, *,
               source_row: int | None = None, source: str | None = None, api: Mapping[str, Any] | None = None,
               idempotency_key: str | None = None, decided_at: str | None = None,
               temporal: Mapping[str, Any] | None = None) -> DecisionRecord:
        """The decision record (the README's JSON object); pure but for the
        clock when ``decided_at`` is not given."""
        return build_record(workflow=self.name, lead=intake.lead, phone_e164=intake.phone_e164, decision=decision,
                            answer=answer, source_row=source_row, source=source, api=api,
                            idempotency_key=idempotency_key, decided_at=decided_at, temporal=temporal)

    async def aclose(self) -> None:
        for node in self.nodes.values():
            await node.aclose()
