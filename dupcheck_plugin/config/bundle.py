"""The workflow schema carries the node schemas it names, so that editors
resolve it offline.

Taplo (and so VS Code's Even Better TOML) resolves a ``$ref`` to another
file against the schema's ``$id``, a URL it then tries to download. The
shipped ``workflow.schema.json`` therefore holds copies of the node schemas
(``convoso_connect.schema.json``, ``api_duplicate_check.schema.json``)
under ``$defs`` and refers to them with ``#/$defs/...`` only. The node
schema files stay the source: ``python -m dupcheck_plugin.config.bundle``
refreshes the copies, and a test fails while they differ.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any, Mapping

from ..resources import shipped_dir

# node type -> its schema file; the workflow schema checks these nodes' config itself
NODE_SCHEMAS = {"convoso_connect": "convoso_connect.schema.json",
                "api_duplicate_check": "api_duplicate_check.schema.json"}


def embedded(schema: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``schema`` as ``$defs/<name>`` of another document: no ``$id``, local refs re-rooted."""
    out = {k: copy.deepcopy(v) for k, v in schema.items() if k not in ("$schema", "$id")}
    return _reroot(out, f"#/$defs/{name}")


def _reroot(value: Any, root: str) -> Any:
    if isinstance(value, dict):
        return {k: (root + v[1:] if k == "$ref" and isinstance(v, str) and v.startswith("#") else _reroot(v, root))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_reroot(v, root) for v in value]
    return value


def bundle(workflow: Mapping[str, Any], schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The workflow schema with fresh copies of the node schemas in ``$defs``."""
    out = copy.deepcopy(dict(workflow))
    defs = out.setdefault("$defs", {})
    for name, file in NODE_SCHEMAS.items():
        defs[name] = embedded(schemas[file], name)
    return out


def dumps(schema: Mapping[str, Any]) -> str:
    """JSON as the schemas are written by hand: a container that fits on a line stays on one."""
    return _dump(schema, 0) + "\n"


def _dump(value: Any, indent: int, lead: int = 0, width: int = 120) -> str:
    """``lead``: characters before the value on its line (its key)."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, (dict, list)) or not value or indent + lead + len(flat) <= width:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            key = json.dumps(k, ensure_ascii=False)
            items.append(f"{pad}{key}: {_dump(v, indent + 2, len(key) + 2, width)}")
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    return "[\n" + ",\n".join(pad + _dump(v, indent + 2, 0, width) for v in value) + "\n" + " " * indent + "]"


def main() -> int:
    folder = shipped_dir("schemas")
    schemas = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.schema.json")}
    path = folder / "workflow.schema.json"
    text = dumps(bundle(schemas["workflow.schema.json"], schemas))
    if path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
        print(f"{path}: node schemas refreshed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
