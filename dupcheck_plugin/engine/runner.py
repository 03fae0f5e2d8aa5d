"""The reference engine: run leads through a workflow, many in flight.

Each lead: intake (pure) -> the workflow's sink nodes, which pull what they
need (the duplicate check pulls the Convoso Connect answer) -> one decision
record -> the store (batched writer) -> ``dupcheck_decision_made``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping

from ..nodes.api_duplicate_check import CheckOutcome
from ..plugins import Registry, default_registry
from ..rules.decide import Decision
from ..store.writer import StoreWriter
from ..types import LeadContext, Node, Store
from .intake import CODE_MALFORMED, Intake, admit, printable, printable_lead
from .local import local_check
from .locks import KeyedLocks
from .record import INTERNAL_ERROR_CODE, build_record, refusal
from .workflow import WorkflowSpec, build_nodes, load_workflow

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 32


@dataclass
class Summary:
    total: int = 0
    by_action: Counter = field(default_factory=Counter)
    by_rule: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def add(self, record: Mapping[str, Any]) -> None:
        self.total += 1
        self.by_action[record["action"]] += 1
        rule = record["matched_rule"]
        name = record.get("rule_name")
        if rule is None:
            self.by_rule[name or "no row"] += 1  # a local check (check_dup, check_dnc) or no row
        else:
            self.by_rule[f"row {rule}" + (f" ({name})" if name else "")] += 1
        if record["crm"]["error"]:
            self.errors[record["crm"]["error"]] += 1

    def as_json(self) -> dict[str, Any]:
        return {"total": self.total, "by_action": dict(self.by_action), "by_rule": dict(self.by_rule),
                "errors": dict(self.errors), "elapsed_s": round(self.elapsed_s, 3),
                "leads_per_s": round(self.total / self.elapsed_s, 1) if self.elapsed_s else None}


class Engine:
    """A loaded workflow with its nodes and store. Use ``async with``."""

    def __init__(self, spec: WorkflowSpec, nodes: dict[str, Node], store: Store, registry: Registry):
        self.spec = spec
        self.nodes = nodes
        self.store = store
        self.registry = registry
        self.phone_locks = KeyedLocks()
        self._writer: StoreWriter | None = None

    @classmethod
    def open(cls, workflow: str | WorkflowSpec, *, db: str | None = "dupcheck.db", crm_url: str | None = None,
             registry: Registry | None = None, store: Store | None = None, environ: Mapping[str, str] | None = None,
             offline: bool = False, max_connections: int | None = None) -> "Engine":
        """Load the workflow, build its nodes through the registry, open the
        store through ``dupcheck_make_store``. Raises ConfigError."""
        registry = registry or default_registry()
        spec = workflow if isinstance(workflow, WorkflowSpec) else load_workflow(workflow, registry)
        settings: dict[str, Any] = {"crm_url": crm_url, "offline": offline, "environ": environ}
        if max_connections:
            settings["max_connections"] = max_connections
        nodes = build_nodes(spec, registry, settings)
        if store is None and not offline:
            store = registry.pm.hook.dupcheck_make_store(settings={"db": db})
        return cls(spec, nodes, store, registry)

    def health(self) -> dict[str, dict[str, Any]]:
        """node id -> state, for the nodes that report one (a connection's
        circuit breaker, say): what /healthz and /metrics show."""
        return {nid: node.health() for nid, node in self.nodes.items() if callable(getattr(node, "health", None))}

    # --- one lead -------------------------------------------------------

    async def _run_node(self, node_id: str, ctx: LeadContext) -> Any:
        return await self.nodes[node_id].run(ctx)

    async def evaluate(self, raw: Mapping[str, Any], row: int | None = None) -> dict[str, Any]:
        """Decide one lead without storing it: the decision record."""
        intake = admit(raw, self.spec.defaults)
        if intake.code is not None:
            return self._record(intake.lead, intake.phone_e164, refusal(intake.code, intake.text), None, row)
        return await self._evaluate_admitted(intake, row)

    async def _evaluate_admitted(self, intake: Intake, row: int | None) -> dict[str, Any]:
        ctx = LeadContext(intake.lead, intake.phone_e164, self._run_node)
        outcome: CheckOutcome | None = None
        try:
            for sink in self.spec.sinks:
                out = await ctx.output(sink)
                if outcome is None and isinstance(out, CheckOutcome):
                    outcome = out
        except Exception as exc:  # a node bug must still give this lead its one decision
            log.exception("node failed for row %s", row)
            decision = refusal(INTERNAL_ERROR_CODE, f"internal error: {type(exc).__name__}: {exc}", retryable=True)
            return self._record(intake.lead, intake.phone_e164, decision, None, row)
        if outcome is None:  # no duplicate check in this workflow: create with defaults
            decision = Decision("created", "NEW", None, False, True, 200, "Lead created", checked=False)
            return self._record(intake.lead, intake.phone_e164, decision, None, row)
        return self._record(intake.lead, intake.phone_e164, outcome.decision, outcome.answer, row)

    def _record(self, lead, phone, decision, answer, row) -> dict[str, Any]:
        return build_record(workflow=self.spec.name, lead=lead, phone_e164=phone, decision=decision,
                            answer=answer, row=row)

    def malformed(self, row: int | None, reason: str, raw: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The decision record of an input row that is not a lead at all."""
        return self._record(printable_lead(raw or {}), None,
                            refusal(CODE_MALFORMED, f"Malformed row: {printable(reason, 300)}"), None, row)

    async def commit(self, record: dict[str, Any]) -> dict[str, Any]:
        """Store a record (lead, DNC entry, record in one transaction), then tell observers."""
        if self._writer is None:
            self._writer = StoreWriter(self.store)
        stored = await self._writer.submit(record)
        self._notify(stored)
        return stored

    def _notify(self, record: dict[str, Any]) -> None:
        # each observer on its own: one that raises must neither undo the
        # stored decision nor keep the others from seeing it
        for impl in self.registry.pm.hook.dupcheck_decision_made.get_hookimpls():
            try:
                impl.function(record=record)
            except Exception:
                log.exception("dupcheck_decision_made of plugin %s failed", impl.plugin_name)

    async def process(self, raw: Mapping[str, Any], row: int | None = None, *, check_dup: int = 0,
                      check_dnc: bool = False, source: str | None = None) -> dict[str, Any]:
        """Decide and store one lead. With Convoso's local checks (``check_dup``
        0-3, ``check_dnc``), the check, the CRM call and the create for one
        phone hold that phone's lock: two leads with one phone cannot both pass."""
        if not (check_dup or check_dnc):
            record = await self.evaluate(raw, row)
            record["source"] = source
            return await self.commit(record)
        intake = admit(raw, self.spec.defaults)
        if intake.code is not None:
            record = self._record(intake.lead, intake.phone_e164, refusal(intake.code, intake.text), None, row)
            record["source"] = source
            return await self.commit(record)
        async with self.phone_locks.hold(intake.phone_e164):
            hit = local_check(self.store, intake.phone_e164, intake.lead.get("list_id"), check_dup, check_dnc)
            if hit is None:
                record = await self._evaluate_admitted(intake, row)
            else:
                record = self._record(intake.lead, intake.phone_e164, hit.decision, None, row)
            record["source"] = source
            return await self.commit(record)

    # --- many leads -----------------------------------------------------

    async def run(self, items: AsyncIterator[tuple[int, Mapping[str, Any] | None, str | None]], *,
                  concurrency: int = DEFAULT_CONCURRENCY,
                  on_record: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
                  source: str | None = None, check_dup: int = 0, check_dnc: bool = False) -> Summary:
        """Decide every item ``(row, lead or None, error or None)`` with at
        most ``concurrency`` leads in flight; memory stays flat. ``source``
        names the lead file: the store then refuses to decide a row twice.
        ``check_dup``/``check_dnc``: Convoso's local checks (see :meth:`process`)."""
        loop = asyncio.get_running_loop()
        summary = Summary()
        started = loop.time()
        queue: asyncio.Queue = asyncio.Queue(maxsize=concurrency * 2)

        async def worker() -> None:
            while True:
                item = await queue.get()
                if item is None:
                    return
                row, lead, error = item
                if error:
                    record = self.malformed(row, error, lead)
                    record["source"] = source
                    record = await self.commit(record)
                else:
                    record = await self.process(lead, row, check_dup=check_dup, check_dnc=check_dnc, source=source)
                summary.add(record)
                if on_record is not None:
                    res = on_record(record)
                    if asyncio.iscoroutine(res):
                        await res

        async def feed() -> None:
            async for item in items:
                await queue.put(item)
            for _ in range(workers):
                await queue.put(None)

        workers = max(1, concurrency)
        try:
            # a failing worker (the store refused a write) cancels the rest: the run stops loudly
            async with asyncio.TaskGroup() as tg:
                for _ in range(workers):
                    tg.create_task(worker())
                tg.create_task(feed())
        finally:
            summary.elapsed_s = loop.time() - started
        return summary

    async def aclose(self) -> None:
        for node in self.nodes.values():
            await node.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.close_store)

    def close_store(self) -> None:
        """Finish every queued write, then close the store. Synchronous, so a
        host whose event loop is already gone (a second Ctrl-C) can still
        keep its decisions; calling it again does nothing."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.store is not None:
            self.store.close()
            self.store = None

    async def __aenter__(self) -> "Engine":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


async def aiter_items(items: Iterable) -> AsyncIterator:
    for item in items:
        yield item
