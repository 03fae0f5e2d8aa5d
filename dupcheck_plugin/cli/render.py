"""``dupcheck render``: show the exact request an adaptor sends for one lead, secrets masked."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from ..adaptor.render import MASK, Rendered, RenderError
from ..config.adaptors import load_adaptor
from ..config.problems import ConfigError
from ..errors import DupcheckError
from ..plugins import PluginConflict
from ..resources import shipped_dir
from .common import EXIT_INVALID, EXIT_OK, EXIT_USAGE

CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}


class UsageError(DupcheckError):
    pass


class LeadError(DupcheckError, ValueError):
    pass


def register(sub) -> None:
    p = sub.add_parser(
        "render", help="show the request an adaptor sends for a lead (secrets masked)",
        description=("Render an adaptor's request for one lead, without sending it: method, URL with its "
                     "query, headers (plus the Content-Type of the body) and body, every secret shown as "
                     f"{MASK}. Exit 1 when the adaptor is invalid or the lead cannot be rendered, 2 on a usage error."))
    p.add_argument("adaptor", metavar="ADAPTOR", help="a shipped adaptor name or the path of an adaptor .toml")
    p.add_argument("--lead", required=True, metavar="JSON_OR_FILE",
                   help="the lead: a JSON object, the path of a JSON file, or - for standard input")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text", help="text (default) or one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        lead_text = read_lead_source(args.lead)
        adaptor = load_adaptor(args.adaptor)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ConfigError as exc:
        if any(p.code == "not_found" for p in exc.problems):
            known = ", ".join(sorted(p.stem for p in shipped_dir("adaptors").glob("*.toml")))
            return _fail(f"{args.adaptor}: no such adaptor file or shipped adaptor (shipped: {known})", EXIT_USAGE)
        return _fail(f"adaptor {args.adaptor} is invalid:\n" + "\n".join(str(p) for p in exc.problems))
    except PluginConflict as exc:
        return _fail(str(exc))
    try:
        lead = parse_lead(lead_text)
        bound = adaptor.bind(os.environ, preview=True)
        _, masked = bound.render(lead)
        view = request_view(masked)
    except (LeadError, RenderError) as exc:
        return _fail(f"cannot render this lead: {exc}")
    except Exception as exc:  # a filter or URL the checks did not foresee: a message, not a traceback
        return _fail(f"cannot render this lead: {type(exc).__name__}: {exc}")
    if bound.missing_secrets:
        names = ", ".join(bound.missing_secrets)
        print(f"note: {names} {'is' if len(bound.missing_secrets) == 1 else 'are'} not set in the environment "
              f"(shown as {MASK}; the real request needs {'it' if len(bound.missing_secrets) == 1 else 'them'})",
              file=sys.stderr)
    if args.output == "json":
        sys.stdout.write(json.dumps(view, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(text_view(view, masked))
    return EXIT_OK


def _fail(message: str, code: int = EXIT_INVALID) -> int:
    print(f"dupcheck render: {message}", file=sys.stderr)
    return code


def read_lead_source(value: str) -> str:
    """``-``: stdin; something that looks like JSON: itself; else the path of a JSON file."""
    if value == "-":
        return sys.stdin.read()
    if value.lstrip().startswith(("{", "[", '"')):
        return value
    path = Path(value)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--lead {value}: cannot read the file: {exc}") from None
    try:
        json.loads(value)  # 42, null, true: JSON, but not an object (parse_lead says so)
        return value
    except ValueError:
        raise UsageError(f"--lead {value}: not a JSON object and no such file") from None


def parse_lead(text: str) -> dict[str, Any]:
    try:
        lead = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LeadError(f"the lead is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(lead, dict):
        raise LeadError(f"the lead must be a JSON object ({{\"phone_number\": \"...\"}}), not {_json_type(lead)}")
    return lead


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _wire(r: Rendered) -> httpx.Request:
    """The request httpx would build (same body arguments as the CRM call in http/call.py)."""
    body: dict[str, Any] = {}
    if r.body is not None and r.body_format != "none":
        body = {"data": r.body} if r.body_format == "form" else {"json": r.body}
    return httpx.Request(r.method, r.url, params=r.query or None, headers=r.headers, **body)


def request_view(r: Rendered) -> dict[str, Any]:
    """method, url (with its query), headers (the adaptor's plus the body's Content-Type), body."""
    wire = _wire(r)
    headers = dict(r.headers)
    content_type = wire.headers.get("content-type")
    if content_type and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = content_type
    body = r.body if r.body_format != "none" else None
    return {"method": r.method, "url": str(wire.url), "headers": headers, "body": body}


def text_view(view: dict[str, Any], r: Rendered) -> str:
    lines = [f"{view['method']} {view['url']}"]
    lines += [f"{k}: {v}" for k, v in view["headers"].items()]
    lines.append("")
    if view["body"] is None:
        lines.append("(no body)")
    elif r.body_format == "form":
        content = _wire(r).read().decode("ascii")
        lines += content.split("&") if content else ["(empty form)"]
    else:
        lines.append(json.dumps(view["body"], indent=2, ensure_ascii=False))
    return "\n".join(lines) + "\n"
