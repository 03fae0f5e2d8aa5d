"""The template sandbox: what a request template may do and what one render may cost (pure).

Jinja's ``ImmutableSandboxedEnvironment`` keeps templates away from Python's
internals; it does not bound cost. A template that loops 10^10 times, or
builds a gigabyte string, would freeze the process (``serve`` answers
nothing while it runs). So every render carries a :class:`Budget`:

- loops: at most :data:`MAX_LOOP_ITERATIONS` iterations, all loops together;
- size: no string or list longer than :data:`MAX_TEXT` is built by ``*``,
  ``+``, ``~``, ``%``, a call or a filter (checked *before* the big ones are
  built where the size can be told in advance), and the output of one
  render is at most :data:`MAX_TEXT` characters;
- CPU time: at most :data:`MAX_CPU_SECONDS` per render, a backstop checked
  at every loop iteration, call and filter (thread CPU time, so a busy
  machine does not fail a cheap render, less the time the garbage collector
  ran meanwhile: a full collection of a busy ``serve`` heap can take tens of
  milliseconds, and it is not the template's doing).

A template over budget fails with :class:`TemplateCostError`: that lead's
render fails (its record says why); ``check`` renders every leaf once with
a sample lead, so a template that is over budget on its own is refused
before anything runs.
"""

from __future__ import annotations

import gc
import math
import re
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

from jinja2 import nodes, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from ..errors import DupcheckError

MAX_LOOP_ITERATIONS = 10_000
MAX_TEXT = 256 * 1024
MAX_CPU_SECONDS = 0.05
MAX_INT_BITS = 4096  # a number a template computes; phones and ids need far fewer

LOOP_FILTER = "_dupcheck_loop"
SIZE_FILTER = "_dupcheck_size"

# a %-format or str.format width or precision that would build a huge string
_PERCENT_WIDTH = re.compile(r"%[-#0 +]*(\d+)?(?:\.(\d+))?")
_BRACE_WIDTH = re.compile(r"\{[^{}]*?(\d{7,})[^{}]*\}")


class TemplateCostError(DupcheckError, ValueError):
    """A render went over its budget (loop iterations, size, CPU time)."""


class _GcClock:
    """Thread CPU time spent in the garbage collector, all collections together."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.total += time.thread_time() - self._started


_gc_clock = _GcClock()
gc.callbacks.append(_gc_clock)


class Budget:
    """What one render has spent so far."""

    __slots__ = ("iterations", "started", "gc_started", "wall_started")

    def __init__(self) -> None:
        self.iterations = 0
        self.wall_started = time.perf_counter()
        self.started = time.thread_time()
        self.gc_started = _gc_clock.total

    def tick(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_LOOP_ITERATIONS:
            raise TemplateCostError(f"more than {MAX_LOOP_ITERATIONS} loop iterations in one render")
        if not self.iterations & 63:
            self.check_time()

    def check_time(self) -> None:
        # A thread's CPU time cannot grow faster than the wall clock: while the render has
        # taken less than the budget in wall time (a cheap clock), it is within it in CPU
        # time; only past that is the thread's CPU time (a system call) read.
        if time.perf_counter() - self.wall_started <= MAX_CPU_SECONDS:
            return
        spent = time.thread_time() - self.started - (_gc_clock.total - self.gc_started)
        if spent > MAX_CPU_SECONDS:
            raise TemplateCostError(f"the render took more than {MAX_CPU_SECONDS * 1000:.0f} ms of CPU time")


def budget_of(context: Context) -> Budget:
    # EvalContext is made per render and documented as the place for extension state
    budget = getattr(context.eval_ctx, "dupcheck_budget", None)
    if budget is None:
        budget = context.eval_ctx.dupcheck_budget = Budget()
    return budget


def check_size(value: Any, what: str = "a value") -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict, set)) and len(value) > MAX_TEXT:
        raise TemplateCostError(f"{what} longer than {MAX_TEXT} would be built")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateCostError(f"a number of more than {MAX_INT_BITS} bits would be built")
    return value


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else None


# filters and str methods whose number arguments are widths or counts
_WIDTH_TAKERS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "indent", "wordwrap", "truncate",
                           "batch", "slice", "do_center", "do_indent", "do_wordwrap", "do_truncate"})


def _check_args(args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse a huge count or width before it is used (``center(10**9)``)."""
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_TEXT:
            raise TemplateCostError(f"the argument {arg} is larger than {MAX_TEXT}")


def _check_format(fmt: Any) -> None:
    if not isinstance(fmt, str):
        return
    for match in _PERCENT_WIDTH.finditer(fmt):
        for number in match.groups():
            if number and int(number) > MAX_TEXT:
                raise TemplateCostError(f"a format width of {number} is larger than {MAX_TEXT}")
    if _BRACE_WIDTH.search(fmt):
        raise TemplateCostError(f"a format width larger than {MAX_TEXT}")


def _check_replace(value: Any, args: tuple, kwargs: Mapping[str, Any]) -> None:
    old, new = (list(args) + [None, None])[:2]
    if isinstance(value, str) and isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        if len(value) + (value.count(old) * (len(new) - len(old))) > MAX_TEXT:
            raise TemplateCostError(f"the replacement would build a text longer than {MAX_TEXT}")


def _check_join(value: Any) -> None:
    if isinstance(value, (list, tuple)):
        total = sum(len(x) for x in value if isinstance(x, str))
        if total > MAX_TEXT:
            raise TemplateCostError(f"the join would build a text longer than {MAX_TEXT}")


def _precheck(name: str, value: Any, args: tuple, kwargs: Mapping[str, Any], method: bool = False) -> None:
    """``value`` is the filtered value, or the object whose method ``name`` is called."""
    if name in _WIDTH_TAKERS:
        _check_args(args, kwargs)
    if name == "replace":
        _check_replace(value, args, kwargs)
    elif name == "join":
        _check_join(args[0] if method and args else value)
    elif name in ("format", "format_map"):
        _check_format(value)


_PRECHECKED = _WIDTH_TAKERS | {"replace", "join", "format", "format_map"}


def _budgeted_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    wants = getattr(getattr(func, "jinja_pass_arg", None), "name", None)
    what = f"the filter {name!r} made a value"
    if wants is None and name not in _PRECHECKED:
        # the common case (dupcheck's filters, most of Jinja's) without the branches below
        @pass_context
        def plain(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
            budget_of(context).check_time()
            result = func(value, *args, **kwargs)
            if type(result) is str and len(result) <= MAX_TEXT:
                return result
            return check_size(result, what)

        plain.__name__ = getattr(func, "__name__", name)
        return plain

    @pass_context
    def wrapper(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget_of(context).check_time()
        _precheck(name, value, args, kwargs)
        if wants == "context":
            result = func(context, value, *args, **kwargs)
        elif wants == "eval_context":
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif wants == "environment":
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        return check_size(result, f"the filter {name!r} made a value")

    wrapper.__name__ = getattr(func, "__name__", name)
    return wrapper


@pass_context
def _loop_filter(context: Context, iterable: Any) -> Iterator[Any]:
    budget = budget_of(context)
    for item in iterable:
        budget.tick()
        yield item


@pass_context
def _size_filter(context: Context, value: Any) -> Any:
    return check_size(value, "a text")


class _Instrument(NodeTransformer):
    """Route every loop through the iteration budget and every ``~`` through the size check."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, LOOP_FILTER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        return nodes.Filter(node, SIZE_FILTER, [], [], None, None, lineno=node.lineno)


def instrument(ast: nodes.Template) -> nodes.Template:
    return _Instrument().visit(ast)


def _pow_bits(left: Any, right: Any) -> float:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        return right * math.log2(abs(left))
    return 0.0


class BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with a cost bound on loops, operators, calls and filters."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plain_filters: dict[str, Callable[..., Any]] = {}
        self.filters[LOOP_FILTER] = _loop_filter
        self.filters[SIZE_FILTER] = _size_filter

    def add_filters(self, filters: Mapping[str, Callable[..., Any]]) -> None:
        self.filters.update(filters)
        for name, func in list(self.filters.items()):
            if name not in (LOOP_FILTER, SIZE_FILTER):
                self.plain_filters[name] = func  # the function itself, before the budget wraps it
                self.filters[name] = _budgeted_filter(name, func)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget_of(context).check_time()
        if operator == "**" and _pow_bits(left, right) > MAX_INT_BITS:
            raise TemplateCostError(f"{left} ** {right} is larger than {MAX_INT_BITS} bits")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                size = _sized(seq)
                if size is not None and isinstance(n, int) and size * n > MAX_TEXT:
                    raise TemplateCostError(f"a repetition would build a value longer than {MAX_TEXT}")
        if operator == "+":
            a, b = _sized(left), _sized(right)
            if a is not None and b is not None and a + b > MAX_TEXT:
                raise TemplateCostError(f"a concatenation would build a value longer than {MAX_TEXT}")
        if operator == "%" and isinstance(left, str):
            _check_format(left)
        return check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget_of(__context).check_time()
        name = getattr(__obj, "__name__", "")
        _precheck(name, getattr(__obj, "__self__", None), args, kwargs, method=True)
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        except OverflowError as exc:  # range() longer than the sandbox's MAX_RANGE
            raise TemplateCostError(str(exc)) from None
        return check_size(result, f"the call {name or 'of a function'} made a value")


def bounded_join(chunks: Iterable[str], budget: Budget | None = None) -> str:
    """The output of a render, refused once it grows past :data:`MAX_TEXT`."""
    out: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_TEXT:
            raise TemplateCostError(f"the rendered value is longer than {MAX_TEXT} characters")
        out.append(chunk)
    if budget is not None:
        budget.check_time()
    return "".join(out)
