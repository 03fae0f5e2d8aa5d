"""``docs/reference.md``: every key of adaptors and workflows, written from the schemas.

``python -m dupcheck_plugin.config.reference`` rewrites the file; a test
fails while the file and the schemas disagree, so a key added to a schema
is documented by running this, never by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..resources import shipped_dir
from .bundle import NODE_SCHEMAS

Schema = Mapping[str, Any]

HEADER = """# Reference: every key of adaptors and workflows

Written by `python -m dupcheck_plugin.config.reference` from the JSON Schemas in
`schemas/` (a test fails when they disagree): do not edit by hand. A key marked
*required* must be present; `<name>` stands for a key you choose; `[]` for the
items of a list (`[[nodes]]`, `rules = [...]`).
"""

SECTIONS = (
    ("Adaptor", "adaptor.schema.json", "An adaptor file (`adaptors/*.toml`, first line "
     "`#:schema ../schemas/adaptor.schema.json`)."),
    ("Workflow", "workflow.schema.json", "A workflow file (`workflows/*.toml`, first line "
     "`#:schema ../schemas/workflow.schema.json`). The `config` table of a node depends on its `type`: see below."),
) + tuple((f"Node `{node}`: `config`", file, f"The `config` table of a `[[nodes]]` entry with `type = \"{node}\"`.")
          for node, file in NODE_SCHEMAS.items())


def generate(schemas: Mapping[str, Schema] | None = None) -> str:
    schemas = schemas or _load()
    out = [HEADER]
    for title, file, intro in SECTIONS:
        schema = schemas[file]
        out += [f"## {title}", "", intro, ""]
        if schema.get("description"):
            out += [_cell(schema["description"]), ""]
        out += ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
        out += [f"| `{key}`{' *required*' if required else ''} | {kind} | {default} | {text} |"
                for key, required, kind, default, text in _rows(schema, schema, "")]
        out.append("")
    return "\n".join(out)


def _load() -> dict[str, Schema]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in shipped_dir("schemas").glob("*.schema.json")}


def _resolve(root: Schema, schema: Schema) -> Schema:
    """Follow a local ``$ref`` (merged with the keywords next to it)."""
    seen = 0
    while "$ref" in schema and schema["$ref"].startswith("#/") and seen < 20:
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema


def _branches(root: Schema, schema: Schema) -> list[Schema]:
    schema = _resolve(root, schema)
    out = [schema]
    for word in ("anyOf", "oneOf"):
        for sub in schema.get(word, ()):
            out += _branches(root, sub)
    return out


def _object_branch(root: Schema, schema: Schema) -> Schema | None:
    for branch in _branches(root, schema):
        if "properties" in branch or isinstance(branch.get("additionalProperties"), dict):
            return branch
    return None


def _rows(root: Schema, schema: Schema, prefix: str) -> Iterator[tuple[str, bool, str, str, str]]:
    obj = _object_branch(root, schema)
    if obj is None:
        return
    required = set(obj.get("required", ()))
    for name, spec in _properties(root, obj).items():
        yield from _row(root, spec, f"{prefix}{name}", name in required)
    extra = obj.get("additionalProperties")
    if isinstance(extra, dict):
        yield from _row(root, extra, f"{prefix}<name>", False)


def _properties(root: Schema, obj: Schema, depth: int = 0) -> dict[str, Schema]:
    """The keys an object may have: its own, then those its conditions and
    alternatives add (if/then/else, allOf, anyOf, oneOf), first description wins."""
    props = dict(obj.get("properties", {}))
    if depth > 5:
        return props
    subs = [obj.get("then"), obj.get("else")] + list(obj.get("allOf", ())) + list(obj.get("anyOf", ())) \
        + list(obj.get("oneOf", ()))
    for sub in subs:
        if isinstance(sub, Mapping):
            for name, spec in _properties(root, _resolve(root, sub), depth + 1).items():
                if name not in props or ("description" in spec and "description" not in _resolve(root, props[name])):
                    props[name] = spec
    return props


def _row(root: Schema, spec: Schema, key: str, required: bool) -> Iterator[tuple[str, bool, str, str, str]]:
    resolved = _resolve(root, spec)
    yield key, required, _type(root, resolved), _default(resolved), _description(root, resolved)
    if _is_template_value(resolved) or key.count(".") > 8:  # free-form data (a request body) or recursion
        return
    if _object_branch(root, resolved) is not None:
        yield from _rows(root, resolved, f"{key}.")
    for branch in _branches(root, resolved):
        items = branch.get("items")
        if branch.get("type") == "array" and isinstance(items, dict) and _object_branch(root, items) is not None:
            yield from _rows(root, items, f"{key}[].")
            break


def _is_template_value(schema: Schema) -> bool:
    # request.body / request.headers: free-form data, documented by their description
    return "anyOf" in schema and any(b.get("type") == "string" for b in schema["anyOf"])


def _type(root: Schema, schema: Schema, nested: bool = False) -> str:
    names: list[str] = []
    for branch in _branches(root, schema):
        if "enum" in branch:
            names.append(" \\| ".join(f"`{json.dumps(v)}`" for v in branch["enum"]))
        elif "const" in branch:
            names.append(f"`{json.dumps(branch['const'])}`")
        elif "type" in branch:
            kinds = branch["type"] if isinstance(branch["type"], list) else [branch["type"]]
            for kind in kinds:
                word = {"object": "table", "array": "list", "number": "number", "integer": "integer"}.get(kind, kind)
                if kind == "array" and isinstance(branch.get("items"), dict) and not nested:
                    inner = _type(root, branch["items"], nested=True)
                    word = f"list of {inner}" if inner and " or " not in inner else "list"
                names.append(word)
    unique = list(dict.fromkeys(n for n in names if n))
    return " or ".join(unique)


def _default(schema: Schema) -> str:
    return f"`{json.dumps(schema['default'])}`" if "default" in schema else ""


def _description(root: Schema, schema: Schema) -> str:
    parts = [schema.get("description", "")]
    limits = []
    for word, text in (("minimum", "at least"), ("exclusiveMinimum", "more than"), ("maximum", "at most"),
                       ("minLength", "length at least"), ("pattern", "matches")):
        if word in schema:
            value = f"`{schema[word]}`" if word == "pattern" else schema[word]
            limits.append(f"{text} {value}")
    if limits:
        parts.append("(" + ", ".join(limits) + ")")
    return _cell(" ".join(p for p in parts if p))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "docs" / "reference.md"
    target.write_text(generate(), encoding="utf-8")
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
