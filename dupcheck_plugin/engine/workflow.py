"""Workflow files: load, check (schema, node types, references), build nodes.

The engine knows node types only through the registry the hooks filled,
exactly as a third-party engine would.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..adaptor.model import Adaptor
from ..config.adaptors import compile_adaptor
from ..config.kinds import file_kind
from ..config.problems import ConfigError, Problem
from ..config.schemas import schema_problems, shipped_schema_problems, validator_for_schema
from ..config.suggest import did_you_mean
from ..config.toml import load_toml
from ..errors import DupcheckError
from ..plugins import Registry, default_registry
from ..resources import AmbiguousName, find_named, shipped_dir, shipped_names
from ..types import CHECK_OUTCOME, CRM_ANSWER, CheckNode, CrmNode, Node, NodeType, WorkflowView

# node types whose config the workflow schema itself checks (if/then): no second pass
_SCHEMA_COVERED = {"convoso_connect", "api_duplicate_check"}


@dataclass(frozen=True)
class NodeSpec:
    id: str
    type: str
    config: dict[str, Any]


@dataclass
class WorkflowSpec:
    name: str
    source: str
    base_dir: Path
    nodes: list[NodeSpec]
    defaults: dict[str, Any]
    inputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    alarm: dict[str, Any] = field(default_factory=dict)  # the duplicate alarm's settings (window, factor, jump)
    # the adaptors compiled while checking, so that building the nodes does not compile them again
    adaptors: AdaptorResolver | None = field(default=None, repr=False, compare=False)

    @property
    def sinks(self) -> list[str]:
        """Nodes no other node reads: the engine runs these; they pull the rest."""
        used = {i for ins in self.inputs.values() for i in ins}
        return [n.id for n in self.nodes if n.id not in used]


class AdaptorResolver:
    """Finds and compiles adaptors once per path."""

    def __init__(self, base_dir: Path, filters: Mapping[str, Any]):
        self.base_dir = base_dir
        self.filters = filters
        self._cache: dict[Path, tuple[Adaptor | None, list[Problem]]] = {}

    @property
    def folders(self) -> list[Path]:
        """Where a workflow's adaptors are looked for before the shipped ones."""
        return [self.base_dir, self.base_dir.parent / "adaptors"]

    def path_of(self, name: str) -> Path | None:
        """Raises AmbiguousName."""
        found = find_named("adaptors", name, self.folders)
        return found.resolve() if found else None

    def names(self) -> list[str]:
        """Adaptor names this workflow could use."""
        local = {p.stem for folder in self.folders if folder.is_dir() for p in folder.glob("*.toml")
                 if file_kind(p) == "adaptor"}
        return sorted(local | set(shipped_names("adaptors")))

    def resolve(self, name: str) -> tuple[Adaptor | None, list[Problem]]:
        try:
            path = self.path_of(name)
        except AmbiguousName as exc:
            return None, [Problem(name, (), str(exc), "ambiguous_name")]
        if path is None:
            return None, []
        if path not in self._cache:
            try:
                doc = load_toml(path)
            except ConfigError as exc:
                self._cache[path] = (None, exc.problems)
            else:
                self._cache[path] = compile_adaptor(doc, str(path), self.filters)
        return self._cache[path]


def check_workflow(doc: Mapping[str, Any], source: str, base_dir: Path, registry: Registry,
                   resolver: AdaptorResolver | None = None) -> tuple[WorkflowSpec | None, list[Problem]]:
    problems = shipped_schema_problems("workflow.schema.json", doc, source)
    if problems:
        return None, problems
    resolver = resolver or AdaptorResolver(base_dir, registry.filters)
    nodes = [NodeSpec(n["id"], n["type"], dict(n.get("config", {}))) for n in doc["nodes"]]
    types_by_id: dict[str, str] = {}
    for i, node in enumerate(nodes):
        if node.id in types_by_id:
            problems.append(Problem(source, ("nodes", i, "id"), f"duplicate node id {node.id!r}", "duplicate_id"))
        types_by_id.setdefault(node.id, node.type)
    view = WorkflowView(base_dir=base_dir, node_types=types_by_id, resolve_adaptor=resolver.resolve,
                        adaptor_names=resolver.names,
                        outputs={name: t.output for name, t in registry.node_types.items()})
    inputs: dict[str, tuple[str, ...]] = {}
    for i, node in enumerate(nodes):
        prefix = ("nodes", i, "config")
        node_type = registry.node_types.get(node.type)
        if node_type is None:
            known = ", ".join(sorted(registry.node_types)) or "none"
            problems.append(Problem(source, ("nodes", i, "type"), f"unknown node type {node.type!r} (registered: {known})",
                                    "unknown_node_type", suggestion=did_you_mean(node.type, registry.node_types)))
            continue
        if node.type not in _SCHEMA_COVERED:
            found = schema_problems(validator_for_schema(node_type.config_schema), node.config, source, prefix)
            if found:
                problems += found
                continue
        contract = factory_problem(node_type, node.id, node.config)
        if contract is not None:
            owner = registry.node_type_owner.get(node.type, "?")
            problems.append(Problem(source, ("nodes", i, "type"), f"node type {node.type!r} (plugin {owner}): {contract}",
                                    "node_contract"))
            continue
        refs = dict(node_type.inputs(node.config))
        inputs[node.id] = tuple(refs.values())
        for key, ref in refs.items():
            if ref not in types_by_id:
                problems.append(Problem(source, prefix + (key,), f"no node with id {ref!r} in this workflow (ids: {', '.join(types_by_id)})",
                                        "unknown_node", suggestion=did_you_mean(ref, types_by_id)))
            elif ref == node.id:
                problems.append(Problem(source, prefix + (key,), "a node cannot read its own output", "self_reference"))
        if node_type.check:
            for path, message, *suggestion in node_type.check(node.config, view):
                problems.append(Problem(source, prefix + tuple(path), message, "semantic",
                                        suggestion=suggestion[0] if suggestion else None))
    problems += _cycles(nodes, inputs, source)
    if problems:
        return None, problems
    return WorkflowSpec(name=doc.get("name") or Path(source).stem, source=source, base_dir=base_dir,
                        nodes=nodes, defaults=dict(doc.get("defaults", {})), inputs=inputs,
                        alarm=dict(doc.get("alarm", {})), adaptors=resolver), []


def _cycles(nodes: list[NodeSpec], inputs: Mapping[str, tuple[str, ...]], source: str) -> list[Problem]:
    state: dict[str, int] = {}

    def visit(nid: str) -> bool:
        if state.get(nid) == 1:
            return True
        if state.get(nid) == 2:
            return False
        state[nid] = 1
        cyc = any(visit(r) for r in inputs.get(nid, ()) if r in inputs)
        state[nid] = 2
        return cyc

    for i, n in enumerate(nodes):
        if n.id in inputs and n.id not in state and visit(n.id):
            return [Problem(source, ("nodes", i), f"node {n.id!r} is part of a cycle of node inputs", "cycle")]
    return []


def find_workflow(name_or_path: str) -> Path | None:
    """Raises ConfigError when the name is ambiguous or names an adaptor."""
    try:
        return find_named("workflows", name_or_path)
    except AmbiguousName as exc:
        raise ConfigError([Problem(name_or_path, (), str(exc), "ambiguous_name")]) from None


def load_workflow(name_or_path: str, registry: Registry | None = None) -> WorkflowSpec:
    """Load and check a workflow by path or shipped name; raises ConfigError."""
    registry = registry or default_registry()
    path = find_workflow(name_or_path)
    if path is None:
        known = ", ".join(sorted(p.stem for p in shipped_dir("workflows").glob("*.toml")))
        raise ConfigError([Problem(name_or_path, (), f"no such workflow (not a file; shipped: {known})", "not_found")])
    doc = load_toml(path)
    spec, problems = check_workflow(doc, str(path), path.resolve().parent, registry)
    if problems:
        raise ConfigError(problems)
    return spec


class _Build:
    """The BuildContext a node factory gets."""

    def __init__(self, spec: WorkflowSpec, registry: Registry, settings: Mapping[str, Any]):
        checked = spec.adaptors
        same = checked is not None and checked.base_dir == spec.base_dir and checked.filters is registry.filters
        self._resolver = checked if same else AdaptorResolver(spec.base_dir, registry.filters)
        self._nodes: dict[str, Node] = {}
        self.settings = settings

    def adaptor(self, name: str) -> Adaptor:
        adaptor, problems = self._resolver.resolve(name)
        if adaptor is None:
            raise ConfigError(problems or [Problem(name, (), "no such adaptor", "not_found")])
        return adaptor

    def node(self, node_id: str) -> Node:
        return self._nodes[node_id]


# what a node type's factory must return, by the type's output
NODE_BASES = {CRM_ANSWER: CrmNode, CHECK_OUTCOME: CheckNode}


def factory_problem(node_type: NodeType, node_id: str, config: Mapping[str, Any]) -> str | None:
    """What ``dupcheck check`` can tell of a node type's factory without calling it: that it
    takes ``(node_id, config, build)`` and, when it is the node's class, that the class
    subclasses the base its output needs and has an ``async def run``. None: nothing seen."""
    factory = node_type.factory
    try:
        inspect.signature(factory).bind(node_id, config, None)
    except TypeError as exc:
        return f"its factory cannot be called as factory(node_id, config, build): {exc}"
    except ValueError:  # no signature to read (a builtin): left to the build
        pass
    if isinstance(factory, type):
        return _class_problem(factory, NODE_BASES.get(node_type.output, Node))
    return None


def _class_problem(cls: type, base: type) -> str | None:
    if not issubclass(cls, base):
        return f"{cls.__name__} must subclass dupcheck_plugin.host.{base.__name__}"
    if not inspect.iscoroutinefunction(cls.run):
        return f"{cls.__name__}.run must be a coroutine: async def run(self, lead)"
    return None


def build_nodes(spec: WorkflowSpec, registry: Registry, settings: Mapping[str, Any]) -> dict[str, Node]:
    """Build every node; raises ConfigError when a factory returns something
    that is not the node its type declares (a plugin's bug, named)."""
    build = _Build(spec, registry, settings)
    for i, node in enumerate(spec.nodes):
        node_type = registry.node_types[node.type]
        owner = registry.node_type_owner.get(node.type, "?")

        def refused(message: str) -> ConfigError:
            return ConfigError([Problem(spec.source, ("nodes", i, "type"),
                                        f"node type {node.type!r} (plugin {owner}) {message}", "node_contract")])

        try:
            built = node_type.factory(node.id, node.config, build)
        except DupcheckError:  # a ConfigError of its own (a missing adaptor, say): as it is
            raise
        except Exception as exc:  # a plugin's factory: its failure named, not a bare TypeError
            raise refused(f"could not build node {node.id!r}: {type(exc).__name__}: {exc}") from exc
        base = NODE_BASES.get(node_type.output, Node)
        if not isinstance(built, base):
            raise refused(f"built a {type(built).__name__}, not a dupcheck_plugin.host.{base.__name__}: its class "
                          f"must subclass {base.__name__}")
        if not inspect.iscoroutinefunction(type(built).run):
            raise refused(f"built a {type(built).__name__} whose run is not a coroutine: async def run(self, lead)")
        build._nodes[node.id] = built
    return build._nodes
