"""This plugin's hook implementations: the two node types, the template
filters and the stores (embedded SQLite; PostgreSQL for a ``postgresql://`` URL). Registered like any third-party
plugin, registered once by the host (``plugins.DEFAULT_PLUGINS``)."""

from __future__ import annotations

from typing import Any

from . import hookimpl
from .adaptor.filters import BUILTIN_FILTERS
from .config.schemas import shipped_schemas
from .types import NodeType


def _convoso_connect(*args, **kwargs):
    # imported when a workflow is built, not when one is checked: it brings httpx and the connection code
    from .nodes.convoso_connect import ConvosoConnect

    return ConvosoConnect(*args, **kwargs)


# the rules table's node, imported by the first workflow that has one (its rules
# bring RE2): checking an adaptor, or registering the plugin, does not need it
def _api_duplicate_check(*args, **kwargs):
    from .nodes.api_duplicate_check import ApiDuplicateCheck

    return ApiDuplicateCheck(*args, **kwargs)


def _connect_check(config, view):
    from .nodes.connect_check import check  # a workflow's check only: checking an adaptor does not need it

    return check(config, view)


def _check_inputs(config):
    from .nodes.api_duplicate_check import inputs

    return inputs(config)


def _check_check(config, view):
    from .nodes.api_duplicate_check import check

    return check(config, view)


@hookimpl
def dupcheck_register_node_types(register) -> None:
    schemas = shipped_schemas()
    register(NodeType(
        name="convoso_connect",
        config_schema=schemas["convoso_connect.schema.json"],
        factory=_convoso_connect,
        description="Render the adaptor's request for the lead and call the CRM.",
        check=_connect_check,
        output="crm_answer",
    ))
    register(NodeType(
        name="api_duplicate_check",
        config_schema=schemas["api_duplicate_check.schema.json"],
        factory=_api_duplicate_check,
        inputs=_check_inputs,
        description="Apply the rules table to the CRM's answer: create, skip as duplicate, DNC, answer.",
        check=_check_check,
        output="check_outcome",
    ))


@hookimpl
def dupcheck_register_template_filters(register) -> None:
    for name, fn in BUILTIN_FILTERS.items():
        register(name, fn)


@hookimpl(trylast=True)
def dupcheck_make_store(settings: dict[str, Any]):
    db = settings.get("db") or "dupcheck.db"
    if str(db).startswith(("postgresql://", "postgres://")):
        from .store.postgres import PostgresStore  # optional extra: its ImportError says what to install

        return PostgresStore(str(db))
    from .store.sqlite import SqliteStore

    return SqliteStore(db)
