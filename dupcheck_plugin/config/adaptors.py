"""Adaptor files: find, read, check against the schema, compile.

The compiling itself is pure (:func:`dupcheck_plugin.adaptor.model.build_adaptor`);
the file system, the TOML reader and jsonschema stay here, at the edge.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..adaptor.model import Adaptor, build_adaptor
from ..resources import AmbiguousName, find_named
from .problems import ConfigError, Problem
from .schemas import shipped_schema_problems
from .toml import load_toml


def compile_adaptor(doc: Mapping[str, Any], source: str, filters: Mapping[str, Any],
                    check: bool = False) -> tuple[Adaptor | None, list[Problem]]:
    """The adaptor of a parsed document, or None and every problem found
    (``check``: for ``dupcheck check``, see :func:`build_adaptor`)."""
    problems = shipped_schema_problems("adaptor.schema.json", doc, source)
    if problems:
        return None, problems
    return build_adaptor(doc, source, filters, check)


def load_adaptor(name_or_path: str, filters: Mapping[str, Any] | None = None) -> Adaptor:
    """Load a shipped adaptor by name, or a file by path; raises ConfigError."""
    try:
        path = find_named("adaptors", name_or_path)
    except AmbiguousName as exc:
        raise ConfigError([Problem(name_or_path, (), str(exc), "ambiguous_name")]) from None
    if path is None:
        raise ConfigError([Problem(name_or_path, (), "no such adaptor (not a file, not a shipped adaptor name)", "not_found")])
    if filters is None:
        from ..plugins import default_registry

        filters = default_registry().filters
    adaptor, problems = compile_adaptor(load_toml(path), str(path), filters)
    if problems:
        raise ConfigError(problems)
    return adaptor
