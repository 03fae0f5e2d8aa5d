"""Leads per second through the whole pipeline (render, call, decide, store,
record) against the simulator, next to bare aiohttp requests to the same
simulator in the same run: the difference is dupcheck's per-lead overhead."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from dupcheck_plugin.engine.runner import Engine, aiter_items

from .bench_transport import aiohttp_rate
from .common import random_leads
from .sim_process import simulator


async def pipeline_rate(url: str, n: int, concurrency: int, db: Path) -> float:
    os.environ.setdefault("HUBSPOT_TOKEN", "bench")
    leads = random_leads(n)
    engine = Engine.open("hubspot_dupcheck", db=str(db), crm_url=url, max_connections=concurrency)
    async with engine:
        t0 = time.perf_counter()
        summary = await engine.run(aiter_items((i, lead, None) for i, lead in enumerate(leads)),
                                   concurrency=concurrency)
        elapsed = time.perf_counter() - t0
    assert summary.total == n and not summary.errors, summary.as_json()
    return n / elapsed


def run(n: int = 3000) -> list[dict]:
    out = []
    for latency, concurrency in ((0, 64), (50, 64), (50, 256)):
        with simulator("--latency-ms", str(latency)) as url, tempfile.TemporaryDirectory() as tmp:
            raw = asyncio.run(aiohttp_rate(url, n, concurrency))
            ours = asyncio.run(pipeline_rate(url, n, concurrency, Path(tmp) / "bench.db"))
        out.append({"latency_ms": latency, "in_flight": concurrency, "raw": raw, "pipeline": ours,
                    "overhead_us": (1 / ours - 1 / raw) * 1e6 * 1})
    return out


def main() -> None:
    print("whole pipeline vs bare aiohttp requests, same simulator, same run:")
    for r in run():
        print(f"  CRM latency {r['latency_ms']:>3} ms, {r['in_flight']:>3} in flight: "
              f"bare {r['raw']:7.0f} req/s, pipeline {r['pipeline']:7.0f} leads/s "
              f"({r['pipeline'] / r['raw']:.2f}x); per-lead overhead {r['overhead_us']:.0f} us of wall time")


if __name__ == "__main__":
    main()
