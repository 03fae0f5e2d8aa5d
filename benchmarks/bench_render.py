"""Per-lead rendering cost: one combined template (one context per lead)
against the baseline of one sandboxed Template.render per leaf."""

from __future__ import annotations

import time

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dupcheck_plugin.adaptor.model import load_adaptor
from dupcheck_plugin.adaptor.render import _walk

from .common import random_leads


def run(n: int = 20000) -> dict:
    adaptor = load_adaptor("hubspot_contacts_search")
    bound = adaptor.bind({"HUBSPOT_TOKEN": "x"})
    leads = random_leads(1000)
    # baseline: every leaf its own template, rendered one by one
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    from dupcheck_plugin.plugins import default_registry

    env.filters.update(default_registry().filters)
    spec = adaptor.request.spec
    leaves = [(p, env.from_string(src)) for p, src in _walk(spec, ())]
    for lead in leads:  # warm the phone cache for both
        bound.render(lead)

    def baseline(lead):
        ctx = adaptor.fields.template_vars(lead)
        ctx["secrets"] = {"HUBSPOT_TOKEN": "x"}
        return {p: t.render(ctx) for p, t in leaves}

    def timed(fn) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            fn(leads[i % len(leads)])
        return (time.perf_counter() - t0) / n * 1e6

    base = timed(baseline)
    ours = timed(bound.render)
    return {"leaves": len(leaves), "per_leaf_us": round(base, 1), "combined_us": round(ours, 1),
            "ratio": round(base / ours, 2)}


def main() -> None:
    r = run()
    print(f"render, HubSpot adaptor ({r['leaves']} template leaves), per lead:")
    print(f"  baseline, one Template.render per leaf: {r['per_leaf_us']} us")
    print(f"  dupcheck, one context + blocks (real and masked request): {r['combined_us']} us")
    print(f"  speed-up: {r['ratio']}x")


if __name__ == "__main__":
    main()
