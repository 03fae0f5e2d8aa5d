"""``dupcheck``: the command line. Each subcommand is a module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from .common import EXIT_INTERRUPTED, EXIT_USAGE

# module names under dupcheck_plugin.cli, in the order --help lists them
COMMANDS = ("demo", "run", "explain", "check", "render", "new", "schemas", "crm_sim", "serve", "worker", "plugins")



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dupcheck",
        description="API Duplicate Lead Check: ask the client's CRM before a lead is created; a rules table decides.",
    )
    parser.add_argument("--version", action="version", version=f"dupcheck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits 2 on usage errors
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        hint = " (decisions stored so far are kept; run again with --resume to finish the file)" \
            if args.command == "run" else ""
        print(f"interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
