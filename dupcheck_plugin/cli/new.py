"""``dupcheck new adaptor NAME``: a starting adaptor and workflow that pass ``check``.

Copies of a shipped adaptor (``--from``, generic_json by default) and of the
shipped workflow that uses it, renamed, with a comment saying what to change
first and a ``#:schema`` line that leads to the schemas from where the files
are written.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..config.checker import schema_ref
from ..config.kinds import schema_target
from ..config.suggest import did_you_mean
from ..resources import shipped_dir, shipped_names
from .common import EXIT_OK, EXIT_USAGE, fail

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

ADAPTOR_HEADER = """\
# Adaptor {name}, started from {source}: the field mapping and the request.
# Change first: request.url (the CRM's search endpoint), the auth header, the body or query.
# Every key: docs/reference.md. Preview the request: dupcheck render {path} --lead '{{"phone_number": "5550100101"}}'
# Then: dupcheck check {path}
"""
WORKFLOW_HEADER = """\
# Workflow {name}: asks the CRM through adaptor {adaptor}, then the rules table decides.
# Change first: the rules' keys and values, to what your CRM answers for a known person.
# Preview what the connection sends: dupcheck render {path} --node {node} --lead '{{"phone_number": "5550100101"}}'
# Try a recorded answer: dupcheck explain {path} --response answer.json
"""


def register(sub) -> None:
    p = sub.add_parser("new", help="write a starting adaptor and workflow",
                       description="Write new config files that pass `dupcheck check`, to edit from there.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    a = kinds.add_parser(
        "adaptor", help="an adaptor (adaptors/NAME.toml) and a workflow that uses it (workflows/NAME_dupcheck.toml)",
        description=("Write DIR/adaptors/NAME.toml, a copy of a shipped adaptor renamed NAME, and "
                     "DIR/workflows/NAME_dupcheck.toml, the shipped workflow for it pointed at NAME, both "
                     "with a #:schema line that leads to the schemas from there. Existing files are never "
                     "overwritten. Exit 0 written, 2 usage error."))
    a.add_argument("name", metavar="NAME", help="the adaptor's name (letters, digits, _ . -)")
    a.add_argument("--from", dest="source", default="generic_json", metavar="ADAPTOR",
                   help="the shipped adaptor to start from (default generic_json)")
    a.add_argument("--dir", default=".", metavar="DIR", help="project folder holding adaptors/ and workflows/ (default .)")
    a.set_defaults(func=run_adaptor)


def run_adaptor(args) -> int:
    if not NAME.match(args.name):
        return fail(f"{args.name!r} is not a usable name: letters, digits, _ . - only", EXIT_USAGE)
    shipped = shipped_names("adaptors")
    if args.source not in shipped:
        hint = did_you_mean(args.source, shipped)
        return fail(f"--from {args.source}: not a shipped adaptor ({', '.join(shipped)})"
                    + (f"; did you mean {hint!r}?" if hint else ""), EXIT_USAGE)
    root = Path(args.dir)
    adaptor_path = root / "adaptors" / f"{args.name}.toml"
    workflow_path = root / "workflows" / f"{args.name}_dupcheck.toml"
    existing = [str(p) for p in (adaptor_path, workflow_path) if p.exists()]
    if existing:
        return fail(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: "
                    "pick another name or move them away", EXIT_USAGE)
    source_workflow, node = _workflow_for(args.source)
    adaptor_text = _adaptor_text(args.source, args.name, adaptor_path)
    workflow_text = _workflow_text(source_workflow, args.source, args.name, workflow_path, node)
    try:
        for path, text in ((adaptor_path, adaptor_text), (workflow_path, workflow_text)):
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "x", encoding="utf-8") as f:  # "x": never overwrite
                f.write(text)
            print(path)
    except OSError as exc:
        return fail(f"cannot write {path}: {exc}", EXIT_USAGE)
    return EXIT_OK


def _workflow_for(adaptor: str) -> tuple[Path, str]:
    """The shipped workflow that uses ``adaptor`` (else the generic JSON one), and its connection node's id."""
    candidates = sorted(shipped_dir("workflows").glob("*.toml"))
    for path in candidates:
        text = path.read_text(encoding="utf-8")
        if f'adaptor = "{adaptor}"' in text:
            break
    else:
        path = shipped_dir("workflows") / "generic_json_dupcheck.toml"
        text = path.read_text(encoding="utf-8")
    match = re.search(r'id = "([^"]+)"\s*\ntype = "convoso_connect"', text)
    return path, match.group(1) if match else "crm"


def _body(text: str) -> str:
    """The file without its #:schema line and the comment lines right after it."""
    lines = text.split("\n")
    if lines and schema_target(lines[0]):
        lines = lines[1:]
    while lines and lines[0].startswith("#"):
        lines = lines[1:]
    return "\n".join(lines)


def _adaptor_text(source: str, name: str, path: Path) -> str:
    text = _body((shipped_dir("adaptors") / f"{source}.toml").read_text(encoding="utf-8"))
    text = re.sub(r'^name = "[^"]*"', f'name = "{name}"', text, count=1, flags=re.MULTILINE)
    text = re.sub(r'^description = "[^"]*"', f'description = "{name}: a duplicate lookup (started from {source})"',
                  text, count=1, flags=re.MULTILINE)
    return (f"#:schema {schema_ref(path, 'adaptor')}\n"
            + ADAPTOR_HEADER.format(name=name, source=source, path=path.as_posix()) + text)


def _workflow_text(source_path: Path, source: str, name: str, path: Path, node: str) -> str:
    text = _body(source_path.read_text(encoding="utf-8"))
    text = re.sub(r'^name = "[^"]*"', f'name = "{name}_dupcheck"', text, count=1, flags=re.MULTILINE)
    text = re.sub(r'^description = "[^"]*"', f'description = "API Duplicate Lead Check through adaptor {name}"',
                  text, count=1, flags=re.MULTILINE)
    old = source if f'adaptor = "{source}"' in text else re.search(r'adaptor = "([^"]+)"', text).group(1)
    text = text.replace(f'adaptor = "{old}"', f'adaptor = "{name}"')
    return (f"#:schema {schema_ref(path, 'workflow')}\n"
            + WORKFLOW_HEADER.format(name=f"{name}_dupcheck", adaptor=name, path=path.as_posix(), node=node) + text)
