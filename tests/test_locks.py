"""Per-key locks (one per phone): FIFO, forgotten when free, and a waiter
cancelled before or after its turn neither blocks the key nor takes it twice.
A lead cancelled while its write is queued keeps its phone's lock until the
write has landed (the local check of the next lead must see it)."""

from __future__ import annotations

import asyncio
import threading

from dupcheck_plugin import hookimpl
from dupcheck_plugin.host import Host, KeyedLocks
from dupcheck_plugin.store.sqlite import SqliteStore
from dupcheck_plugin.types import CrmAnswer, CrmNode, NodeType

from test_engine import custom_node_workflow, registry_with


def test_an_uncontended_key_is_held_at_once_and_forgotten_on_release():
    async def main():
        locks = KeyedLocks()
        assert locks.take("a") is None and locks.take("b") is None  # no wait: held now
        assert len(locks) == 2
        locks.release("a")
        locks.release("b")
        assert len(locks) == 0

    asyncio.run(main())


def test_waiters_take_the_key_in_arrival_order():
    async def main():
        locks, order = KeyedLocks(), []
        assert locks.take("k") is None
        started = [asyncio.Event() for _ in range(4)]

        async def waiter(i):
            started[i].set()
            async with locks.hold("k"):
                order.append(i)

        tasks = []
        for i in range(4):
            tasks.append(asyncio.create_task(waiter(i)))
            await started[i].wait()  # each queued before the next starts
        locks.release("k")
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3] and len(locks) == 0

    asyncio.run(main())


def test_a_waiter_cancelled_before_its_turn_gives_it_up():
    async def main():
        locks, order = KeyedLocks(), []
        assert locks.take("k") is None
        queued = asyncio.Event()

        async def waiter(i):
            if i == 1:
                queued.set()
            async with locks.hold("k"):
                order.append(i)

        first = asyncio.create_task(waiter(0))
        second = asyncio.create_task(waiter(1))
        await queued.wait()
        await asyncio.sleep(0)  # both are waiting now
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        locks.release("k")
        await second
        assert order == [1] and first.cancelled() and len(locks) == 0

    asyncio.run(main())


def test_a_waiter_cancelled_once_given_its_turn_passes_the_key_on():
    async def main():
        locks, order = KeyedLocks(), []
        assert locks.take("k") is None
        first_turn = locks.take("k")
        second = asyncio.create_task(locks.acquire("k"))
        first = asyncio.create_task(locks.wait("k", first_turn))
        await asyncio.sleep(0)  # both wait
        locks.release("k")  # the first waiter's turn: given...
        first.cancel()  # ...and cancelled before it ran
        await asyncio.gather(first, return_exceptions=True)
        await second  # the key went on to the second waiter
        order.append("second")
        locks.release("k")
        assert first.cancelled() and order == ["second"] and len(locks) == 0

    asyncio.run(main())


class _GatedStore(SqliteStore):
    """A store whose writes wait until the test lets them through."""

    def __init__(self, path):
        super().__init__(path)
        self.entered, self.go = threading.Event(), threading.Event()

    def apply(self, commits):
        self.entered.set()
        assert self.go.wait(30)
        return super().apply(commits)


class _InstantCrm(CrmNode):
    def __init__(self, node_id, config, build):
        pass

    async def run(self, lead):
        return CrmAnswer(status_code=200, headers={}, body={"total": 0}, latency_ms=0.0)


class _NodePlugin:
    @hookimpl
    def dupcheck_register_node_types(self, register):
        register(NodeType(name="instant_crm", config_schema={"type": "object"}, factory=_InstantCrm,
                          output="crm_answer"))


def test_a_lead_cancelled_while_its_write_is_queued_holds_its_phone_until_stored(tmp_path):
    wf = custom_node_workflow(tmp_path, "instant_crm", "{}")
    store = _GatedStore(tmp_path / "d.db")
    host = Host.open(str(wf), store=store, registry=registry_with(_NodePlugin()))

    async def main():
        async with host:
            task = asyncio.create_task(host.decide({"phone_number": "5550100401"}, source_row=1))
            await asyncio.to_thread(store.entered.wait, 30)  # the write is with the store now
            task.cancel()
            for _ in range(5):
                await asyncio.sleep(0)
            assert not task.done() and len(host.phone_locks) == 1  # still waiting for its write
            store.go.set()
            try:
                await task
            except asyncio.CancelledError:
                pass
            assert task.cancelled() and len(host.phone_locks) == 0
            # the lead was stored, once
            total, records = store.search_decisions()
            assert total == 1 and records[0]["action"] == "created" and records[0]["lead_id"] is not None

    asyncio.run(main())
