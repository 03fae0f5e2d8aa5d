"""``dupcheck worker WORKFLOW --temporal HOST:PORT``: run lead workflows and
their activities (local check, CRM calls, store writes) for Temporal; and
the ``--engine temporal`` options ``serve`` and ``run`` share."""

from __future__ import annotations

import argparse
import asyncio
import logging

from .. import fdlimit
from ..config.problems import ConfigError
from ..errors import DupcheckError
from ..temporal.lead import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE  # plain names: no temporalio needed
from .common import EXIT_OK, EXIT_USAGE, fail, origin_url, report_config_error

TEMPORAL_EXTRA = "Temporal needs the optional extra: pip install 'dupcheck-plugin[temporal]'"


def host_port(value: str) -> str:
    """argparse type for --temporal: HOST:PORT."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (the Temporal frontend, e.g. 127.0.0.1:7233)")
    return value


def add_temporal_args(p: argparse.ArgumentParser, *, engine_choice: bool) -> None:
    if engine_choice:
        p.add_argument("--engine", choices=("embedded", "temporal"), default="embedded",
                       help="embedded: decide in this process (default); temporal: one Temporal workflow per lead, "
                            "decided by `dupcheck worker` processes (--temporal, --db postgresql://... shared)")
    p.add_argument("--temporal", type=host_port, metavar="HOST:PORT", help="the Temporal frontend")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="Temporal namespace (default: %(default)s)")
    p.add_argument("--task-queue", default=DEFAULT_TASK_QUEUE,
                   help="Temporal task queue of the lead workflows (default: %(default)s; CRM calls use QUEUE.crm)")


def temporal_usage_error(args) -> str | None:
    """Why --engine/--temporal do not fit together, or None."""
    if getattr(args, "engine", "temporal") == "temporal" and not args.temporal:
        return "--engine temporal needs --temporal HOST:PORT"
    if getattr(args, "engine", "temporal") == "embedded" and args.temporal:
        return "--temporal is for --engine temporal"
    return None


async def temporal_problem(args) -> str | None:
    """Why ``--engine temporal`` cannot work (the extra missing, Temporal
    unreachable, no such namespace), or None: asked before anything starts,
    so serve fails before it listens and run before it reads a lead."""
    try:
        from ..temporal.connect import check_reachable
    except ImportError:
        return TEMPORAL_EXTRA
    try:
        await check_reachable(args.temporal, args.namespace)
    except DupcheckError as exc:
        return str(exc)
    return None


def open_temporal_host(args):
    """The TemporalHost for serve/run (raises ConfigError, StoreError, ImportError)."""
    from ..temporal.client import TemporalHost

    return TemporalHost.open_temporal(args.workflow, target=args.temporal, namespace=args.namespace,
                                        task_queue=args.task_queue, db=args.db)


def register(sub) -> None:
    p = sub.add_parser("worker", help="run lead workflows for Temporal (serve/run --engine temporal start them)",
                       description="Poll a Temporal task queue: run one workflow per lead (local check, CRM call, "
                                   "rules, store write) for WORKFLOW. Run several, on several machines, against one "
                                   "Temporal cluster and one PostgreSQL (--db postgresql://...). SIGTERM stops it.")
    p.add_argument("workflow", help="a shipped workflow's name or a path (the same file serve/run name)")
    add_temporal_args(p, engine_choice=False)
    p.add_argument("--db", default="dupcheck.db",
                   help="the store the decisions land in: postgresql://USER@HOST:PORT/DB shared by every worker "
                        "and serve instance (default: ./dupcheck.db, one machine only)")
    p.add_argument("--crm-url", type=origin_url, help="replace scheme://host:port of the CRM URL (a sandbox, the simulator)")
    p.add_argument("--crm-rate", type=float, metavar="N",
                   help="the CRM's limit, requests per second across ALL workers of this task queue: Temporal's "
                        "task-queue activity rate limit, and each worker sends at most N/W in any second "
                        "(give every worker the same values; default: the rate the workflow's CRM connection "
                        "declares in its limits, else none)")
    p.add_argument("--crm-workers", type=int, default=1, metavar="W",
                   help="how many workers share --crm-rate (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=100, help="activities and workflow tasks in flight (default: %(default)s)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=main)


def main(args) -> int:
    if not args.temporal:
        return fail("dupcheck worker needs --temporal HOST:PORT", EXIT_USAGE)
    if args.crm_rate is not None and args.crm_rate <= 0:
        return fail("--crm-rate must be more than 0", EXIT_USAGE)
    if args.concurrency < 1 or args.crm_workers < 1:
        return fail("--concurrency and --crm-workers must be at least 1", EXIT_USAGE)
    try:
        from ..temporal.worker import declared_crm_rate, open_host, run_worker
    except ImportError:
        return fail(TEMPORAL_EXTRA)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fdlimit.raise_soft_limit()
    try:
        host = open_host(args.workflow, db=args.db, crm_url=args.crm_url, max_connections=args.concurrency)
    except ConfigError as exc:
        return report_config_error(exc)
    except Exception as exc:  # the store could not open, say
        return fail(str(exc))

    # --crm-rate overrides what the connection declares (its adaptor's [limits], the workflow's override)
    crm_rate = args.crm_rate or declared_crm_rate(host.workflow)
    rate_note = "unlimited" if not crm_rate else \
        f"{crm_rate:g}/s for {args.crm_workers} worker(s), from {'--crm-rate' if args.crm_rate else 'the connection limits'}"

    async def serve() -> None:
        await run_worker(host, target=args.temporal, namespace=args.namespace, task_queue=args.task_queue,
                         crm_rate=crm_rate, crm_workers=args.crm_workers, concurrency=args.concurrency,
                         on_ready=lambda: print(f"worker ready: {host.workflow.name} on {args.temporal} "
                                                f"queue {args.task_queue}, CRM rate {rate_note}", flush=True))

    try:
        asyncio.run(serve())
    except DupcheckError as exc:  # Temporal unreachable, no such namespace
        return fail(str(exc))
    except RuntimeError as exc:  # the SDK's own
        return fail(f"worker stopped: {exc}")
    return EXIT_OK
