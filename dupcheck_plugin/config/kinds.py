"""Which kind of config a TOML file is: adaptor or workflow.

By its ``#:schema`` line, else by its content (``[request]`` or
``[[nodes]]``), else by its folder's name (adaptors/, workflows/).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

KIND_BY_SCHEMA = {"adaptor.schema.json": "adaptor", "workflow.schema.json": "workflow"}
SCHEMA_BY_KIND = {kind: name for name, kind in KIND_BY_SCHEMA.items()}
KIND_BY_FOLDER = {"adaptors": "adaptor", "workflows": "workflow"}

_DIRECTIVE = re.compile(r"^#:schema\s+(\S+)")
# without a parsed document (a syntax error, a quick look): the tables that tell the kinds apart
_WORKFLOW_TEXT = re.compile(r"^\s*(\[\[\s*nodes\s*\]\]|nodes\s*=)", re.MULTILINE)
_ADAPTOR_TEXT = re.compile(r"^\s*(\[\s*request\s*[\].]|request\s*=)", re.MULTILINE)


def schema_target(text: str) -> str | None:
    """What the ``#:schema`` first line points at, if there is one."""
    match = _DIRECTIVE.match(text.split("\n", 1)[0].strip())
    return match.group(1) if match else None


def basename(target: str) -> str:
    return target.rstrip("/").rsplit("/", 1)[-1]


def kind_of(path: Path, text: str, doc: Mapping[str, Any] | None = None) -> str | None:
    target = schema_target(text)
    if target and basename(target) in KIND_BY_SCHEMA:
        return KIND_BY_SCHEMA[basename(target)]
    if doc is not None:
        workflow, adaptor = "nodes" in doc, "request" in doc
    else:
        workflow, adaptor = bool(_WORKFLOW_TEXT.search(text)), bool(_ADAPTOR_TEXT.search(text))
    if workflow != adaptor:
        return "workflow" if workflow else "adaptor"
    return KIND_BY_FOLDER.get(path.resolve().parent.name)


def file_kind(path: Path) -> str | None:
    """The kind of the file at ``path`` (None when unreadable or not telling)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return kind_of(path, text)
