"""The ``$`` keys an adaptor's tables read as directives, and the two mistakes
``check`` tells about them. Both would otherwise reach the CRM unnoticed:

- a batch directive (``$each``, ``$join``, ...) in ``[request]``: a single
  request has none of them, so it sends the key to the CRM as it is;
- a misspelt directive (``$whenn``): sent as a key too, and its effect lost
  (the object it should drop is always sent).

Any other ``$`` key is the CRM's own (OData's ``$filter``, a query's ``$in``)
and is left alone: only a key within a typo of a directive is reported.
"""

from __future__ import annotations

from typing import Any, Iterator

from ..config.problems import Problem
from ..config.suggest import did_you_mean

REQUEST_DIRECTIVES = frozenset({"$when"})
BATCH_DIRECTIVES = frozenset({"$each", "$when", "$join", "$concat", "$prefix", "$suffix", "$omit_if_empty"})


def directive_problems(value: Any, path: tuple, allowed: frozenset[str], source: str) -> list[Problem]:
    """The misplaced and misspelt directives in ``value`` (a table at ``path``)
    where the directives ``allowed`` apply."""
    problems = []
    for where, key in _dollar_keys(value, path):
        if key in allowed:
            continue
        if key in BATCH_DIRECTIVES:
            problems.append(Problem(source, where, f"{key!r} works under [batch] only: this request would send "
                                    "it to the CRM as it is", "batch_directive", at_key=True))
            continue
        meant = did_you_mean(key, allowed)
        if meant is not None:
            problems.append(Problem(source, where, f"{key!r} is not a directive: the CRM would get it as a key",
                                    "unknown_directive", suggestion=meant, at_key=True))
    return problems


def _dollar_keys(value: Any, path: tuple) -> Iterator[tuple[tuple, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and k.startswith("$"):
                yield path + (k,), k
            yield from _dollar_keys(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _dollar_keys(v, path + (i,))
