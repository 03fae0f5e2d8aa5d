"""The engine contract: the hooks a workflow engine calls.

A host (the reference engine in :mod:`dupcheck_plugin.engine`, or any other)
creates a ``pluggy.PluginManager("dupcheck")``, adds these specs, loads the
``dupcheck`` entry points and calls the hooks with keyword arguments only.
Registration hooks take a ``register`` callback so that the host, not the
plugin, decides what a name clash means (it reports both plugins).

Lifecycle, in the order a host uses the hooks:

1. configuration: :func:`dupcheck_register_node_types`,
   :func:`dupcheck_register_template_filters`;
2. start-up: :func:`dupcheck_make_store`;
3. per lead: :func:`dupcheck_decision_made`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

from . import PROJECT_NAME

if TYPE_CHECKING:
    from .types import NodeType, Store

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def dupcheck_register_node_types(register: Callable[["NodeType"], None]) -> None:
    """Register the workflow node types this plugin provides.

    Called once per plugin manager, when the host builds its node-type
    registry. A workflow's ``[[nodes]]`` entry names a type by
    ``NodeType.name``; its ``config`` table is validated against
    ``NodeType.config_schema`` before ``NodeType.factory`` builds the node.

    :param register: call it with one :class:`~dupcheck_plugin.types.NodeType`
        per node type. Registering a name another plugin already registered
        is an error the host reports with both plugins' names.
    """


@hookspec
def dupcheck_register_template_filters(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register Jinja filters usable in adaptor request templates.

    Called once per plugin manager, before any adaptor is compiled. Filters
    run inside the sandbox on lead values; they must be pure functions of
    their arguments and return strings (a phone number stays a string).

    :param register: call it as ``register(name, function)``. A name
        registered twice is an error naming both plugins.
    """


@hookspec(firstresult=True)
def dupcheck_make_store(settings: dict[str, Any]) -> "Store | None":
    """Provide the store that decisions are applied to.

    The store holds the leads, the account's DNC list and the decision
    records (see :class:`~dupcheck_plugin.types.Store`): a decision's lead,
    DNC entry and record must land in one transaction. The built-in plugin
    answers with the embedded SQLite store; a plugin registered ahead of it
    can answer instead (a CRM-backed lead store, say).

    Stops at first non-None result.

    :param settings: host settings; the reference engine passes ``{"db":
        path}`` from ``--db`` and may add keys, so read only what you know.
    """


@hookspec
def dupcheck_decision_made(record: dict[str, Any]) -> None:
    """Observe one decision record after it has been stored.

    Called once per lead, after the store committed it, from the host's
    event loop: keep it quick and never raise (metrics, logs, webhooks
    that queue). The record is the public decision-record JSON object
    documented in the README; secrets in it are already masked.

    :param record: the decision record; do not mutate it.
    """
