"""Read a CRM's remaining-quota headers (pure).

- HubSpot: ``X-HubSpot-RateLimit-Remaining`` with ``-Interval-Milliseconds``,
  ``-Secondly-Remaining``, ``-Daily`` and ``-Daily-Remaining``.
- Salesforce: ``Sforce-Limit-Info: api-usage=USED/LIMIT`` (rolling 24 h).
- GoHighLevel: ``X-RateLimit-Remaining`` with ``X-RateLimit-Interval-Milliseconds``,
  ``X-RateLimit-Limit-Daily`` and ``X-RateLimit-Daily-Remaining``.
- Pipedrive and others: ``X-RateLimit-Remaining`` with ``X-RateLimit-Reset`` (seconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SFORCE = re.compile(r"api-usage=(\d+)/(\d+)")
# every header read_quota looks at starts with one of these (lower case)
_PREFIXES = ("x-hubspot-ratelimit", "x-ratelimit", "sforce-limit-info")


@dataclass(frozen=True)
class Quota:
    window_remaining: int | None = None  # requests left in the CRM's short window
    window_resets_in: float | None = None  # seconds until that window reopens
    daily_used: int | None = None
    daily_limit: int | None = None


def _int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(float(str(value).strip()))
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


_NO_QUOTA = Quota()


def read_quota(headers: Any) -> Quota:
    """What the answer's headers say about the quota (a header-name-insensitive mapping)."""
    get = getattr(headers, "get", None)
    if get is None:
        return _NO_QUOTA
    keys = getattr(headers, "keys", None)
    if keys is not None and not any(name.lower().startswith(_PREFIXES) for name in keys()):
        return _NO_QUOTA  # most answers say nothing about the quota: one pass over the names, no lookups
    remaining, resets, used, limit = None, None, None, None
    for prefix in ("X-HubSpot-RateLimit", "X-RateLimit"):
        r = _int(get(f"{prefix}-Remaining"))
        if r is not None:
            remaining = r
            ms = _float(get(f"{prefix}-Interval-Milliseconds"))
            resets = ms / 1000 if ms is not None else _float(get(f"{prefix}-Reset"))
            break
    if remaining is None:
        r = _int(get("X-HubSpot-RateLimit-Secondly-Remaining"))
        if r is not None:
            remaining, resets = r, 1.0
    sforce = get("Sforce-Limit-Info")
    m = _SFORCE.search(sforce) if sforce else None
    if m:
        used, limit = int(m.group(1)), int(m.group(2))
    else:
        for daily, left in (("X-HubSpot-RateLimit-Daily", "X-HubSpot-RateLimit-Daily-Remaining"),
                            ("X-RateLimit-Limit-Daily", "X-RateLimit-Daily-Remaining")):
            lim, rem = _int(get(daily)), _int(get(left))
            if lim and rem is not None:
                used, limit = lim - rem, lim
                break
    return Quota(remaining, resets, used, limit)
