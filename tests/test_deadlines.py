"""http.deadlines.within: asyncio.timeout's behaviour with one timer for many calls."""

from __future__ import annotations

import asyncio

import pytest

from dupcheck_plugin.http.deadlines import within


def test_a_block_past_its_deadline_raises_timeout_error_and_the_task_goes_on():
    async def main():
        never = asyncio.Event()
        with pytest.raises(TimeoutError):
            async with within(0.01):
                await never.wait()
        task = asyncio.current_task()
        assert task.cancelling() == 0  # the cancel was taken back: the task is not being cancelled
        await asyncio.sleep(0)  # and it can await again
        return "went on"

    assert asyncio.run(main()) == "went on"


def test_only_the_calls_still_running_at_their_deadline_are_cancelled():
    async def main():
        never = asyncio.Event()
        quick = asyncio.Event()

        async def call(wait: asyncio.Event) -> str:
            try:
                async with within(0.05):
                    await wait.wait()
                    return "answered"
            except TimeoutError:
                return "timeout"

        # a stuck call first: the timer is armed for it; the others end before it fires
        stuck = asyncio.create_task(call(never))
        others = [asyncio.create_task(call(quick)) for _ in range(20)]
        await asyncio.sleep(0)
        quick.set()
        assert await asyncio.gather(*others) == ["answered"] * 20
        assert await stuck == "timeout"
        # a call that ended is not cancelled later, when its deadline passes
        async with within(0.05):
            await asyncio.sleep(0)
        assert await asyncio.sleep(0.2, "slept") == "slept"

    asyncio.run(main())


def test_a_cancel_from_outside_stays_a_cancel():
    async def main():
        entered = asyncio.Event()

        async def call():
            async with within(10):
                entered.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(call())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_cancel_from_outside_with_the_deadline_passed_is_not_turned_into_a_timeout():
    async def main():
        async def call():
            async with within(0.01):
                try:
                    await asyncio.Event().wait()
                finally:
                    # cancelled by the deadline; cancelled again from outside before the block ends
                    asyncio.current_task().cancel()
                    await asyncio.sleep(0)

        with pytest.raises(asyncio.CancelledError):
            await asyncio.create_task(call())

    asyncio.run(main())


def test_each_loop_and_each_timeout_has_its_own_timer():
    async def main(seconds: float):
        with pytest.raises(TimeoutError):
            async with within(seconds):
                await asyncio.Event().wait()
        async with within(seconds * 100):
            await asyncio.sleep(0)
        return True

    assert asyncio.run(main(0.01)) and asyncio.run(main(0.02))


def test_calls_that_ended_behind_a_long_call_do_not_pile_up():
    import tracemalloc

    async def main():
        never = asyncio.Event()

        async def stuck_call() -> str:
            try:
                async with within(2):
                    await never.wait()
            except TimeoutError:
                return "timeout"
            return "answered"

        stuck = asyncio.create_task(stuck_call())  # the head of the queue, running for 2 s
        await asyncio.sleep(0)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(5000):  # calls that end behind it, each with the same timeout
                async with within(2):
                    await asyncio.sleep(0)
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        # kept one by one they were ~80 bytes each (400 KB); compacted, a few hundred at most
        assert grown < 100_000, grown
        assert await stuck == "timeout"  # the head still times out after the compactions

    asyncio.run(main())
