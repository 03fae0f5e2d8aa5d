"""A record's ``decided_at``: UTC, ISO 8601 with milliseconds, exactly as
``datetime.isoformat(timespec="milliseconds")`` writes it (cut, not rounded),
though the date and time of day are formatted once per second and the
whole text once per millisecond."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from dupcheck_plugin.engine.record import now_iso


def _reference(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=rest // 1000)
    return moment.isoformat(timespec="milliseconds")


def test_now_iso_writes_what_isoformat_writes_across_seconds_and_days(monkeypatch):
    base = 1_767_225_599 * 1_000_000_000  # 2025-12-31T23:59:59Z: the next second is a new day and year
    moments = [base, base + 1_000_000, base + 999_999_999, base + 1_000_000_000, base + 1_000_999_999,
               base + 86_400_123_456_789, base + 5_000_000, base + 1_001_000_000,  # back in time too
               base + 1_001_999_999, base + 1_002_000_000,  # the same millisecond, then the next
               base + 2_002_000_000]  # the same millisecond of the next second
    for ns in moments:
        monkeypatch.setattr(time, "time_ns", lambda ns=ns: ns)
        assert now_iso() == _reference(ns), ns
    assert _reference(base + 999_999_999).endswith("23:59:59.999+00:00")  # cut, not rounded up


def test_now_iso_is_now():
    before = datetime.now(timezone.utc).replace(microsecond=0)
    stamp = datetime.fromisoformat(now_iso())
    after = datetime.now(timezone.utc)
    assert stamp.tzinfo is not None and before <= stamp <= after
