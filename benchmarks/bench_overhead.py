"""dupcheck's own per-lead cost, with the network taken out: the CRM is
httpx's MockTransport, so the baseline is one bare httpx request through the
same client stack, measured in the same run."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time

import httpx

from dupcheck_plugin.engine.runner import Engine

from .common import random_leads

ANSWER = json.dumps({"total": 0, "results": []}).encode()
URL = "https://api.hubapi.com/crm/v3/objects/contacts/search"


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=ANSWER, headers={"content-type": "application/json"})


async def _bare(n: int) -> float:
    async with httpx.AsyncClient(transport=httpx.MockTransport(_answer)) as client:
        t0 = time.perf_counter()
        for i in range(n):
            r = await client.post(URL, json={"limit": 10, "filterGroups": [{"filters": [{"value": str(i)}]}]})
            await r.aread()
        return (time.perf_counter() - t0) / n * 1e6


async def _pipeline(n: int, db: str) -> tuple[float, float]:
    os.environ.setdefault("HUBSPOT_TOKEN", "bench")
    engine = Engine.open("hubspot_dupcheck", db=db)
    engine.nodes["hubspot"]._client = httpx.AsyncClient(transport=httpx.MockTransport(_answer))
    leads = random_leads(n)
    async with engine:
        t0 = time.perf_counter()
        records = [await engine.evaluate(lead, i) for i, lead in enumerate(leads)]
        evaluate = (time.perf_counter() - t0) / n * 1e6
        t0 = time.perf_counter()
        await asyncio.gather(*(engine.commit(r) for r in records))
        commit = (time.perf_counter() - t0) / n * 1e6
    return evaluate, commit


def main(n: int = 3000) -> None:
    bare = asyncio.run(_bare(n))
    with tempfile.TemporaryDirectory() as tmp:
        evaluate, commit = asyncio.run(_pipeline(n, f"{tmp}/bench.db"))
    own = evaluate - bare + commit
    print("per-lead cost with the network taken out (httpx MockTransport as the CRM):")
    print(f"  baseline, one bare httpx request:              {bare:6.0f} us")
    print(f"  dupcheck evaluate (intake, render, call, rules): {evaluate:6.0f} us")
    print(f"  dupcheck store, batched (lead, DNC, record):     {commit:6.0f} us")
    print(f"  dupcheck's own share: {own:.0f} us per lead ({own / bare:.2f}x one bare httpx request; "
          f"{own / 1000:.2f}% of a 100 ms CRM round trip)")


if __name__ == "__main__":
    main()
