"""A quicker ``__init__`` for the frozen dataclasses made once or more per lead.

A frozen dataclass's generated ``__init__`` sets each field with its own
``object.__setattr__`` call (frozen: its ``__setattr__`` refuses), about
0.15 us a field: ``CrmAnswer``'s fourteen cost ~2.3 us, and a lead makes
several (``dataclasses.replace`` goes through ``__init__`` too). The
``__init__`` :func:`one_step_init` gives fills the instance's dict in one
call: the same parameters, defaults and keyword-only markers as the
dataclass's own (``tests/test_frozen.py`` holds the two equal), the class
still a frozen dataclass in every other way (``replace``, ``asdict``, ``==``,
attributes refused after construction).
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

T = TypeVar("T")


def one_step_init(cls: type[T]) -> type[T]:
    """Replace the ``__init__`` of frozen dataclass ``cls`` (no ``__slots__``,
    no ``__post_init__``, no ``default_factory``, every field in ``__init__``)."""
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    if (not cls.__dataclass_params__.frozen or "__slots__" in cls.__dict__  # type: ignore[attr-defined]
            or hasattr(cls, "__post_init__")
            or any(not f.init or f.default_factory is not dataclasses.MISSING for f in params)):
        raise TypeError(f"one_step_init does not fit {cls.__name__}")
    namespace: dict = {"_set": object.__setattr__}
    positional, keyword = [], []
    for f in params:
        if f.default is dataclasses.MISSING:
            text = f.name
        else:
            namespace[f"_default_{f.name}"] = f.default
            text = f"{f.name}=_default_{f.name}"
        (keyword if f.kw_only else positional).append(text)
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    fill = ", ".join(f"{f.name!r}: {f.name}" for f in params)
    exec(f"def __init__({signature}):\n    _set(self, '__dict__', {{{fill}}})\n", namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[misc]
    return cls
