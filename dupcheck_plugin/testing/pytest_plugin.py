"""dupcheck's pytest plugin (the ``pytest11`` entry point): fixtures to test
an adaptor, a workflow or a plugin against a CRM that dupcheck does not
ship, without writing a server.

- ``crm_stub``: a :class:`~dupcheck_plugin.testing.CrmStub` on a loopback port;
  program it with ``crm_stub.answer(phone, body, status=..., delay_s=...)``.
- ``memory_store``: a fresh :class:`~dupcheck_plugin.testing.MemoryStore`.
- ``dupcheck_decide``: ``dupcheck_decide(workflow, leads, **options)`` runs
  the leads through the workflow against ``crm_stub`` (by default), one
  after the other, and returns their stored decision records.

Imports are made inside the fixtures: a test session that uses none of them
pays nothing for this plugin.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pytest


@pytest.fixture
def crm_stub():
    from .crm_stub import CrmStub

    with CrmStub() as stub:
        yield stub


@pytest.fixture
def memory_store():
    from .memory_store import MemoryStore

    return MemoryStore()


@pytest.fixture
def dupcheck_decide(crm_stub, memory_store):
    """``decide(workflow, leads, *, crm_url=crm_stub.url, environ=None, plugins=(),
    store=memory_store, check_dup=0, check_dnc=False) -> [record, ...]``.

    ``workflow``: a shipped name or a path; ``environ``: the secrets (unset
    ones get a placeholder: the stub accepts any token); ``plugins``: more
    plugin objects to register (a node type, a filter, an observer under
    test)."""
    import asyncio

    from ..host import Host, Workflow
    from ..plugins import Registry, make_plugin_manager

    def decide(workflow: str, leads: Iterable[Mapping[str, Any]], *, crm_url: str | None = None,
               environ: Mapping[str, str] | None = None, plugins: Iterable[Any] = (),
               store=None, check_dup: int = 0, check_dnc: bool = False) -> list[dict[str, Any]]:
        pm = make_plugin_manager()
        for plugin in plugins:
            pm.register(plugin)
        pm.check_pending()
        registry = Registry.from_plugins(pm)
        env = dict(environ or {})
        for name in Workflow.load(workflow, registry=registry, offline=True).secret_names:
            env.setdefault(name, "stub-secret")

        async def go() -> list[dict[str, Any]]:
            host = Host.open(workflow, registry=registry, store=store or memory_store,
                             crm_url=crm_url or crm_stub.url, environ=env)
            async with host:
                return [await host.decide(lead, source_row=i, check_dup=check_dup, check_dnc=check_dnc)
                        for i, lead in enumerate(leads, 1)]

        return asyncio.run(go())

    return decide
