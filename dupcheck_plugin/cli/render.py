"""``dupcheck render``: show the exact request an adaptor, or a workflow's connection node, sends for one lead, secrets masked."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import httpx

from ..adaptor.render import MASK, Rendered, RenderError
from ..config.adaptors import load_adaptor
from ..config.kinds import file_kind
from ..config.problems import ConfigError
from ..config.suggest import did_you_mean
from ..connection.secrets import Secrets
from ..errors import DupcheckError
from ..host import CrmNode, Workflow
from ..plugins import PluginConflict
from ..resources import shipped_names
from .common import EXIT_INVALID, EXIT_OK, EXIT_USAGE, origin_url

CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}


class UsageError(DupcheckError):
    pass


class LeadError(DupcheckError, ValueError):
    pass


def register(sub) -> None:
    p = sub.add_parser(
        "render", help="show the request an adaptor, or a workflow's connection, sends for a lead (secrets masked)",
        description=("Render the request for one lead, without sending it: method, URL with its query, headers "
                     "(plus the Content-Type of the body) and body, every secret shown as "
                     f"{MASK}. With --node, SOURCE is a workflow and the request is what that connection node "
                     "really sends: its auth applied (masked), its url, headers and method overrides, --crm-url. "
                     "Exit 1 when the config is invalid or the lead cannot be rendered, 2 on a usage error."))
    p.add_argument("source", metavar="ADAPTOR|WORKFLOW",
                   help="a shipped adaptor name or an adaptor .toml; with --node, a workflow name or .toml")
    p.add_argument("--node", metavar="ID", help="the workflow's connection node (convoso_connect) to render")
    p.add_argument("--lead", required=True, metavar="JSON_OR_FILE",
                   help="the lead: a JSON object, the path of a JSON file, or - for standard input")
    p.add_argument("--crm-url", type=origin_url, metavar="URL",
                   help="send to this scheme://host:port instead (as run and serve do)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text", help="text (default) or one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        lead_text = read_lead_source(args.lead)
        render, missing = (_workflow_node if args.node else _adaptor)(args)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ConfigError as exc:
        kind = "workflow" if args.node else "adaptor"
        return _fail(f"{kind} {args.source} is invalid:\n" + "\n".join(str(p) for p in exc.problems))
    except PluginConflict as exc:
        return _fail(str(exc))
    try:
        lead = parse_lead(lead_text)
        masked = render(lead)
        view = request_view(masked)
    except (LeadError, RenderError) as exc:
        return _fail(f"cannot render this lead: {exc}")
    except Exception as exc:  # a filter or URL the checks did not foresee: a message, not a traceback
        return _fail(f"cannot render this lead: {type(exc).__name__}: {exc}")
    if missing:
        print(f"note: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set in the environment "
              f"(shown as {MASK}; the real request needs {'it' if len(missing) == 1 else 'them'})",
              file=sys.stderr)
    if args.output == "json":
        sys.stdout.write(json.dumps(view, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(text_view(view, masked))
    return EXIT_OK


RenderFn = Callable[[dict[str, Any]], Rendered]


def _adaptor(args) -> tuple[RenderFn, list[str]]:
    """The adaptor's own request (masked), sent to --crm-url when given."""
    try:
        adaptor = load_adaptor(args.source)
    except ConfigError as exc:
        if any(p.code == "not_found" for p in exc.problems):
            senders = _connection_nodes(args.source)  # a workflow's name (shipped, or a file here): its request
            if senders is not None:
                raise UsageError(f"{args.source} is a workflow, not an adaptor: {_node_hint(senders)}") from None
            known = ", ".join(shipped_names("adaptors"))
            raise UsageError(f"{args.source}: no such adaptor file or shipped adaptor (shipped: {known})") from None
        if any(p.code == "ambiguous_name" for p in exc.problems):
            message = "; ".join(p.message for p in exc.problems)
            path = Path(args.source)
            senders = _connection_nodes(args.source) if path.is_file() and file_kind(path) == "workflow" else None
            if senders is not None:  # what the user most likely meant: that workflow's request
                message += f": {_node_hint(senders)}"
            raise UsageError(message) from None
        raise
    bound = adaptor.bind(os.environ, preview=True)
    return (lambda lead: bound.render(lead)[1].with_origin(args.crm_url)), list(bound.missing_secrets)


def _connection_nodes(name_or_path: str) -> list[str] | None:
    """The connection nodes of a workflow (a file, or a shipped one's name), or None if none loads."""
    try:
        workflow = Workflow.load(name_or_path, offline=True)
    except Exception:  # noqa: BLE001 - only a hint: the workflow's own errors are check's to tell
        return None
    return _senders(workflow)


def _node_hint(senders: list[str]) -> str:
    return f"render a workflow's request with --node ID (its connection nodes: {', '.join(senders) or 'none'})"


def _senders(workflow: Workflow) -> list[str]:
    """The ids of the nodes that send a request (convoso_connect and the like)."""
    return [nid for nid, n in workflow.nodes.items() if callable(getattr(n, "render", None))]


def _workflow_node(args) -> tuple[RenderFn, list[str]]:
    """What the workflow's connection node sends: built as run and serve build it, secrets masked."""
    try:
        workflow = Workflow.load(args.source, crm_url=args.crm_url, offline=True)
    except ConfigError as exc:
        if any(p.code in ("not_found", "ambiguous_name") for p in exc.problems):
            raise UsageError("; ".join(f"{args.source}: {p.message}" for p in exc.problems)) from None
        raise
    types = {n.id: n.type for n in workflow.spec.nodes}
    if args.node not in types:
        hint = did_you_mean(args.node, types)
        raise UsageError(f"--node {args.node}: no such node in {args.source} (nodes: {', '.join(types)})"
                         + (f"; did you mean {hint!r}?" if hint else ""))
    node = workflow.nodes[args.node]
    if not callable(getattr(node, "render", None)):
        senders = _senders(workflow)
        raise UsageError(f"--node {args.node} is a {types[args.node]} node, which sends no request "
                         f"(connection nodes: {', '.join(senders) or 'none'})")
    secrets = Secrets(os.environ)
    missing = [name for name in (node.secret_names if isinstance(node, CrmNode) else ()) if not secrets.has(name)]
    return (lambda lead: node.render(lead)[1]), sorted(set(missing))


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
