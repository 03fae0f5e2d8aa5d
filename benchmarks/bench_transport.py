"""HubSpot searches per second against the simulator: httpx's own transport
(baseline), httpx with the aiohttp transport (what dupcheck uses), bare aiohttp."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from .common import SEARCH_PATH, search_body
from .sim_process import simulator


async def _drive(n: int, in_flight: int, send) -> float:
    sem = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with sem:
            await send(search_body(f"+1555{2000000 + i}"))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t0)


async def httpx_rate(url: str, n: int, in_flight: int, transport: str) -> float:
    from dupcheck_plugin.http.client import make_client

    async with make_client(transport=transport, max_connections=in_flight) as client:
        async def send(body: bytes) -> None:
            r = await client.post(url + SEARCH_PATH, content=body, headers={"Content-Type": "application/json"})
            await r.aread()
            assert r.status_code == 200
        await _drive(200, in_flight, send)  # warm up connections
        return await _drive(n, in_flight, send)


async def aiohttp_rate(url: str, n: int, in_flight: int) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:
        async def send(body: bytes) -> None:
            async with session.post(url + SEARCH_PATH, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                assert r.status == 200
        await _drive(200, in_flight, send)
        return await _drive(n, in_flight, send)


def run(n: int = 3000, in_flight: int = 64) -> dict:
    with simulator() as url:
        base = asyncio.run(httpx_rate(url, n, in_flight, "httpx"))
        ours = asyncio.run(httpx_rate(url, n, in_flight, "aiohttp"))
        bare = asyncio.run(aiohttp_rate(url, n, in_flight))
    return {"httpx": base, "httpx+aiohttp": ours, "aiohttp": bare}


def main() -> None:
    r = run()
    base = r["httpx"]
    print("CRM calls per second, HubSpot search against the simulator (64 in flight):")
    for name, rate in r.items():
        print(f"  {name:<14} {rate:8.0f} req/s  ({rate / base:.2f}x httpx's own transport)")


if __name__ == "__main__":
    main()
