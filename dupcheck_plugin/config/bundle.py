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


def embedded(schema: Mapping[str, Any], name: str, schemas: Mapping[str, Mapping[str, Any]] = {}) -> dict[str, Any]:
    """``schema`` as ``$defs/<name>`` of another document: no ``$id``, local refs
    re-rooted, refs into another shipped schema (``adaptor.schema.json#/$defs/x``) inlined."""
    out = {k: copy.deepcopy(v) for k, v in schema.items() if k not in ("$schema", "$id")}
    return _reroot(out, f"#/$defs/{name}", schemas)


def _reroot(value: Any, root: str, schemas: Mapping[str, Mapping[str, Any]], depth: int = 0) -> Any:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#") and ref.split("#", 1)[0] in schemas and depth < 10:
            file, _, pointer = ref.partition("#")
            target: Any = schemas[file]
            for part in pointer.strip("/").split("/") if pointer.strip("/") else []:
                target = target[part]
            inlined = {k: v for k, v in value.items() if k != "$ref"}
            inlined.update(_reroot(copy.deepcopy(target), root, schemas, depth + 1))
            return inlined
        return {k: (root + v[1:] if k == "$ref" and isinstance(v, str) and v.startswith("#")
                    else _reroot(v, root, schemas, depth)) for k, v in value.items()}
    if isinstance(value, list):
        return [_reroot(v, root, schemas, depth) for v in value]
    return value


def bundle(workflow: Mapping[str, Any], schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The workflow schema with fresh copies of the node schemas in ``$defs``."""
    out = copy.deepcopy(dict(workflow))
    defs = out.setdefault("$defs", {})
    for name, file in NODE_SCHEMAS.items():
        defs[name] = embedded(schemas[file], name, schemas)
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
