"""``dupcheck plugins [-o json]``: the installed plugins, their hooks, node types and filters."""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from typing import Any

from .. import PROJECT_NAME
from ..host import PluginConflict, Registry, make_plugin_manager
from .common import EXIT_INVALID, EXIT_OK, fail


def register(sub) -> None:
    p = sub.add_parser("plugins", help="list the installed plugins with their hooks, node types and filters",
                       description="List the plugins this dupcheck loads (the built-in one and the dupcheck "
                                   "entry points, as DUPCHECK_LOAD_PLUGINS narrows them), with the hooks each "
                                   "implements and the node types and template filters each registers.")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.set_defaults(func=main)


def describe() -> list[dict[str, Any]]:
    pm = make_plugin_manager()
    registry = Registry.from_plugins(pm)
    dists = {ep.name: ep for ep in entry_points(group=PROJECT_NAME)}
    out = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        ep = dists.get(name)
        hooks = sorted(impl.name for impl in pm.get_hookcallers(plugin) or [])
        out.append({
            "name": name,
            "module": ep.value if ep else getattr(plugin, "__name__", type(plugin).__module__),
            "distribution": (f"{ep.dist.name} {ep.dist.version}" if ep and ep.dist else None),
            "hooks": hooks,
            "node_types": sorted(n for n, owner in registry.node_type_owner.items() if owner == name),
            "filters": sorted(f for f, owner in registry.filter_owner.items() if owner == name),
        })
    return out


def main(args) -> int:
    try:
        plugins = describe()
    except PluginConflict as exc:
        return fail(str(exc), EXIT_INVALID)
    if args.output == "json":
        sys.stdout.write(json.dumps(plugins, indent=2) + "\n")
        return EXIT_OK
    for p in plugins:
        origin = p["distribution"] or "built in"
        print(f"{p['name']} ({p['module']}, {origin})")
        print(f"  hooks: {', '.join(p['hooks']) or 'none'}")
        if p["node_types"]:
            print(f"  node types: {', '.join(p['node_types'])}")
        if p["filters"]:
            print(f"  filters: {', '.join(p['filters'])}")
    return EXIT_OK
