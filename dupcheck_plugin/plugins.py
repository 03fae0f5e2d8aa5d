"""The host side of the contract: build a plugin manager and the registries.

Built-in plugins (:data:`DEFAULT_PLUGINS`) are registered by the host, once,
exactly like third-party ones, as datasette and llm do; third-party plugins
come from the ``dupcheck`` entry-point group. ``DUPCHECK_LOAD_PLUGINS``
(comma-separated entry-point names, empty for none) narrows what is loaded.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from . import PROJECT_NAME, hookspecs
from .errors import DupcheckError
from .types import NodeType

# (name, module): registered before any entry point, never through one
DEFAULT_PLUGINS = (("builtin", "dupcheck_plugin.builtin"),)


class PluginConflict(DupcheckError):
    """Two plugins registered the same name."""


class PluginInvalid(PluginConflict):
    """A plugin's hook implementation does not fit dupcheck's hook specs (a misspelt
    hook name, an argument the spec does not have). A PluginConflict, so that every
    command that reports a conflict reports this too, without a traceback."""


def _where(plugin: Any) -> str:
    return getattr(plugin, "__file__", None) or getattr(plugin, "__name__", None) or repr(plugin)


def _invalid(exc: pluggy.PluginValidationError) -> PluginInvalid:
    hooks = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("dupcheck_")))
    message = " ".join(str(exc).split())
    return PluginInvalid(f"plugin {_where(exc.plugin)}: {message} (dupcheck's hooks: {hooks}; "
                         "docs/plugin-hooks.md gives each one's arguments)")


def make_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=name)
    try:
        if load_entrypoints:
            _load_entrypoints(pm)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise _invalid(exc) from None
    return pm


def _load_entrypoints(pm: pluggy.PluginManager) -> None:
    wanted = os.environ.get("DUPCHECK_LOAD_PLUGINS")
    names = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    if names == set() or not may_declare_plugins():
        return
    from importlib.metadata import entry_points

    for ep in entry_points(group=PROJECT_NAME):
        if names is not None and ep.name not in names:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must not stop the host
            import logging

            logging.getLogger(__name__).warning("plugin %s (%s) failed to load and was skipped: %s", ep.name, ep.value, exc)
            continue
        if pm.is_registered(plugin) or pm.get_plugin(ep.name) is not None:
            continue
        pm.register(plugin, name=ep.name)


def may_declare_plugins() -> bool:
    """False only when no distribution on ``sys.path`` declares a ``dupcheck``
    entry point: a look at the files importlib.metadata would read (each
    ``*.dist-info``/``*.egg-info`` folder's ``entry_points.txt``), so that a
    process without third-party plugins does not import it (~15-30 ms, a tenth
    of a cold ``dupcheck check``). Anything it cannot see through (a zip on
    the path, an ``.egg``, a finder of another kind) counts as "may"."""
    from importlib.machinery import PathFinder

    if any(f is not PathFinder and getattr(f, "find_distributions", None) for f in sys.meta_path):
        return True
    for entry in sys.path:
        if not isinstance(entry, str):
            return True
        try:
            children = os.listdir(entry or ".")
        except OSError:
            if os.path.exists(entry):
                return True  # a zip or another kind of path entry
            continue
        if entry.lower().rstrip("/\\").endswith(".egg"):
            return True
        for child in children:
            if not child.lower().endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(entry or ".", child, "entry_points.txt"), "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError:
                return True
            # a section header as importlib.metadata reads one: a stripped line in brackets
            if any(line.strip().startswith("[") and line.strip().endswith("]")
                   and line.strip().strip("[]") == PROJECT_NAME for line in text.splitlines()):
                return True
    return False


def _plugin_name(pm: pluggy.PluginManager, impl: Any) -> str:
    return pm.get_name(impl.plugin) or repr(impl.plugin)


def _collect(pm: pluggy.PluginManager, hook_name: str, make_register: Callable) -> None:
    """Call a registration hook plugin by plugin, so clashes name both plugins."""
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order
        owner = _plugin_name(pm, impl)
        impl.function(register=make_register(owner))


@dataclass
class Registry:
    """Node types and template filters from every registered plugin."""

    node_types: dict[str, NodeType]
    node_type_owner: dict[str, str]
    filters: dict[str, Callable[..., Any]]
    pm: pluggy.PluginManager
    filter_owner: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_plugins(cls, pm: pluggy.PluginManager) -> "Registry":
        node_types: dict[str, NodeType] = {}
        owners: dict[str, str] = {}
        filters: dict[str, Callable[..., Any]] = {}
        filter_owners: dict[str, str] = {}

        def node_register(owner: str):
            def register(node_type: NodeType) -> None:
                if node_type.name in node_types:
                    raise PluginConflict(
                        f"node type {node_type.name!r} is registered by both "
                        f"{owners[node_type.name]} and {owner}"
                    )
                node_types[node_type.name] = node_type
                owners[node_type.name] = owner
            return register

        def filter_register(owner: str):
            def register(name: str, function: Callable[..., Any]) -> None:
                if name in filters:
                    raise PluginConflict(
                        f"template filter {name!r} is registered by both {filter_owners[name]} and {owner}"
                    )
                filters[name] = function
                filter_owners[name] = owner
            return register

        _collect(pm, "dupcheck_register_node_types", node_register)
        _collect(pm, "dupcheck_register_template_filters", filter_register)
        return cls(node_types, owners, filters, pm, filter_owners)


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry of this process's plugins, built once."""
    global _default
    if _default is None:
        _default = Registry.from_plugins(make_plugin_manager())
    return _default
