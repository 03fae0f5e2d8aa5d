"""The baseline client: bare aiohttp, one HubSpot search per row of a lead file.

A whole process, like ``dupcheck run``: it starts, reads the same CSV, sends
one request per row with ``--in-flight`` requests (and connections) at once,
and exits. No warm-up, as ``dupcheck run`` has none. Prints nothing on success.

    python -m benchmarks.bare_client URL LEADS.csv --in-flight 64
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys

import aiohttp

SEARCH_PATH = "/crm/v3/objects/contacts/search"


def search_body(phone: str) -> bytes:
    return json.dumps({"limit": 10, "filterGroups": [{"filters": [
        {"propertyName": "phone", "operator": "EQ", "value": phone}]}]}).encode()


async def drive(url: str, leads: str, in_flight: int) -> int:
    failed = 0
    queue: asyncio.Queue = asyncio.Queue(maxsize=in_flight * 2)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:
        async def worker() -> None:
            nonlocal failed
            while (phone := await queue.get()) is not None:
                async with session.post(url + SEARCH_PATH, data=search_body(phone), headers=headers) as r:
                    await r.read()
                    failed += r.status != 200

        async def feed() -> None:
            with open(leads, newline="") as f:
                for row in csv.DictReader(f):
                    await queue.put("+1" + row["phone_number"])
            for _ in range(in_flight):
                await queue.put(None)

        await asyncio.gather(feed(), *(worker() for _ in range(in_flight)))
    return failed


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("leads")
    p.add_argument("--in-flight", type=int, default=64)
    args = p.parse_args()
    failed = asyncio.run(drive(args.url, args.leads, args.in_flight))
    if failed:
        print(f"{failed} requests failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
