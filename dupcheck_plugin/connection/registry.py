"""Per-connection runtime objects shared by everything in the process.

Keyed by the CRM's origin and credentials (hashed: no secret is kept as a
key), and by event loop: asyncio primitives belong to one loop, and a
process that runs several loops one after the other (tests, ``demo``) gets
fresh state for each.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], Any]]" = weakref.WeakKeyDictionary()


def credentials_key(*parts: Any) -> str:
    """A stable key for ``parts`` (origin, auth headers, secrets) that reveals none of them."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def shared(kind: str, key: str, make: Callable[[], T]) -> T:
    """The running loop's ``kind`` object for ``key``, made on first use."""
    table = _by_loop.setdefault(asyncio.get_running_loop(), {})
    found = table.get((kind, key))
    if found is None:
        found = table[(kind, key)] = make()
    return found


def all_of(kind: str) -> list[Any]:
    """Every ``kind`` object of the running loop (none outside a loop)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return []
    return [v for (k, _), v in _by_loop.get(loop, {}).items() if k == kind]
