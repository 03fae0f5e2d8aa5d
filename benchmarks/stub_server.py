"""A minimal CRM stub for client-side benchmarks: a fixed answer, nothing else.

``crm-sim`` parses every request and searches its contacts (several hundred µs
of server CPU per request); a client benchmark against it measures the
simulator as much as the client. This stub answers every request with the
same bytes after ``--latency-ms``, in its own process, so the client under
test and the bare-aiohttp baseline meet the same cheap server.

    python -m benchmarks.stub_server --port 0 --latency-ms 50 [--answer JSON]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket

from aiohttp import web

# an empty answer in HubSpot's search shape (also a valid "nothing found" for the rules)
DEFAULT_ANSWER = {"total": 0, "results": []}


def make_app(answer: bytes, latency_s: float) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        if latency_s:
            await asyncio.sleep(latency_s)
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--answer", default=json.dumps(DEFAULT_ANSWER), help="the JSON body of every answer")
    args = p.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", args.port))
    sock.listen(4096)
    print(f"stub listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    web.run_app(make_app(args.answer.encode(), args.latency_ms / 1000), sock=sock, print=None,
                access_log=None, backlog=4096)


if __name__ == "__main__":
    main()
