"""``dupcheck check``: validate adaptor and workflow files (schema, templates, references)."""

from __future__ import annotations

import sys

from ..config.checker import PathError, check_paths, default_paths
from ..config.report import json_report, text_report
from ..plugins import PluginConflict, default_registry
from .common import EXIT_INVALID, EXIT_OK, EXIT_USAGE


def register(sub) -> None:
    p = sub.add_parser(
        "check", help="validate adaptor and workflow files",
        description=("Validate adaptor and workflow TOML files: their JSON Schema, the Jinja templates, "
                     "the variables they use, node types and the nodes and adaptors they name. "
                     "Exit 0 when all are valid, 1 when one is invalid or unparsable, 2 on a usage error."))
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="files or folders (every *.toml below); default: the shipped adaptors/ and workflows/")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text", help="text (default) or one JSON object")
    p.add_argument("-v", "--verbose", action="store_true", help="also list the valid files")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        registry = default_registry()
    except PluginConflict as exc:
        print(f"dupcheck check: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        results = check_paths(args.paths or default_paths(), registry)
    except PathError as exc:
        print(f"dupcheck check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.output == "json":
        sys.stdout.write(json_report(results))
    else:
        out, err = text_report(results, verbose=args.verbose)
        sys.stdout.write(out)
        sys.stdout.flush()  # the summary on stderr comes after the problems
        sys.stderr.write(err)
    return EXIT_OK if all(r.ok for r in results) else EXIT_INVALID
