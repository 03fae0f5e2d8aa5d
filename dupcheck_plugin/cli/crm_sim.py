"""`dupcheck crm-sim`: serve the CRM simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from .common import EXIT_INVALID, EXIT_OK


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "crm-sim",
        help="run the CRM simulator (HubSpot, Salesforce, Zoho, Pipedrive, GoHighLevel, generic JSON/form/XML search APIs over a contacts file)",
        description="A local HTTP server answering like CRMs' search APIs, over contacts from a CSV/JSON file, "
                    "with each vendor's real limits and fault knobs. Point a workflow at it with --crm-url. "
                    "Control: GET /_sim/stats, POST /_sim/reset, POST /_sim/knobs, /_sim/limits, /_sim/clock (JSON).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (0: a free port; the URL is printed first)")
    p.add_argument("--contacts", metavar="FILE", help="contacts CSV or JSON (default: the shipped examples/contacts.csv)")
    p.add_argument("--latency-ms", type=_non_negative, default=0.0, help="added delay per request")
    p.add_argument("--jitter-ms", type=_non_negative, default=0.0, help="plus a random 0..N ms")
    p.add_argument("--error-rate", type=_rate, default=0.0, help="share of requests answered 500/502/503")
    p.add_argument("--rate-limit-rate", type=_rate, default=0.0, help="share answered with the vendor's over-limit answer")
    p.add_argument("--retry-after", default="1", help="Retry-After seconds on over-limit answers (default 1)")
    p.add_argument("--timeout-rate", type=_rate, default=0.0, help="share of requests that hang --hang-ms first")
    p.add_argument("--hang-ms", type=_non_negative, default=30_000.0, help="how long a hanging request sleeps")
    p.add_argument("--seed", type=int, help="seed for reproducible faults")
    p.add_argument("--token", help="require this bearer/API key token (401 otherwise)")
    p.add_argument("--limits", choices=("real", "off"), default="real",
                   help="enforce each vendor's documented limits (default) or none at all")
    p.add_argument("--time-scale", type=_non_negative, default=None, metavar="N",
                   help="simulated seconds per real second (60: an hour of quota and token life in a minute; "
                        "0: the clock stands still until POST /_sim/clock); default 1")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                   help="set one limit (repeatable), e.g. salesforce_daily=500, hubspot_search_per_second=20, "
                        "zoho_token_lifetime=3, zoho_concurrency=off; names: see docs/crms.md")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..resources import shipped_dir
    from ..sim import ContactBook, Knobs, Limits
    from ..sim.limits import parse_assignments

    path = args.contacts or shipped_dir("examples") / "contacts.csv"
    try:
        book = ContactBook.load(path)
        knobs = Knobs(latency_ms=args.latency_ms, jitter_ms=args.jitter_ms, error_rate=args.error_rate,
                      rate_limit_rate=args.rate_limit_rate, retry_after=args.retry_after,
                      timeout_rate=args.timeout_rate, hang_ms=args.hang_ms, seed=args.seed, auth=args.token)
        changes = parse_assignments(args.limit)
        if args.time_scale is not None:
            changes["time_scale"] = args.time_scale
        limits = (Limits.real if args.limits == "real" else Limits.off)(**changes)
    except ValueError as exc:
        print(f"dupcheck crm-sim: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        asyncio.run(_serve(book, args.host, args.port, knobs, limits, str(path)))
    except OSError as exc:  # port in use, address not available...
        print(f"dupcheck crm-sim: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK


async def _serve(book, host: str, port: int, knobs, limits, source: str) -> None:
    from ..sim import run_simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with run_simulator(book, host, port, knobs, limits) as sim:
        print(f"listening on {sim.url}", flush=True)  # first line: callers read the URL from it
        on = {k: v for k, v in limits.as_dict().items() if v not in (None, False)}
        print(f"{len(book)} contacts from {source}; limits: {on}; routes:", file=sys.stderr)
        for route in sim.routes():
            print(f"  {route}", file=sys.stderr)
        print("stop with Ctrl-C", file=sys.stderr, flush=True)
        await stop.wait()
