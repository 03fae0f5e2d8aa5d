"""What ``PostgresStore.apply`` costs one network hop away: a throwaway
PostgreSQL (as the tests start it, fsync off), reached through a loopback
proxy that adds 1 ms each way (2 ms round trip) and counts the client's round
trips (Sync, Query and Flush messages, see ``dupcheck_plugin.dev.pg_proxy``).
For batches of 1, 16, 64 and 256 commits (a mix like a run's: created leads,
duplicates, a DNC row in ten) it prints round trips and socket writes per
batch and commits/s. Run by hand:

    .venv/bin/python -m benchmarks.bench_pg_store [DELAY_MS]
"""

from __future__ import annotations

import sys
import time

from dupcheck_plugin.dev.pg_proxy import PgProxy
from dupcheck_plugin.dev.postgres import USER, PostgresCluster
from dupcheck_plugin.engine.record import plan_commit
from dupcheck_plugin.store.contract import Commit
from dupcheck_plugin.store.postgres import PostgresStore

BATCH_SIZES = (1, 16, 64, 256)


def commit(i: int) -> Commit:
    """The i-th decision of a run: 6 in 10 create a lead, 1 in 10 puts the phone on the DNC list."""
    phone = f"+1555{2000000 + i:07d}"
    action = "created" if i % 10 < 6 else "duplicate"
    lead = {"phone_number": phone[2:], "phone_code": "1", "list_id": "100", "first_name": f"F{i}",
            "last_name": "L", "email": f"p{i}@example.com"}
    return plan_commit({
        "lead": lead, "phone_e164": phone, "rules_row": None if action == "created" else 1, "action": action,
        "decided_by": "rules_row", "status": "NEW" if action == "created" else None, "dnc_added": i % 10 == 9,
        "success": action == "created", "code": 200, "text": action, "crm": {"status_code": 200},
        "request": None, "decided_at": "2025-01-02T03:04:05.000+00:00", "workflow": "bench",
        "idempotency_key": f"k{i}"})


def main(delay_ms: float = 1.0) -> None:
    with PostgresCluster() as pg:
        pg.create_database("bench")
        with PgProxy("127.0.0.1", pg.port, delay_s=delay_ms / 1000) as proxy:
            url = f"postgresql://{USER}@127.0.0.1:{proxy.port}/bench?sslmode=disable&gssencmode=disable"
            with PostgresStore(url, pool_size=1) as store:
                print(f"PostgresStore.apply through a proxy adding {delay_ms:g} ms each way")
                print(f"{'batch':>6} {'round trips/batch':>18} {'writes/batch':>13} {'commits/s':>10}")
                seq = 0
                for size in BATCH_SIZES:
                    batches = max(8, 512 // size)
                    trips, writes = proxy.round_trips, proxy.client_writes
                    start = time.perf_counter()
                    for _ in range(batches):
                        store.apply([commit(seq + j) for j in range(size)])
                        seq += size
                    elapsed = time.perf_counter() - start
                    print(f"{size:>6} {(proxy.round_trips - trips) / batches:>18.1f} "
                          f"{(proxy.client_writes - writes) / batches:>13.1f} {size * batches / elapsed:>10.0f}")
                counts = store.counts()
                assert counts["decisions"] == seq, counts  # every commit stored
                print(f"stored: {counts}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
