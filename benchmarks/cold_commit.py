"""What one lead's commit costs when the machine is busy, and when it has been idle.

``python -m benchmarks.cold_commit [N]`` (not part of ``make bench``): the SQLite
store stores ``N`` commits of one created lead each (a lead row and a decision
record of about 1.2 KB, one transaction each, as ``serve`` stores an insert),
first back to back, then with the thread asleep 5 ms between them (as a paced
``serve`` is between requests), alternated x3, and prints the time a commit took
(p50/p90) in each. The work is the same; the difference is what a core that
was idle costs (caches, TLB, frequency): why a paced ``serve`` request costs
several times the CPU of a saturated one on these machines.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from dupcheck_plugin.store.contract import Commit, NewLead
from dupcheck_plugin.store.sqlite import SqliteStore

IDLE_S = 0.005
_RECORD_PAD = "x" * 900  # a decision record is about 1.2 KB of JSON (its request, its answer)


def _commit(i: int) -> Commit:
    phone = f"+1555{(i * 7_919) % 10_000_000:07d}"  # spread over the phone index, as real leads are
    record = {"workflow": "cold", "phone_e164": phone, "action": "created", "decided_at": "2026-11-29T02:28:57.353+00:00",
              "request": {"url": _RECORD_PAD}, "lead_id": None}
    lead = NewLead(phone, phone[2:], "1", "1000", "NEW", "F", "L", None, {"phone_number": phone[2:]})
    return Commit(record, lead)


def timed(store: SqliteStore, commits: list[Commit], idle_s: float) -> list[float]:
    """Seconds each commit took to store, one transaction each, ``idle_s`` asleep between them."""
    took = []
    for commit in commits:
        if idle_s:
            time.sleep(idle_s)
        started = time.perf_counter()
        store.apply_stored([commit])
        took.append(time.perf_counter() - started)
    return took


def main(n: int = 1000) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = SqliteStore(Path(d) / "cold.db")
        timed(store, [_commit(i) for i in range(200)], 0)  # warm: the schema read, the first pages
        runs: dict[str, list[float]] = {"back to back": [], f"{IDLE_S * 1000:g} ms idle between": []}
        first = 1_000
        for _ in range(3):
            for (label, took), idle in zip(runs.items(), (0, IDLE_S)):
                took += timed(store, [_commit(first + i) for i in range(n)], idle)
                first += n
        store.close()
    print(f"one commit of one lead (SQLite store, one transaction each), {n:,} commits x3 alternated:")
    p50 = {}
    for label, took in runs.items():
        took.sort()
        p50[label] = statistics.median(took)
        print(f"  {label:22} p50 {p50[label] * 1e6:7.1f} us   p90 {took[int(len(took) * 0.9)] * 1e6:7.1f} us")
    cold, warm = p50[f"{IDLE_S * 1000:g} ms idle between"], p50["back to back"]
    print(f"  after an idle wait: {cold / warm:.2f}x the time of a commit back to back")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
