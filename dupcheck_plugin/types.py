"""Small frozen types shared by the engine, the nodes and the stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence


class Node(Protocol):
    """A built workflow node. ``run`` is called at most once per lead.

    A node may also have ``health() -> dict`` (JSON-able): the host shows it
    in ``/healthz`` (a connection's circuit breaker does).
    """

    async def run(self, lead: "LeadContext") -> Any: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class NodeType:
    """What a plugin registers through ``dupcheck_register_node_types``.

    :ivar name: the ``type`` a workflow's node names.
    :ivar config_schema: JSON Schema (2020-12) of the node's ``config`` table.
    :ivar factory: ``factory(node_id, config, build) -> Node``; ``build`` is a
        :class:`BuildContext`.
    :ivar inputs: ``inputs(config) -> {config key: node id}``: the nodes whose
        output this node reads, by the config key that names them; the engine
        and ``dupcheck check`` verify they exist (reported at that key).
    :ivar description: one line for the docs.
    :ivar check: optional ``check(config, view) -> [(path, message)]`` for what
        a schema cannot see (a file that must exist, a node of the right type);
        ``view`` is a :class:`WorkflowView`. Paths are relative to ``config``.
    :ivar output: what ``run`` returns, by name, so other nodes can check what
        they read: ``"crm_answer"`` (a :class:`CrmAnswer`, what
        ``api_duplicate_check`` reads) or ``"check_outcome"``.
    """

    name: str
    config_schema: Mapping[str, Any]
    factory: Callable[[str, dict[str, Any], "BuildContext"], Node]
    inputs: Callable[[Mapping[str, Any]], Mapping[str, str]] = lambda config: {}
    description: str = ""
    check: Callable[[Mapping[str, Any], "WorkflowView"], Sequence[tuple[tuple, str]]] | None = None
    output: str | None = None


@dataclass(frozen=True)
class WorkflowView:
    """What a node type's ``check`` sees of the workflow it is in.

    :ivar base_dir: the workflow file's folder (relative adaptor paths start here).
    :ivar node_types: node id -> type name, for every node of the workflow.
    :ivar resolve_adaptor: ``resolve_adaptor(name) -> (adaptor or None, problems)``.
    :ivar outputs: registered node type name -> its ``output``.
    """

    base_dir: Any
    node_types: Mapping[str, str]
    resolve_adaptor: Callable[[str], tuple[Any, list]]
    outputs: Mapping[str, str | None] = field(default_factory=dict)


class BuildContext(Protocol):
    """What a node factory may ask of the host while building a workflow."""

    def adaptor(self, name: str) -> Any:
        """The compiled adaptor named ``name`` (shipped name or path)."""

    def node(self, node_id: str) -> Node:
        """An already-built node of the same workflow (built in input order)."""

    @property
    def settings(self) -> Mapping[str, Any]:
        """Host settings: ``crm_url`` override, ``concurrency``, ``defaults``..."""


@dataclass
class LeadContext:
    """One lead on its way through a workflow.

    Node outputs are computed lazily and at most once: a node asks for an
    upstream node's output with :meth:`output`, so a disabled duplicate check
    that never asks means the CRM is never called.
    """

    lead: dict[str, str]
    phone_e164: str | None
    _run_node: Callable[[str, "LeadContext"], Awaitable[Any]]
    _outputs: dict[str, Any] = field(default_factory=dict)

    async def output(self, node_id: str) -> Any:
        if node_id not in self._outputs:
            self._outputs[node_id] = await self._run_node(node_id, self)
        return self._outputs[node_id]


# CRM call error kinds: the closed set a decision record's crm.error names.
# circuit_open: the connection's breaker refused the call (the CRM kept failing); auth: no
# OAuth access token could be had (the token endpoint refused or failed)
CRM_ERRORS = ("timeout", "connection", "http_status", "unparsable", "rate_limited", "render", "circuit_open", "auth")
# the errors that mean no request reached the CRM
NOT_CALLED = ("render", "circuit_open", "auth")


@dataclass(frozen=True)
class CrmAnswer:
    """What the ``convoso_connect`` node hands downstream.

    ``error`` is None for an answer the rules may read, else one of
    :data:`CRM_ERRORS`. A 4xx answer is not an error by itself: rules with an
    ``http_status`` condition may decide on it; the duplicate check treats
    an unmatched non-2xx answer as an error.
    """

    status_code: int | None
    headers: Mapping[str, str]
    body: Any
    latency_ms: float
    error: str | None = None
    error_detail: str | None = None
    request: Mapping[str, Any] | None = None  # rendered, secrets masked
    attempts: int = 1
    record_id: str | None = None  # the CRM's record id, where the adaptor says where it is


class Store(Protocol):
    """Where decisions land: leads, the account DNC list, decision records.

    The host calls these from a single writer thread, one call at a time.
    """

    def apply(self, records: Sequence[dict[str, Any]]) -> None:
        """Store decisions in one transaction: for each record, its lead (when
        ``action == "created"``; the store sets ``record["lead_id"]``), its DNC
        entry (when ``dnc_added``; at most one entry per phone) and the record.
        All of them land or none does."""

    def find_leads(self, phone_e164: str, list_id: str | None = None) -> list[dict[str, Any]]:
        """Leads with this phone, newest first (optionally in one list)."""

    def dnc_add(self, phone_e164: str, reason: str, campaign_id: str = "0") -> tuple[int, bool]:
        """Add to the DNC list; returns (entry id, newly added)."""

    def dnc_contains(self, phone_e164: str, campaign_id: str = "0") -> bool: ...

    def dnc_search(self, phone_e164: str | None, campaign_id: str | None,
                   offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """(total, entries) of the DNC list, filtered."""

    def decisions(self, phone_e164: str) -> list[dict[str, Any]]:
        """Decision records for a phone, oldest first."""

    def close(self) -> None: ...
