"""``dupcheck run WORKFLOW --leads FILE``: decide every lead of a file."""

from __future__ import annotations

import argparse
import asyncio
import codecs
import os
import signal
import sys
from pathlib import Path
from typing import Any, Coroutine

from .. import aio, fdlimit
from ..config.problems import ConfigError
from ..host import (DEFAULT_CONCURRENCY, NOT_UNICODE, Host, LeadFileError, StoreError, Summary, Workflow,
                    changed_row, iter_leads, open_source, stream_items)
from .common import EXIT_OK, EXIT_USAGE, dumps, fail, origin_url, report_config_error
from .outfile import repair
from .worker import TEMPORAL_EXTRA, add_temporal_args, open_temporal_host, temporal_problem, temporal_usage_error


# run's first GC generation: its leads leave little cyclic garbage, so a collection
# every 50,000 net new objects rather than 7,000 (serve's) frees as much, walking the
# young objects in flight about 5x less often. 20,000 leads, first-generation collector
# time per lead: HubSpot bench workflow (64 in flight) 0.53-0.58 -> 0.16 us, batched
# Salesforce (400 in flight) 0.8-1.5 -> 0.16-0.18 us; peak RSS the same (60, 63-64 MB).
RUN_GC_GEN0 = 50_000


def register(sub) -> None:
    p = sub.add_parser("run", help="decide every lead of a CSV / JSON Lines file; decisions as JSON Lines",
                       description="Stream leads (CSV with a header row, JSON Lines, or - for stdin) through a "
                                   "workflow; one decision record per line to --out, a summary to stderr.")
    p.add_argument("workflow", help="a shipped workflow's name or a path")
    p.add_argument("--leads", required=True, help="CSV or JSON Lines file, or - for stdin")
    p.add_argument("--format", choices=("csv", "jsonl"), help="input format (default: by extension or content)")
    p.add_argument("--encoding", type=text_encoding, default="utf-8",
                   help="the lead file's text encoding (default: utf-8; a spreadsheet's CSV export is often cp1252)")
    p.add_argument("--out", default="-", help="decision records, JSON Lines (default: stdout)")
    p.add_argument("--db", default="dupcheck.db", help="SQLite file (default: ./dupcheck.db) or postgresql://USER@HOST:PORT/DB")
    p.add_argument("--crm-url", type=origin_url, help="replace scheme://host:port of the CRM URL (a sandbox, the simulator)")
    p.add_argument("--concurrency", type=int,
                   help=f"leads in flight (default: {DEFAULT_CONCURRENCY}, or enough to fill a batching CRM connection's batches)")
    p.add_argument("--check-dup", type=int, choices=(0, 1, 2, 3), default=0,
                   help="Convoso's local duplicate check before the CRM: 0 none (default), 1 any lead in --db with "
                        "the phone, 2/3 the same list_id (one phone decided at a time)")
    p.add_argument("--check-dnc", action="store_true", help="refuse phones on the DNC list in --db (6024)")
    p.add_argument("--resume", action="store_true",
                   help="skip the rows of this file this workflow already decided in --db (after an interrupted run); "
                        "--out is appended to, after adding the records the interrupted run had not written")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    add_temporal_args(p, engine_choice=True)
    p.set_defaults(func=main)


def connection_caps(host: Host) -> dict[str, int]:
    """Connections each CRM node may open: ``--concurrency``, unless the
    workflow caps a node lower with ``max_connections``."""
    caps = {}
    for node_id, node in host.nodes.items():
        cap = getattr(node, "max_connections", None)
        if isinstance(cap, int):
            caps[node_id] = cap
    return caps


def warn_caps(caps: dict[str, int], concurrency: int, stream=None) -> None:
    for node_id, cap in caps.items():
        if cap < concurrency:
            print(f"note: node {node_id!r} is capped at {cap} connections by the workflow's max_connections, "
                  f"below --concurrency {concurrency}: at most {cap} of its CRM calls are in flight at once",
                  file=stream or sys.stderr)


def fit_open_files(host: Host, caps: dict[str, int], open_files: int | None, stream=None) -> dict[str, int]:
    """Lower the connection caps that do not fit the open files this process may have
    (:func:`fdlimit.fit`), before any connection opens; returns the caps in force."""
    lowered = fdlimit.fit(caps, open_files)
    for node_id, cap in lowered.items():
        host.nodes[node_id].max_connections = cap  # read when the node's client is made, at its first call
        print(f"note: node {node_id!r} is capped at {cap} connections, not {caps[node_id]}: this process may "
              f"open {open_files} files (ulimit -n, its hard limit too) and keeps {fdlimit.RESERVE} for the "
              f"rest; raise the hard limit to open more", file=stream or sys.stderr)
    return {**caps, **lowered}


def print_summary(summary: Summary, stream=None, caps: dict[str, int] | None = None) -> None:
    stream = stream or sys.stderr
    s = summary.as_json()
    actions = ", ".join(f"{k} {v}" for k, v in sorted(s["by_action"].items())) or "none"
    rows = ", ".join(f"{k}: {v}" for k, v in sorted(s["by_row"].items())) or "none"
    errors = ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "none"
    rate = f"{s['leads_per_s']:.1f} leads/s" if s["leads_per_s"] else "-"
    print(f"decided {s['total']} leads in {s['elapsed_s']:.2f}s ({rate})", file=stream)
    print(f"  by action: {actions}", file=stream)
    print(f"  by matched row: {rows}", file=stream)
    print(f"  CRM errors: {errors}", file=stream)
    if caps:
        print(f"  connections: {', '.join(f'{k} {v}' for k, v in caps.items())}", file=stream)


async def run_file(args) -> int:
    if args.engine == "temporal" and (problem := await temporal_problem(args)):
        return fail(problem)
    open_files = fdlimit.raise_soft_limit()
    try:
        input_stream, fmt = open_source(args.leads, args.format, args.encoding)
    except OSError as exc:
        return fail(f"cannot read leads: {exc}")
    try:
        if args.engine == "temporal":
            host = open_temporal_host(args)
        else:
            host = Host.open(args.workflow, db=args.db, crm_url=args.crm_url,
                             max_connections=max(args.concurrency or DEFAULT_CONCURRENCY, 1))
    except ImportError:
        return fail(TEMPORAL_EXTRA)
    except ConfigError as exc:
        return report_config_error(exc)
    except Exception as exc:  # the store could not open, say
        return fail(str(exc))
    requested = args.concurrency
    args.concurrency = requested or max(DEFAULT_CONCURRENCY, host.lead_capacity())
    caps = connection_caps(host)
    warn_caps(caps, requested or DEFAULT_CONCURRENCY)  # batched leads share connections: count what was asked
    caps = fit_open_files(host, caps, open_files)
    aio.tune_gc(RUN_GC_GEN0)  # the workflow, its store and the modules are loaded: what lasts is frozen
    source = None if args.leads == "-" else str(Path(args.leads).resolve())
    items = stream_items(input_stream, fmt)
    done: set[int] = set()
    if source is not None:
        try:
            # held until the store closes: a second run of this file now is refused here, before
            # it decides anything (it would decide rows until it met one this run had stored)
            host.store.claim_run(host.workflow.name, source)
            # with --resume each decided row's phone too, checked against the file below: one read gives both
            decided = host.store.decided_phones(host.workflow.name, source) if args.resume else {}
            done = set(decided) if args.resume else host.store.decided_rows(host.workflow.name, source)
        except Exception as exc:  # another run holds it (RunInProgress), the claim or the read failed
            await host.aclose()
            input_stream.close()
            why = exc if isinstance(exc, StoreError) else f"the store could not be read: {type(exc).__name__}: {exc}"
            return fail(f"{why}. This run decided nothing")
        if done and not args.resume:
            await host.aclose()
            input_stream.close()
            return fail(f"{len(done)} rows of {args.leads} were already decided by workflow {host.workflow.name!r} "
                        f"in {args.db}: --resume skips them, --db NEW.db starts a new store")
        if done:
            try:
                changed = await asyncio.to_thread(_changed_row, args, host.workflow, decided)
            except (OSError, LeadFileError) as exc:
                changed = str(exc)
            if changed is not None:
                await host.aclose()
                input_stream.close()
                return fail(f"--resume: {changed}: {args.leads} changed since the run it resumes, so its row "
                            "numbers no longer name the leads decided (they would be skipped unseen and others "
                            "decided twice). Resume only the file as it was; run a changed file on a new store "
                            "(--db NEW.db). This run decided nothing")
            print(f"resuming: {len(done)} rows already decided are skipped", file=sys.stderr)
            items = _skip_rows(items, done)
            if args.out != "-":
                try:
                    added = repair(args.out, host.workflow.name, source,
                                   lambda: host.store.decided_records(host.workflow.name, source), dumps)
                except OSError as exc:
                    await host.aclose()
                    input_stream.close()
                    return fail(f"cannot repair --out {args.out}: {exc}")
                if added:
                    print(f"{args.out}: {added} records the interrupted run had not written were added from {args.db}",
                          file=sys.stderr)
    # a resumed run appends to --out (repaired above): what the first run wrote stays
    mode = "a" if done else "w"
    try:
        out = sys.stdout if args.out == "-" else open(args.out, mode, encoding="utf-8")
    except OSError as exc:  # a missing folder, a directory, no permission: before any lead is decided
        await host.aclose()
        input_stream.close()
        return fail(f"cannot write --out {args.out}: {exc.strerror or exc}. This run decided nothing")
    bar = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit=" leads", file=sys.stderr, mininterval=0.5)

    undecodable = 0  # rows rejected for bytes the file's encoding does not read

    def on_record(record: dict[str, Any]) -> None:
        nonlocal undecodable
        # the store's own JSON text of a stored record (StoredRecord.json): one serialisation a lead
        out.write((getattr(record, "json", None) or dumps(record)) + "\n")
        if record["action"] == "rejected" and NOT_UNICODE in (record.get("detail") or ""):
            undecodable += 1
        if bar is not None:
            bar.update(1)

    ticker = asyncio.create_task(_show_limiter_waits(bar)) if bar is not None else None
    try:
        async with host:
            summary = await host.run(items, concurrency=args.concurrency, on_record=on_record, source=source,
                                     check_dup=args.check_dup, check_dnc=args.check_dnc)
    except Exception as exc:  # the store refused a write, the input broke, --out's disk is full: stop loudly
        errors = exc.exceptions if isinstance(exc, ExceptionGroup) else [exc]
        unreadable = next((e for e in errors if isinstance(e, LeadFileError)), None)
        if unreadable is not None:  # raised before the file's first row
            return fail(f"{args.leads}: {unreadable}. This run decided nothing")
        return fail(stopped(errors, resumable=source is not None))
    finally:
        if ticker is not None:
            ticker.cancel()
        if bar is not None:
            bar.close()
        out_error = _close_out(out)
        input_stream.close()
    if out_error is not None:  # every decision stored; the last lines of --out did not reach the disk
        return fail(stopped([out_error], resumable=source is not None))
    print_summary(summary, caps=caps)
    if undecodable:
        print(f"  {undecodable} row(s) rejected: {_undecodable_why(args.encoding, input_stream)}", file=sys.stderr)
    alarm = host.alarm.status()
    if alarm["times_raised"]:
        now = f"now: {alarm['reason']}" if alarm["active"] else "cleared since"
        print(f"  duplicate alarm: raised {alarm['times_raised']} time(s); {now}", file=sys.stderr)
    return EXIT_OK


def _changed_row(args, workflow: Workflow, decided: dict[int, str | None]) -> str | None:
    """The first row an interrupted run decided (``decided``: row -> its phone) that
    holds another lead in the file now, or None. The file is read once more: in a
    thread, as a million rows take seconds."""
    stream, fmt = open_source(args.leads, args.format, args.encoding)
    with stream:
        return changed_row(iter_leads(stream, fmt), decided, lambda lead: workflow.admit(lead).phone_e164)


async def stop_on_sigterm(work: Coroutine[Any, Any, int]) -> int:
    """SIGTERM (``kill``, ``timeout``, a service manager stopping the job) stops
    a run as Ctrl-C does: no new lead starts, the leads in flight are
    cancelled, what was decided is stored and written to --out, and the
    command says how to resume (exit 130). Without this the process died at
    once: its last --out lines still in the buffer, for --resume to repair.
    A second SIGTERM does not cut that short (a service manager's SIGKILL will)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated: list[bool] = []

    def on_sigterm() -> None:
        if not terminated:
            terminated.append(True)
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no such signals here
        return await work
    try:
        return await work
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt from None  # main's path for an interrupted run
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _undecodable_why(asked: str, stream) -> str:
    """Why rows were not valid text, and what to do: another --encoding, unless the file's
    byte-order mark chose its encoding (a UTF-16 file: its bad rows are damage, not a guess)."""
    used = getattr(stream, "encoding", None) or asked
    if _family(used) != _family(asked):
        return (f"not valid {used}, the encoding the file's byte-order mark names (a damaged file? the other rows "
                "were read)")
    return f"not valid {asked} (a spreadsheet's export? try --encoding cp1252, or the encoding the file was saved in)"


def _family(name: str) -> str:
    name = codecs.lookup(name).name
    return "utf-8" if name == "utf-8-sig" else name  # UTF-8 is read as utf-8-sig: a mark, if any, is dropped


def text_encoding(name: str) -> str:
    """--encoding: a codec Python knows that decodes text (not base64, say)."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {name!r} (utf-8, cp1252, latin-1, utf-16...)") from None
    if not getattr(info, "_is_text_encoding", True):
        raise argparse.ArgumentTypeError(f"{name!r} is not a text encoding")
    try:  # a row it cannot read is marked and rejected, not the run stopped: idna's decoder cannot mark one
        info.incrementaldecoder("surrogateescape").decode(b"\x80", final=True)
    except UnicodeError as exc:
        if "error handling" in str(exc):
            raise argparse.ArgumentTypeError(f"{name!r} cannot read a lead file: its decoder cannot mark a byte it "
                                             "does not read (utf-8, cp1252, latin-1, utf-16...)") from None
    except Exception:  # noqa: BLE001 - any other complaint of one byte alone says nothing of the codec
        pass
    return info.name


def stopped(errors: list[BaseException], resumable: bool) -> str:
    """The line that says why a run stopped: each distinct error once (the
    leads in flight often meet the same one: a full disk, a store gone), how
    many times, and how to go on."""
    counts: dict[str, int] = {}
    for error in errors:
        text = f"{type(error).__name__}: {error}"
        counts[text] = counts.get(text, 0) + 1
    why = "; ".join(text if n == 1 else f"{text} ({n} leads)" for text, n in counts.items())
    hint = ". Decisions stored so far are kept: once the cause is fixed, run again with --resume to finish " \
           "the file (it repairs --out too)" if resumable else ""
    return f"run stopped: {why}{hint}"


def _close_out(out) -> OSError | None:
    """Flush and close --out (not stdout): a full disk is an error to report, not a traceback."""
    try:
        out.flush()
        if out is not sys.stdout:
            out.close()
    except OSError as exc:
        if out is not sys.stdout:
            try:
                out.close()  # the buffer's flush fails again; the file is closed all the same
            except OSError:
                pass
        return exc
    return None


async def _show_limiter_waits(bar) -> None:
    """Say in the progress bar why leads wait (a CRM rate limit, a spent budget)."""
    from ..connection.registry import all_of

    while True:
        await asyncio.sleep(1.0)
        waits = [f"{st['connection']}: {st['waiting']} waiting for {st['waiting_for']}"
                 for st in (limiter.state() for limiter in all_of("limiter")) if st["waiting_for"]]
        bar.set_postfix_str("; ".join(waits), refresh=True)


async def _skip_rows(items, done: set[int]):
    async for item in items:
        if item[0] not in done:
            yield item


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): the same path all the same?
        return os.path.realpath(a) == os.path.realpath(b)


def out_clash(args) -> str | None:
    """--out naming the lead file or the SQLite store: opened for writing, it would be
    truncated (the leads unread, every decision of the store gone) before any lead is decided."""
    if args.out == "-":
        return None
    if args.leads != "-" and _same_file(args.out, args.leads):
        return f"--out {args.out} is the lead file --leads reads: writing the decisions there would erase the leads"
    if "://" not in args.db:
        for path in (args.db, args.db + "-wal", args.db + "-shm", args.db + "-journal"):
            if _same_file(args.out, path):
                return (f"--out {args.out} is the store's file ({path}): writing the decisions there would erase "
                        "the store; give --out a file of its own")
    return None


def main(args) -> int:
    if args.concurrency is not None and args.concurrency < 1:
        return fail("--concurrency must be at least 1", EXIT_USAGE)
    if problem := temporal_usage_error(args):
        return fail(problem, EXIT_USAGE)
    if problem := aio.loop_problem():
        return fail(problem, EXIT_USAGE)
    if args.resume and args.leads == "-":
        return fail("--resume needs a lead file: the rows of stdin cannot be told from those an earlier run "
                    "decided (each would be decided again); give the file with --leads FILE", EXIT_USAGE)
    if problem := out_clash(args):
        return fail(problem, EXIT_USAGE)
    return aio.run(stop_on_sigterm(run_file(args)), allow_uvloop=args.engine != "temporal")  # Temporal's SDK: asyncio's loop
