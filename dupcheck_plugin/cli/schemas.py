"""``dupcheck schemas export DIR``: the JSON Schemas where editors can find them.

For a pip install the shipped schemas sit in site-packages, a path that
changes with every environment; exported to a stable folder (with a taplo
configuration that maps adaptors/ and workflows/ to them), an editor
completes and checks adaptors and workflows offline.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from ..config.kinds import SCHEMA_BY_KIND
from ..resources import shipped_dir
from .common import EXIT_OK, EXIT_USAGE, fail

TAPLO_CONFIG = ".taplo.toml"


def register(sub) -> None:
    p = sub.add_parser("schemas", help="export the JSON Schemas of adaptors and workflows for editors",
                       description="Work with the JSON Schemas that editors use to complete and check configs.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export", help="write the schemas and a taplo configuration into DIR",
        description=("Write every JSON Schema dupcheck uses into DIR, together with a .taplo.toml that maps "
                     "**/adaptors/*.toml and **/workflows/*.toml to them (taplo, VS Code's Even Better TOML). "
                     "Then point a file's first line at them, e.g. '#:schema DIR/adaptor.schema.json'."))
    export.add_argument("dir", metavar="DIR", help="folder to write into (created when missing)")
    export.set_defaults(func=run_export)


def run_export(args) -> int:
    target = Path(args.dir)
    if target.exists() and not target.is_dir():
        return fail(f"{target} is not a folder", EXIT_USAGE)
    try:
        written = export(target)
    except OSError as exc:
        return fail(f"cannot write into {target}: {exc}", EXIT_USAGE)
    for path in written:
        print(path)
    for kind, name in sorted(SCHEMA_BY_KIND.items()):
        print(f"{kind}s: first line '#:schema {(target / name).resolve().as_posix()}'", file=sys.stderr)
    return EXIT_OK


def export(target: Path) -> list[Path]:
    """Write the shipped schemas and a taplo configuration into ``target``; returns what was written."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(shipped_dir("schemas").glob("*.schema.json")):
        path = target / source.name
        shutil.copyfile(source, path)
        written.append(path)
    config = target / TAPLO_CONFIG
    config.write_text(taplo_config(target.resolve()), encoding="utf-8")
    return written + [config]


def taplo_config(folder: Path) -> str:
    """A .taplo.toml mapping adaptors/ and workflows/ to the schemas in ``folder`` (absolute
    paths, so the file still works when copied to a project's root)."""
    lines = ["# Written by `dupcheck schemas export`: taplo and Even Better TOML check and complete",
             "# adaptors and workflows with these schemas. Copy it to your project's root.", ""]
    for kind, name in sorted(SCHEMA_BY_KIND.items()):
        lines += ["[[rule]]", f'name = "dupcheck {kind}s"', f'include = ["**/{kind}s/*.toml"]',
                  "[rule.schema]", f"path = {json.dumps((folder / name).as_posix())}", ""]
    return "\n".join(lines)
