"""Small frozen types shared by the engine, the nodes and the stores."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, NotRequired, Protocol, Sequence, TypedDict

if TYPE_CHECKING:
    from .rules.decide import DecidedBy, Decision, Settings
    from .store.contract import Commit, DncEntry, NewLead, Store, StoreError

from .frozen import one_step_init

__all__ = ["BuildContext", "CheckOutcome", "CheckNode", "Commit", "CrmAnswer", "CrmNode", "CrmSummary",
           "DecisionRecord", "DncEntry",
           "LeadContext", "NewLead", "Node", "NodeType", "Store", "StoreError", "WorkflowView",
           "CRM_ANSWER", "CHECK_OUTCOME", "CRM_ERRORS"]


# the store's types, re-exported for plugins; imported when first asked for, not by
# every command that needs only a node type (`dupcheck check`)
_STORE_TYPES = frozenset({"Commit", "DncEntry", "NewLead", "Store", "StoreError"})


def __getattr__(name: str) -> Any:
    if name in _STORE_TYPES:
        from .store import contract

        return getattr(contract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Node:
    """The base of every built workflow node (what a ``NodeType.factory``
    returns; the host refuses anything else). ``run`` is called at most once
    per lead. The rest has defaults a node overrides when it has something
    to say (docs/plugin-hooks.md, "The node contract")."""

    # leads worth having in flight so that this node's batches fill (a batching
    # connection); the host's default concurrency is at least the largest
    lead_capacity: int = 0

    async def run(self, lead: "LeadContext") -> Any:
        raise NotImplementedError(f"{type(self).__name__}.run")

    async def aclose(self) -> None:
        """Release what the node holds (connections); called once its workflow is retired."""

    def health(self) -> dict[str, Any] | None:
        """JSON-able state the host shows in ``/healthz`` and ``/metrics`` (a
        connection's circuit breaker), or None: nothing to show."""
        return None


@dataclass(frozen=True)
class NodeType:
    """What a plugin registers through ``dupcheck_register_node_types``.

    :ivar name: the ``type`` a workflow's node names.
    :ivar config_schema: JSON Schema (2020-12) of the node's ``config`` table.
    :ivar factory: ``factory(node_id, config, build) -> Node``; ``build`` is a
        :class:`BuildContext`. What it returns subclasses :class:`Node`
        (:class:`CrmNode` or :class:`CheckNode` for those outputs).
    :ivar inputs: ``inputs(config) -> {config key: node id}``: the nodes whose
        output this node reads, by the config key that names them; the engine
        and ``dupcheck check`` verify they exist (reported at that key).
    :ivar description: one line for the docs.
    :ivar check: optional ``check(config, view) -> [(path, message)]`` for what
        a schema cannot see (a file that must exist, a node of the right type);
        ``view`` is a :class:`WorkflowView`. Paths are relative to ``config``.
        A finding may carry a third item, the name a likely typo was meant to
        be (``dupcheck check`` shows it as "did you mean ...?").
    :ivar output: what ``run`` returns, by name, so other nodes and the host
        know what they read: :data:`CRM_ANSWER` (the node is a
        :class:`CrmNode`; ``api_duplicate_check`` reads its answer) or
        :data:`CHECK_OUTCOME` (a :class:`CheckNode`; the host takes the
        lead's decision from it).
    """

    name: str
    config_schema: Mapping[str, Any]
    factory: Callable[[str, dict[str, Any], "BuildContext"], Node]
    inputs: Callable[[Mapping[str, Any]], Mapping[str, str]] = lambda config: {}
    description: str = ""
    check: Callable[[Mapping[str, Any], "WorkflowView"], Sequence[tuple]] | None = None
    output: str | None = None


@dataclass(frozen=True)
class WorkflowView:
    """What a node type's ``check`` sees of the workflow it is in.

    :ivar base_dir: the workflow file's folder (relative adaptor paths start here).
    :ivar node_types: node id -> type name, for every node of the workflow.
    :ivar resolve_adaptor: ``resolve_adaptor(name) -> (adaptor or None, problems)``.
    :ivar outputs: registered node type name -> its ``output``.
    :ivar adaptor_names: the adaptor names this workflow can use (for "did you mean").
    """

    base_dir: Any
    node_types: Mapping[str, str]
    resolve_adaptor: Callable[[str], tuple[Any, list]]
    outputs: Mapping[str, str | None] = field(default_factory=dict)
    adaptor_names: Callable[[], list[str]] = lambda: []


class BuildContext(Protocol):
    """What a node factory may ask of the host while building a workflow."""

    def adaptor(self, name: str) -> Any:
        """The compiled adaptor named ``name`` (shipped name or path)."""

    def node(self, node_id: str) -> Node:
        """An already-built node of the same workflow (built in input order)."""

    @property
    def settings(self) -> Mapping[str, Any]:
        """Host settings: ``crm_url`` (replaces the CRM URL's origin),
        ``offline`` (nothing will be called), ``environ`` (the secrets),
        ``http_transport``, ``max_connections``, ``interactive`` (serve: a
        lead waits a bounded time for its connection's limiter),
        ``single_attempt`` (each CRM call makes one attempt: the host
        retries, as a workflow engine's retry policy does)."""


@dataclass
class LeadContext:
    """One lead on its way through a workflow.

    Node outputs are computed lazily and at most once: a node asks for an
    upstream node's output with :meth:`output`, so a disabled duplicate check
    that never asks means the CRM is never called.
    """

    lead: dict[str, str]
    phone_e164: str | None
    nodes: Mapping[str, Node]
    outputs: dict[str, Any] = field(default_factory=dict)

    async def output(self, node_id: str) -> Any:
        if node_id not in self.outputs:
            self.outputs[node_id] = await self.nodes[node_id].run(self)
        return self.outputs[node_id]


# CRM call error kinds: the closed set a decision record's crm.error names.
# circuit_open: the connection's breaker refused the call (the CRM kept failing); auth: no
# OAuth access token could be had (the token endpoint refused or failed); budget_spent: the
# connection's request budget is spent (or the CRM said so in a way that does not clear in
# seconds); throttled: the lead waited longer than the connection's max_wait for its limiter.
CRM_ERRORS = ("timeout", "connection", "http_status", "unparsable", "rate_limited", "render", "circuit_open", "auth",
              "budget_spent", "throttled")
# the errors that mean no request reached the CRM
NOT_CALLED = ("render", "circuit_open", "auth", "budget_spent", "throttled")


@one_step_init
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
    batch_size: int = 1  # leads asked in the same CRM request (the answer was split back per lead)
    cached: bool = False  # reused from the connection's answer cache: the CRM was not called
    retry_after: float | None = None  # seconds the CRM asked to wait before trying again (its Retry-After)
    response: Mapping[str, Any] | None = None  # the body as a record keeps it: secrets masked, bounded

    def as_json(self) -> dict[str, Any]:
        """A JSON object (a workflow engine's activity result); :meth:`from_json` reads it back."""
        out = asdict(self)
        out["headers"] = dict(self.headers)
        out["request"] = dict(self.request) if self.request is not None else None
        out["response"] = dict(self.response) if self.response is not None else None
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "CrmAnswer":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def read_recorded(status: int, headers: Mapping[str, str], body: bytes) -> CrmAnswer:
    """A recorded answer whose node says nothing of its format: the body as JSON, else as text."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = body.decode("utf-8", "replace")
    return CrmAnswer(status_code=status, headers=dict(headers), body=parsed, latency_ms=0.0)


class CrmSummary(TypedDict):
    """The record's ``crm``: how the CRM call went."""

    called: bool
    status_code: int | None
    latency_ms: float | None
    error: str | None
    error_detail: str | None
    attempts: int
    batch_size: int
    cached: bool


class DecisionRecord(TypedDict):
    """One lead's decision record, the public JSON contract: the README's
    "Decision records" table, field by field. Built once by
    :func:`dupcheck_plugin.engine.record.build_record`; a store keeps a copy
    with ``lead_id`` set and hands back new dicts, never changing the one it
    was given."""

    workflow: str
    source: str | None
    source_row: int | None
    decided_at: str
    lead: dict[str, str]
    phone_e164: str | None
    rules_row: int | None
    rules_row_name: str | None
    decided_by: DecidedBy
    action: str  # created | duplicate | rejected
    status: str | None
    dnc_added: bool
    success: bool
    code: int
    text: str
    detail: str | None
    checked: bool
    retryable: bool
    crm: CrmSummary
    crm_record_id: str | None
    request: dict[str, Any] | None
    response: dict[str, Any] | None  # the CRM answer's body: {body, truncated, bytes}, secrets masked
    lead_id: str | None
    api: NotRequired[dict[str, Any]]  # serve: how the API call asked
    idempotency_key: NotRequired[str | None]  # serve and the Temporal host
    temporal: NotRequired[dict[str, Any]]  # the Temporal host: which workflow run decided
    id: NotRequired[int]  # the store's id, in search_decisions and decision_by_id answers


# the outputs the host knows by name (NodeType.output)
CRM_ANSWER = "crm_answer"
CHECK_OUTCOME = "check_outcome"


class CrmNode(Node):
    """The base of a node whose type's output is :data:`CRM_ANSWER`: ``run``
    returns a :class:`CrmAnswer`. ``explain`` reads a recorded answer through
    ``read_answer`` and shows ``preview``; ``demo`` fills ``secret_names``
    with placeholders; ``dupcheck worker`` caps the CRM calls of all its
    workers at ``declared_rate``. The defaults suit a node that calls nothing."""

    secret_names: frozenset[str] = frozenset()  # the environment variables its request and auth read
    # requests per second its connection's ``limits`` allow (the adaptor's, the workflow's
    # override); None: unlimited. A host that spreads the calls over several processes
    # (Temporal's task-queue rate limit) caps them all together at this
    declared_rate: float | None = None

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> CrmAnswer:
        """A recorded answer, read as this node reads a live one (no I/O);
        by default :func:`read_recorded`."""
        return read_recorded(status, headers, body)

    def preview(self, lead: Mapping[str, str]) -> Mapping[str, Any] | None:
        """The request this lead would send, secrets masked; None (the default)
        when the node sends none or it cannot be rendered."""
        return None


@one_step_init
@dataclass(frozen=True)
class CheckOutcome:
    """What a :data:`CHECK_OUTCOME` node returns: the decision and the answer
    it was made on (None when the check is disabled and the CRM was not called)."""

    decision: "Decision"
    answer: CrmAnswer | None


class CheckNode(Node):
    """The base of a node whose type's output is :data:`CHECK_OUTCOME`: it reads the
    answer of node ``settings.connect`` and decides with ``settings`` (a
    rules table, see :mod:`dupcheck_plugin.rules.decide`)."""

    settings: "Settings"
