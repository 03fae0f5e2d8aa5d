"""``async with within(seconds):`` -- ``asyncio.timeout(seconds)`` with one timer for many calls.

``asyncio.timeout`` arms a timer of its own for every call and cancels it after (on
uvloop a libuv timer started and stopped: ~5 us a call, 2-3% of a lead's CPU). The calls
of one event loop with the same timeout have their deadlines in the order they start:
one queue of them and one timer, armed for the oldest deadline of a call still running,
serve them all. What a call sees is ``asyncio.timeout``'s: when its deadline passes, its
task is cancelled, and the CancelledError leaving the block becomes TimeoutError unless
the task was cancelled by someone else as well.

A call that has left its block leaves the queue once every older call has: behind one long
call, the queue would hold every call of the timeout's span (rate x timeout: 150,000 at
5,000 calls/s and 30 s), so it is compacted once mostly made of calls that have left.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from contextvars import ContextVar
from typing import Any

# a timer may fire this early (the loop's clock resolution); a deadline within it is due
_RESOLUTION = 0.001
_COMPACT_FROM = 256  # a queue this long, and four times the calls still running, is compacted
# set, to the pool's size, in the task whose wait for a place in a connection pool was cut short (its
# deadline passed, or a cancel): its caller tells "no connection was free, nothing was sent" from
# "the CRM did not answer in time" (a transport sets it, the exchange reads and clears it)
POOL_WAIT_CUT: ContextVar[int | None] = ContextVar("dupcheck_pool_wait_cut", default=None)


class _Call:
    __slots__ = ("deadline", "task", "cancelling", "expired")

    def __init__(self, deadline: float, task: asyncio.Task, cancelling: int):
        self.deadline = deadline
        self.task: asyncio.Task | None = task  # None once the call has left its block
        self.cancelling = cancelling
        self.expired = False


class _Deadlines:
    """The running calls of one loop with one timeout, oldest first."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float):
        self.loop = loop
        self.seconds = seconds
        self.calls: collections.deque[_Call] = collections.deque()
        self.running = 0  # calls that have not left their block
        self.timer: asyncio.TimerHandle | None = None

    def start(self, task: asyncio.Task) -> _Call:
        calls = self.calls
        while calls and calls[0].task is None:  # the oldest ones that have left: the queue stays short
            calls.popleft()
        if len(calls) >= _COMPACT_FROM and len(calls) > 4 * self.running:  # a long call holds the head
            calls = self.calls = collections.deque(c for c in calls if c.task is not None)
        call = _Call(self.loop.time() + self.seconds, task, task.cancelling())
        calls.append(call)
        self.running += 1
        if self.timer is None:
            self.timer = self.loop.call_at(call.deadline, self._expire)
        return call

    def _expire(self) -> None:
        self.timer = None
        calls = self.calls
        due = self.loop.time() + _RESOLUTION
        while calls:
            call = calls[0]
            if call.task is not None:
                if call.deadline > due:
                    self.timer = self.loop.call_at(call.deadline, self._expire)
                    return
                call.expired = True
                call.task.cancel()
            calls.popleft()


class _Within:
    __slots__ = ("deadlines", "call")

    def __init__(self, deadlines: _Deadlines):
        self.deadlines = deadlines
        self.call: _Call | None = None

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a timeout is used inside a task")
        self.call = self.deadlines.start(task)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        call = self.call
        task, call.task = call.task, None  # left: the queue drops it
        self.deadlines.running -= 1
        if call.expired and task.uncancel() <= call.cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _Deadlines]] = weakref.WeakKeyDictionary()
_last: tuple[Any, dict[float, _Deadlines]] = (lambda: None, {})  # (a weak reference to a loop, its entry)


def within(seconds: float) -> _Within:
    """A context manager that cancels its block after ``seconds`` (see the module's docstring);
    use it in the running loop, once."""
    global _last  # pylint: disable=global-statement
    loop = asyncio.get_running_loop()
    if _last[0]() is loop:  # a run has one loop: no weak reference to make per call
        by_seconds = _last[1]
    else:
        by_seconds = _BY_LOOP.get(loop)
        if by_seconds is None:
            by_seconds = _BY_LOOP[loop] = {}
        _last = (weakref.ref(loop), by_seconds)
    deadlines = by_seconds.get(seconds)
    if deadlines is None:
        deadlines = by_seconds[seconds] = _Deadlines(loop, seconds)
    return _Within(deadlines)
