"""The reference host: one workflow, one store, many leads in flight.

Each lead, on one path whatever the command: intake (pure) -> under the
phone's lock: Convoso's local checks against the store -> the workflow's
nodes (the duplicate check pulls the Convoso Connect answer) -> one decision
record -> the store (batched writer) -> ``dupcheck_decision_made``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping

from ..plugins import Registry, default_registry
from ..store.contract import Store, StoreError
from ..store.phone_guard import PhoneGuard
from ..store.writer import StoreWriter
from ..types import CrmAnswer
from .alarm import AlarmSettings, DuplicateAlarm
from .intake import Intake
from .loaded import Workflow
from .local import LocalHit, local_check
from .locks import KeyedLocks
from .record import DecisionRecord, plan_commit, row_label
from .workflow import WorkflowSpec

log = logging.getLogger(__name__)


class CancelledAfterCommit(asyncio.CancelledError):
    """What :meth:`Host.commit` raises to a caller cancelled while its record was being
    written, once it is stored: a caller that must still answer for the lead (``serve``,
    stopping) answers ``record``; to anyone else it is a cancellation like any other."""

    def __init__(self, record: DecisionRecord):
        super().__init__("cancelled while its record was stored")
        self.record = record


DEFAULT_CONCURRENCY = 32


@dataclass
class Summary:
    total: int = 0
    by_action: Counter = field(default_factory=Counter)
    by_row: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def add(self, record: Mapping[str, Any]) -> None:
        self.total += 1
        self.by_action[record["action"]] += 1
        self.by_row[row_label(record) or "no row"] += 1  # a row, a local check (check_dup, check_dnc) or none
        if record["crm"]["error"]:
            self.errors[record["crm"]["error"]] += 1

    def as_json(self) -> dict[str, Any]:
        return {"total": self.total, "by_action": dict(self.by_action), "by_row": dict(self.by_row),
                "errors": dict(self.errors), "elapsed_s": round(self.elapsed_s, 3),
                "leads_per_s": round(self.total / self.elapsed_s, 1) if self.elapsed_s else None}


class Host:
    """A loaded workflow and a store: decide leads one at a time or many at a
    time. Open with :meth:`open`; use ``async with`` (or :meth:`aclose`)."""

    def __init__(self, workflow: Workflow, store: Store | None):
        if store is not None and not isinstance(store, Store):
            raise StoreError(f"{type(store).__module__}.{type(store).__name__} is not a dupcheck Store: "
                             "a store subclasses dupcheck_plugin.host.Store")
        self.workflow = workflow
        self.store = store
        self.phone_locks = KeyedLocks()  # the one lock set: the local check, the CRM and the create of a phone
        self._guard: PhoneGuard | None = None  # see phone_guard
        self.alarm = DuplicateAlarm(workflow.spec.name, AlarmSettings(**workflow.spec.alarm))  # watches every decision
        self._writer: StoreWriter | None = None
        self._leases: Counter = Counter()  # leads being decided, per workflow
        self._retired: set[Workflow] = set()  # replaced, closed when their last lead is decided
        self._closing: set[asyncio.Task] = set()

    @classmethod
    def open(cls, workflow: str | WorkflowSpec | Workflow, *, db: str | None = "dupcheck.db",
             store: Store | None = None, crm_url: str | None = None, registry: Registry | None = None,
             environ: Mapping[str, str] | None = None, offline: bool = False,
             max_connections: int | None = None, http_transport: Any = None,
             interactive: bool = False, single_attempt: bool = False) -> "Host":
        """Load the workflow (unless given loaded) and open the store through
        ``dupcheck_make_store`` (unless given, or ``offline``). Raises
        ConfigError, StoreError. ``interactive`` (serve): a lead waits for its CRM
        connection's limiter at most that connection's ``max_wait``;
        ``single_attempt``: see :meth:`Workflow.load`."""
        registry = registry or default_registry()
        if not isinstance(workflow, Workflow):
            workflow = Workflow.load(workflow, registry=registry, crm_url=crm_url, environ=environ,
                                     offline=offline, max_connections=max_connections,
                                     http_transport=http_transport, interactive=interactive,
                                     single_attempt=single_attempt)
        if store is None and not offline:
            store = registry.pm.hook.dupcheck_make_store(settings={"db": db})
        return cls(workflow, store)

    # the loaded workflow's parts, for callers that read them
    @property
    def spec(self) -> WorkflowSpec:
        return self.workflow.spec

    @property
    def nodes(self):
        return self.workflow.nodes

    @property
    def registry(self) -> Registry:
        return self.workflow.registry

    def health(self) -> dict[str, dict[str, Any]]:
        """The current workflow's node states (see :meth:`Workflow.health`)."""
        return self.workflow.health()

    def swap(self, workflow: Workflow) -> Workflow:
        """Decide the leads that start from now on with ``workflow``; leads
        already started finish with the one they started with. Returns the
        previous workflow: close it once those leads are done."""
        old, self.workflow = self.workflow, workflow
        # the alarm names the workflow in logs and metrics: it follows a rename, and new settings
        self.alarm = self.alarm.follow(workflow.spec.name, AlarmSettings(**workflow.spec.alarm),
                                       row_map=same_rows(old, workflow))
        return old

    def lead_capacity(self) -> int:
        """Leads worth having in flight so that batching CRM connections fill their batches."""
        return max((node.lead_capacity for node in self.nodes.values()), default=0)

    async def replace(self, workflow: Workflow) -> None:
        """:meth:`swap`, and close the previous workflow (its CRM connections)
        once the last lead that started with it is decided."""
        old = self.swap(workflow)
        if self._leases[old]:
            self._retired.add(old)
        else:
            await old.aclose()

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[Workflow]:
        """The current workflow, held for one lead (or one test of a lead):
        a replaced workflow stays open while anyone holds it."""
        workflow = self._hold()
        try:
            yield workflow
        finally:
            self._release(workflow)

    @property
    def phone_guard(self) -> PhoneGuard | None:
        """The phone locks between the processes that write this store (None: only this
        one does); opened at the first lead that needs them (its lock file, its connection)."""
        if self._guard is None and self.store is not None:
            self._guard = self.store.phone_guard()
        return self._guard

    # lease() in two halves: decide() uses them with a plain try/finally, one
    # context manager object fewer per lead
    def _hold(self) -> Workflow:
        workflow = self.workflow
        self._leases[workflow] += 1
        return workflow

    def _release(self, workflow: Workflow) -> None:
        self._leases[workflow] -= 1
        if not self._leases[workflow]:
            del self._leases[workflow]
            if workflow in self._retired:
                self._retired.discard(workflow)
                task = asyncio.ensure_future(workflow.aclose())  # the lead's answer does not wait for it
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    # --- one lead -------------------------------------------------------

    def check_local(self, intake: Intake, check_dup: int, check_dnc: bool) -> LocalHit | None:
        """Convoso's local checks against the store (``check_dup`` 0-3, ``check_dnc``)."""
        if not (check_dup or check_dnc) or intake.phone_e164 is None:
            return None
        return local_check(self.store, intake.phone_e164, intake.lead.get("list_id"), check_dup, check_dnc)

    async def decide(self, lead: Mapping[str, Any] | Intake, *, source_row: int | None = None,
                     source: str | None = None, check_dup: int = 0, check_dnc: bool = False,
                     api: Mapping[str, Any] | None = None, idempotency_key: str | None = None) -> DecisionRecord:
        """Decide one lead and store it; returns the stored record (with
        ``lead_id``). The lead is a raw mapping or an :class:`Intake` a
        caller already made (a refusal of its own, say). The local checks,
        the CRM call and the create of one phone hold that phone's lock: two
        leads with one phone cannot both pass. ``api``: serve's account of the
        request, kept in the record (the local check that refused is added)."""
        # one coroutine per lead, no context manager objects: this runs for every lead
        workflow = self._hold()  # this lead's snapshot (a lease): a swap() does not change it halfway
        try:
            intake = lead if isinstance(lead, Intake) else workflow.admit(lead)
            if intake.refused is not None:
                return await self.commit(self._record(workflow, intake, intake.refused, None, None, source_row,
                                                      source, api, idempotency_key))
            phone, locks = intake.phone_e164, self.phone_locks
            turn = locks.take(phone)
            if turn is not None:  # another lead with this phone is being decided: wait for it
                await locks.wait(phone, turn)
            # the local checks read what other processes store: they hold the phone too (without
            # them a lead's decision reads nothing of theirs, and one phone may be decided twice)
            guard = self.phone_guard if phone is not None and (check_dup or check_dnc) else None
            try:
                if guard is not None:
                    slot = guard.take(phone)
                    if slot is None:
                        slot = await guard.wait(phone)
                try:
                    hit = self.check_local(intake, check_dup, check_dnc) if check_dup or check_dnc else None
                    if hit is not None:
                        decision, answer = hit.decision, None
                    else:
                        decision, answer = await workflow.evaluate(intake)
                    return await self.commit(self._record(workflow, intake, decision, answer, hit, source_row,
                                                          source, api, idempotency_key))
                finally:
                    if guard is not None:
                        guard.release(slot)
            finally:
                locks.release(phone)
        finally:
            self._release(workflow)

    @staticmethod
    def _record(workflow: Workflow, intake: Intake, decision, answer: CrmAnswer | None, hit: LocalHit | None,
                source_row: int | None, source: str | None, api: Mapping[str, Any] | None,
                idempotency_key: str | None) -> DecisionRecord:
        if api is not None:
            api = {**api, "local_check": hit.check if hit else None,
                   "existing_lead_id": hit.existing_lead_id if hit else None}
            if idempotency_key is not None and not decision.spends_key:  # kept in api, not spent
                api["idempotency_key"], idempotency_key = idempotency_key, None
        return workflow.record(intake, decision, answer, source_row=source_row, source=source, api=api,
                               idempotency_key=idempotency_key)

    # the names code written before the host API uses: one path all the same
    async def process(self, raw: Mapping[str, Any], source_row: int | None = None, **options: Any) -> DecisionRecord:
        return await self.decide(raw, source_row=source_row, **options)

    async def evaluate(self, raw: Mapping[str, Any], source_row: int | None = None) -> DecisionRecord:
        """The decision record of one lead, not stored and without local checks."""
        async with self.lease() as workflow:
            intake = workflow.admit(raw)
            decision, answer = await workflow.evaluate(intake)
            return workflow.record(intake, decision, answer, source_row=source_row)

    async def commit(self, record: DecisionRecord) -> DecisionRecord:
        """Store a record (lead, DNC entry, record in one transaction), then
        tell observers; returns the stored record. A caller cancelled
        meanwhile still waits for the write, so whoever holds the phone's
        lock releases it only once the lead is stored, and learns that it was
        (:class:`CancelledAfterCommit`)."""
        # a future that cannot be cancelled (no task per commit, no shield): a
        # caller cancelled meanwhile wakes once the write is done, then raises
        written = self._store_writer().enqueue(plan_commit(record))
        try:
            stored = await written
        except asyncio.CancelledError:
            if not written.done():
                await asyncio.wait([written])
            if written.exception() is not None:  # nothing stored: the cancellation as it came
                raise
            stored = written.result()
            self._notify(stored)  # stored all the same: observers see every stored decision
            self.alarm.observe(stored)
            raise CancelledAfterCommit(stored) from None
        except StoreError:
            raise
        except Exception as exc:  # the store's own error (sqlite3, a driver's): nothing landed
            raise StoreError(f"the store refused the write: {type(exc).__name__}: {exc}") from exc
        self._notify(stored)
        self.alarm.observe(stored)
        return stored

    def _store_writer(self) -> StoreWriter:
        if self._writer is None:
            self._writer = StoreWriter(self.store)
        return self._writer

    def _notify(self, record: DecisionRecord) -> None:
        # each observer on its own: one that raises must neither undo the
        # stored decision nor keep the others from seeing it
        for impl in self.registry.pm.hook.dupcheck_decision_made.get_hookimpls():
            try:
                impl.function(record=record)
            except Exception:
                log.exception("dupcheck_decision_made of plugin %s failed", impl.plugin_name)

    # --- many leads -----------------------------------------------------

    async def run(self, items: AsyncIterator[tuple[int, Mapping[str, Any] | None, str | None]], *,
                  concurrency: int = DEFAULT_CONCURRENCY,
                  on_record: Callable[[DecisionRecord], Awaitable[None] | None] | None = None,
                  source: str | None = None, check_dup: int = 0, check_dnc: bool = False) -> Summary:
        """Decide every item ``(row, lead or None, error or None)`` with at
        most ``concurrency`` leads in flight; memory stays flat. ``source``
        names the lead file: the store then refuses to decide a row twice.
        ``check_dup``/``check_dnc``: Convoso's local checks (see :meth:`decide`)."""
        loop = asyncio.get_running_loop()
        summary = Summary()
        started = loop.time()
        handoff = _Handoff(concurrency * 2)

        async def worker() -> None:
            buffered, take, wait = handoff.items, handoff.take, handoff.wait  # looked up once, not per lead
            decide, add = self.decide, summary.add
            while True:
                item = take() if buffered else await wait()
                if item is None:
                    return
                row, lead, error = item
                intake = self.workflow.malformed(lead, error) if error else lead
                try:
                    record = await decide(intake, source_row=row, source=source, check_dup=check_dup,
                                          check_dnc=check_dnc)
                except CancelledAfterCommit as cancelled:  # stored as the run was cancelled: counted, in --out
                    add(cancelled.record)
                    if on_record is not None:
                        res = on_record(cancelled.record)
                        if asyncio.iscoroutine(res):
                            await res
                    raise
                add(record)
                if on_record is not None:
                    res = on_record(record)
                    if res is not None and asyncio.iscoroutine(res):  # the usual writer returns None
                        await res

        async def feed() -> None:
            put = handoff.put
            async for item in items:
                room = put(item)
                if room is not None:
                    await room
            for _ in range(workers):
                room = put(None)
                if room is not None:
                    await room

        workers = max(1, concurrency)
        # a batch job: a lead's commit may wait a moment for others (fewer, bigger transactions)
        gathered = self._store_writer().gather(workers) if self.store is not None else None
        try:
            # a failing worker (the store refused a write) cancels the rest: the run stops loudly
            async with asyncio.TaskGroup() as tg:
                for _ in range(workers):
                    tg.create_task(worker())
                tg.create_task(feed())
        finally:
            summary.elapsed_s = loop.time() - started
            if gathered is not None and self._writer is not None:
                self._writer.gather(gathered)
        return summary

    async def aclose(self) -> None:
        if self._closing:
            await asyncio.gather(*self._closing)
        for workflow in list(self._retired):  # still held at shutdown: nothing will release them now
            await workflow.aclose()
        self._retired.clear()
        await self.workflow.aclose()
        loop = asyncio.get_running_loop()
        if self._guard is not None:
            # held until every queued write has landed (a lead's phone is free to other processes once
            # it is stored), then closed in this loop, which watches its connection (uvloop aborts on a
            # socket closed under it from close_store's thread)
            await loop.run_in_executor(None, self._close_writer)
            await self._guard.aclose()
        await loop.run_in_executor(None, self.close_store)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close_store(self) -> None:
        """Finish every queued write, then close the store. Synchronous, so a
        host whose event loop is already gone (a second Ctrl-C) can still
        keep its decisions; calling it again does nothing."""
        self._close_writer()
        if self.store is not None:
            self.store.close()
            self.store = None

    async def __aenter__(self) -> "Host":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


class _Handoff:
    """run()'s items, from its one feed to its workers: a bounded FIFO that
    costs less per item than ``asyncio.Queue`` (no task accounting, no
    coroutine per put or get) and wakes the feed once the buffer is half
    empty, not once per item taken."""

    def __init__(self, limit: int):
        self.items: deque = deque()
        self.limit = max(2, limit)
        self._idle: deque[asyncio.Future] = deque()  # workers waiting for an item (the buffer is empty)
        self._room: asyncio.Future | None = None  # the feed's wait for room (the buffer is full)

    def put(self, item: Any) -> asyncio.Future | None:
        """Hand ``item`` to a waiting worker, else buffer it; a future to
        await before the next put when the buffer is full."""
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():  # a cancelled worker waits no more
                waiter.set_result(item)
                return None
        self.items.append(item)
        if len(self.items) < self.limit:
            return None
        self._room = asyncio.get_running_loop().create_future()
        return self._room

    def take(self) -> Any:
        """The oldest buffered item (there is one)."""
        item = self.items.popleft()
        room = self._room
        if room is not None and len(self.items) <= self.limit // 2:
            self._room = None
            if not room.done():
                room.set_result(None)
        return item

    async def wait(self) -> Any:
        """The next item, when none is buffered."""
        if self.items:
            return self.take()
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        return await waiter


def same_rows(old: Workflow, new: Workflow) -> dict[int, int]:
    """Row number in ``old``'s deciding table -> the number of the same row in
    ``new``'s (a row that moved; its name aside), for rows ``new`` still has."""
    def rows(workflow: Workflow) -> list:
        return [replace(r, index=0, name=None) for r in workflow.check.settings.rules] if workflow.check else []

    out: dict[int, int] = {}
    new_rows = rows(new)
    for i, rule in enumerate(rows(old)):
        j = next((j for j, other in enumerate(new_rows) if j not in out.values() and other == rule), None)
        if j is not None:
            out[i] = j
    return out


async def aiter_items(items: Iterable) -> AsyncIterator:
    for item in items:
        yield item
