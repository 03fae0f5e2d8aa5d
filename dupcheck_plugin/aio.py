"""The event loop of ``dupcheck run`` on the embedded engine: uvloop (libuv,
MagicStack) when it is installed, asyncio's own loop otherwise. A whole
``dupcheck run`` of the HubSpot bench workflow took 6% less CPU per lead on
uvloop (629 -> 588 us). ``DUPCHECK_LOOP=asyncio`` forces
asyncio's loop (to rule the loop out when something misbehaves).
(``serve`` takes uvloop through uvicorn's ``loop = "auto"``.)

``run --engine temporal`` keeps asyncio's loop: the Temporal SDK runs its own
machinery on the loop and is tested on asyncio's.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
from typing import Any, Coroutine, Mapping, TypeVar

T = TypeVar("T")
ENV = "DUPCHECK_LOOP"
CHOICES = ("auto", "asyncio", "uvloop")


def loop_problem(environ: Mapping[str, str] = os.environ) -> str | None:
    """What is wrong with ``DUPCHECK_LOOP``, if anything."""
    wanted = environ.get(ENV, "auto")
    if wanted not in CHOICES:
        return f"{ENV} must be one of {', '.join(CHOICES)}, not {wanted!r}"
    if wanted == "uvloop" and importlib.util.find_spec("uvloop") is None:
        return f"{ENV}=uvloop but uvloop is not installed"
    return None


def loop_name(environ: Mapping[str, str] = os.environ) -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop to run on (see the module docstring)."""
    if environ.get(ENV, "auto") == "asyncio" or importlib.util.find_spec("uvloop") is None:
        return "asyncio"
    return "uvloop"


def run(coro: Coroutine[Any, Any, T], *, allow_uvloop: bool = True, environ: Mapping[str, str] = os.environ) -> T:
    """``asyncio.run(coro)`` on the loop :func:`loop_name` picks (asyncio's
    unless ``allow_uvloop``: the Temporal engine)."""
    if not allow_uvloop or loop_name(environ) == "asyncio":
        return asyncio.run(coro)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def tune_gc(first_generation: int = 7000) -> None:
    """For a command that decides leads for a long time (``run``, ``serve``),
    called once everything lasting is loaded (modules, the workflow, the store).
    Frozen, the cyclic collector no longer walks what lives as long as the
    process; and a first generation of 7,000 rather than 700 objects: with
    hundreds of leads in flight, thousands of young objects (coroutines,
    frames, dicts) are alive at every collection, and with the default each
    was walked and promoted again and again. Measured: serve's collector CPU
    per insert at 200 connections 235 -> ~100 us, its longest pause ~60 ->
    ~20 ms; ``run`` 826 -> 748 us CPU per lead (both on a shared 2-core machine).
    ``first_generation``: ``run`` asks for more (see :data:`cli.run.RUN_GC_GEN0`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(first_generation, 10, 10)
