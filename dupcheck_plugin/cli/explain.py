"""``dupcheck explain WORKFLOW --response FILE|ANSWER``: which row decides, offline."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from ..config.problems import ConfigError
from ..errors import DupcheckError
from ..host import Workflow, explain
from .common import EXIT_OK, EXIT_USAGE, fail, report_config_error


def register(sub) -> None:
    p = sub.add_parser("explain", help="show which rules-table row a recorded CRM answer matches, and the decision",
                       description="Test the rules table before going live: run a recorded CRM answer through "
                                   "a workflow's API Duplicate Check, without calling anything.")
    p.add_argument("workflow", help="a shipped workflow's name or a path")
    p.add_argument("--response", required=True,
                   help='the CRM answer, in a file or written out (JSON or XML): a raw body, or '
                        '{"status": N, "headers": {...}, "body": ...}; - for stdin')
    p.add_argument("--status", type=int, help="HTTP status of a raw body (default 200)")
    p.add_argument("--lead", help="the lead, a JSON object or a file holding one (optional)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.set_defaults(func=main)


# an answer written out on the command line starts like JSON or XML; anything else names a file
_INLINE_STARTS = ("{", "[", "<")


def _read(arg: str) -> bytes:
    if arg == "-":
        return sys.stdin.buffer.read()
    path = Path(arg)
    if arg.lstrip().startswith(_INLINE_STARTS) and not _is_file(path):
        return arg.encode("utf-8", "surrogateescape")
    return path.read_bytes()


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a whole answer is no file name: longer than a name may be, say
        return False


def _lead(arg: str | None):
    if arg is None:
        return None
    text = arg if arg.lstrip().startswith("{") else Path(arg).read_text(encoding="utf-8")
    lead = json.loads(text)
    if not isinstance(lead, dict):
        raise ValueError("the lead must be a JSON object")
    return lead


def main(args) -> int:
    try:
        content = _read(args.response)
    except FileNotFoundError:  # neither a file nor an answer written out: say what it may be
        return fail(f"--response {args.response[:80]!r}: no such file, and not an answer written out (one starts "
                    "with {, [ or <: --response '{\"total\": 1}')", EXIT_USAGE)
    except OSError as exc:
        return fail(f"cannot read --response: {exc}", EXIT_USAGE)
    try:
        lead = _lead(args.lead)
    except (OSError, ValueError) as exc:
        return fail(f"--lead: {exc}", EXIT_USAGE)
    try:
        workflow = Workflow.load(args.workflow, offline=True)
    except ConfigError as exc:
        return report_config_error(exc)
    except DupcheckError as exc:  # a plugin that does not fit the hook specs, say
        return fail(str(exc))
    try:
        result = explain(workflow, content, args.status, lead)
    except DupcheckError as exc:
        return fail(str(exc))
    finally:
        asyncio.run(workflow.aclose())
    if args.output == "json":
        print(json.dumps(result.record, ensure_ascii=False, indent=2))
        return EXIT_OK
    a, d = result.answer, result.decision
    request = result.record.get("request") if lead is not None else None
    if request:  # what would be sent for this lead (secrets masked), as -o json has it
        print(f"request: {request.get('method')} {request.get('url')}"
              + (f" {json.dumps(request['body'], ensure_ascii=False)}" if request.get("body") is not None else ""))
    print(f"CRM answer: HTTP {a.status_code}" + (f", error {a.error} ({a.error_detail})" if a.error else ""))
    check = workflow.check
    rules = check.settings.rules
    if not check.settings.enabled:
        print("the duplicate check is disabled: the CRM would not be called")
    if a.error:
        print(f"  the call failed: no row reads it; on_error ({check.settings.on_error.action}) decides")
    for row in ([] if a.error else result.rows):
        rules_row = rules[row.index]
        label = f"row {row.index}" + (f" ({row.name})" if row.name else "")
        parts = []
        if rules_row.http_status is not None:
            parts.append(f"http_status {'/'.join(map(str, sorted(rules_row.http_status)))}")
        if rules_row.key:
            value = "" if rules_row.op in ("exists", "missing") else f" {json.dumps(rules_row.value)}"
            parts.append(f"{'.'.join(rules_row.key)} {rules_row.op}{value}: found {row.shown()}")
        status = "" if row.status_ok else f" [HTTP {a.status_code} is not read by this row]"
        print(f"  {label}: {', '.join(parts)}{status} -> {'MATCH' if row.matched else 'no match'}")
    if not result.rows and rules and a.error is None:
        print("  (no row evaluated)")
    by = f"row {d.rules_row}" + (f" ({d.rules_row_name})" if d.rules_row_name else "") \
        if d.rules_row is not None else d.decided_by
    print(f"decision: {d.action}, decided by {by}" + (f", status {d.status}" if d.status else "")
          + (", add to DNC" if d.add_to_dnc else "")
          + f"; answer {'success' if d.success else 'failure'} {d.code} {d.text!r}"
          + (f" ({d.detail})" if d.detail else ""))
    return EXIT_OK
