"""``dupcheck demo``: the simulator, a shipped workflow, sample leads, a table."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..config.problems import ConfigError
from ..host import Host, Workflow, open_source, row_label, stream_items
from ..resources import shipped_dir
from .common import EXIT_OK, EXIT_USAGE, fail, report_config_error
from .run import print_summary

DEFAULT_WORKFLOW = "hubspot_dupcheck"


def register(sub) -> None:
    p = sub.add_parser("demo", help="run a shipped workflow against the CRM simulator and show the decisions",
                       description="Start the CRM simulator on a free loopback port, run a shipped workflow on "
                                   "the shipped sample leads, print a table of decisions, stop the simulator.")
    p.add_argument("--adaptor", help="use the shipped workflow built on this adaptor (default: HubSpot)")
    p.add_argument("--workflow", help="a workflow name or path (instead of --adaptor)")
    p.add_argument("--leads", help="lead file (default: the shipped examples/leads.csv)")
    p.add_argument("--contacts", help="the simulator's contacts (default: the shipped examples/contacts.csv)")
    p.add_argument("--db", help="SQLite file (default: a new temporary file)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="simulated CRM latency")
    p.set_defaults(func=main)


def workflow_for_adaptor(adaptor: str) -> str | None:
    """The first shipped workflow whose convoso_connect node uses ``adaptor``."""
    for path in sorted(shipped_dir("workflows").glob("*.toml")):
        try:
            spec = Workflow.load(str(path), offline=True).spec
        except ConfigError:
            continue
        if any(n.type == "convoso_connect" and Path(n.config.get("adaptor", "")).stem == adaptor for n in spec.nodes):
            return str(path)
    return None


def _cell(value: Any, width: int) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


# "#": the lead's line in the file; "row": the rules-table row (or local check) that decided
COLUMNS = (("#", 3), ("phone", 14), ("name", 20), ("action", 9), ("status", 10), ("row", 20),
           ("dnc", 3), ("answer", 46))


def table_row(r: dict[str, Any]) -> str:
    lead = r["lead"]
    name = f"{lead.get('first_name', '')} {lead.get('last_name', '')}".strip()
    row = row_label(r) or ""
    answer = ("ok " if r["success"] else "FAIL ") + f"{r['code']} {r['text']}" + (f" ({r['detail']})" if r["detail"] else "")
    values = (r["source_row"], r["phone_e164"] or lead.get("phone_number", ""), name, r["action"], r["status"], row,
              "yes" if r["dnc_added"] else "", answer)
    return "  ".join(_cell(v, w).ljust(w) for v, (_, w) in zip(values, COLUMNS)).rstrip()


async def _demo(args, workflow: str, environ: dict[str, str], db: str) -> int:
    from ..sim import Knobs, SimulatorThread

    contacts = args.contacts or str(shipped_dir("examples") / "contacts.csv")
    leads = args.leads or str(shipped_dir("examples") / "leads.csv")
    try:
        source, fmt = open_source(leads)
    except OSError as exc:
        return fail(f"cannot read leads: {exc}")
    try:
        sim = SimulatorThread(contacts, knobs=Knobs(latency_ms=args.latency_ms)).start()
    except (OSError, ValueError) as exc:
        return fail(f"cannot start the CRM simulator: {exc}")
    records: list[dict[str, Any]] = []
    try:
        host = Host.open(workflow, db=db, crm_url=sim.url, environ=environ)
        print(f"workflow {host.workflow.name} against the CRM simulator at {sim.url}; store {db}\n")
        async with host:
            summary = await host.run(stream_items(source, fmt), concurrency=8, on_record=records.append)
            counts = host.store.counts()
    except ConfigError as exc:
        return report_config_error(exc)
    finally:
        sim.stop()
        source.close()
    print("  ".join(name.ljust(w) for name, w in COLUMNS).rstrip())
    for r in sorted(records, key=lambda r: r["source_row"] or 0):
        print(table_row(r))
    print()
    print_summary(summary, sys.stdout)
    if counts:
        print(f"  store: {counts.get('leads')} leads, {counts.get('dnc')} DNC entries, "
              f"{counts.get('decisions')} decision records")
    return EXIT_OK


def main(args) -> int:
    if args.workflow:
        workflow = args.workflow
    elif args.adaptor:
        workflow = workflow_for_adaptor(args.adaptor)
        if workflow is None:
            names = sorted(p.stem for p in shipped_dir("adaptors").glob("*.toml"))
            return fail(f"no shipped workflow uses adaptor {args.adaptor!r} (adaptors: {', '.join(names)})", EXIT_USAGE)
    else:
        workflow = DEFAULT_WORKFLOW
    try:
        needed = Workflow.load(workflow, offline=True).secret_names
    except ConfigError as exc:
        return report_config_error(exc)
    # the simulator accepts any token: unset secrets get a demo value, real ones are left alone
    environ = dict(os.environ)
    for name in needed:
        environ.setdefault(name, "demo-secret")
    if args.db:
        return asyncio.run(_demo(args, workflow, environ, args.db))
    with tempfile.TemporaryDirectory(prefix="dupcheck-demo-") as tmp:
        return asyncio.run(_demo(args, workflow, environ, str(Path(tmp) / "demo.db")))
