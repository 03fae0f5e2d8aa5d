"""Extract the one Pipedrive v2 operation the tests use from the 1 MB spec.

Run from the repository root (needs PyYAML):

    .venv/bin/python tests/vendor_specs/pipedrive/extract.py \
        /work/shared/crm-specs/pipedrive/openapi-v2.yaml > tests/vendor_specs/pipedrive/persons_search.v2.json

Keeps openapi, info, servers, the path item of /persons/search, the
securitySchemes it names, and every #/components/... object reachable from
them by $ref; all else is dropped. Nothing is edited.
"""

from __future__ import annotations

import json
import sys

import yaml

PATHS = ("/persons/search",)


def refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for v in node.values():
            yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def main(src: str) -> dict:
    with open(src, encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out = {k: spec[k] for k in ("openapi", "info", "servers") if k in spec}
    out["paths"] = {p: spec["paths"][p] for p in PATHS}
    components: dict = {}
    schemes = {name for p in PATHS for op in spec["paths"][p].values() if isinstance(op, dict)
               for req in op.get("security", []) for name in req}
    if schemes:
        components["securitySchemes"] = {n: spec["components"]["securitySchemes"][n] for n in sorted(schemes)}
    todo = list(refs(out["paths"]))
    seen = set()
    while todo:
        ref = todo.pop()
        if ref in seen or not ref.startswith("#/components/"):
            continue
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)
        obj = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = obj
        todo.extend(refs(obj))
    out["components"] = components
    return out


if __name__ == "__main__":
    json.dump(main(sys.argv[1]), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
