"""dupcheck's own CPU per lead with the network taken out (issue 14): the
engine's whole path -- CSV reader thread, intake, phone lock, node graph,
rules, record, SQLite writer thread, ``--out`` line -- with a CRM node that
answers at once (one suspension, as a call would), in one process.
Process CPU (all threads) over the leads, measured after start-up.

Not part of ``make bench`` (a tool for engine work):

    python -m benchmarks.engine_cpu                      # this tree, 3 runs
    python -m benchmarks.engine_cpu TREE_A TREE_B        # two source trees, alternated

Two trees are compared as whole processes alternated A B A B (each run in a
process of its own with ``PYTHONPATH=TREE``; a tree needs ``dupcheck_plugin``
only), medians and [min-max].
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.stubbed import BENCH_WORKFLOW

LEADS = 10_000
# the client benchmarks' workflow (the same rules) with its CRM node answering at once, in process
_CRM_NODE = BENCH_WORKFLOW.index('type = "convoso_connect"')
WORKFLOW = (BENCH_WORKFLOW[:_CRM_NODE].replace('"bench_hubspot"', '"engine_cpu"')
            + 'type = "instant_crm"\nconfig = {}'
            + BENCH_WORKFLOW[BENCH_WORKFLOW.index("\n\n[[nodes]]", _CRM_NODE):])


def _registry():
    import pluggy

    from dupcheck_plugin.plugins import Registry, make_plugin_manager
    from dupcheck_plugin.types import CrmAnswer, CrmNode, NodeType

    body = {"total": 0, "results": []}

    class InstantCrm(CrmNode):
        def __init__(self, node_id, config, build):
            pass

        async def run(self, lead):
            await asyncio.sleep(0)  # a call suspends the lead once
            return CrmAnswer(status_code=200, headers={}, body=body, latency_ms=0.1,
                             request={"method": "POST", "url": "https://crm.example/search",
                                      "body": {"phone": lead.phone_e164}},
                             response={"body": body, "truncated": False, "bytes": 27})

    class Plugin:
        @pluggy.HookimplMarker("dupcheck")
        def dupcheck_register_node_types(self, register):
            register(NodeType(name="instant_crm", config_schema={"type": "object"}, factory=InstantCrm,
                              output="crm_answer"))

    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(Plugin(), name="engine_cpu")
    return Registry.from_plugins(pm)


async def _decide_all(tmp: Path, leads: Path, n: int) -> float:
    from dupcheck_plugin import aio
    from dupcheck_plugin.host import Host, open_source, stream_items
    from dupcheck_plugin.jsontext import dumps

    host = Host.open(str(tmp / "wf.toml"), db=str(tmp / "engine.db"), registry=_registry())
    aio.tune_gc()
    out = open(os.devnull, "w")
    stream, fmt = open_source(str(leads), None)
    started = time.process_time()
    async with host:
        summary = await host.run(stream_items(stream, fmt), concurrency=64, source=str(leads),
                                 on_record=lambda record: out.write(dumps(record) + "\n"))
    cpu = time.process_time() - started
    assert summary.total == n, summary.as_json()
    return cpu / n * 1e6


def one(n: int) -> float:
    """CPU us per lead of one run in this process (this tree)."""
    from dupcheck_plugin import aio

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "wf.toml").write_text(WORKFLOW)
        leads = tmp / "leads.csv"
        rows = (f"555{2_000_000 + i * 7919 % 8_000_000},First{i},Last{i},p{i}@example.com" for i in range(n))
        leads.write_text("phone_number,first_name,last_name,email\n" + "\n".join(rows) + "\n")

        async def go() -> float:
            return await _decide_all(tmp, leads, n)

        return aio.run(go())


def _child(tree: str, n: int) -> float:
    # this file, run as a script: the tree under test need not have it
    out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": tree}, cwd=tempfile.gettempdir())
    return float(out.stdout.split()[-1])


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        print(f"{one(int(argv[1])):.2f}")
        return
    trees = [a for a in argv if not a.isdigit()]
    n = next((int(a) for a in argv if a.isdigit()), LEADS)
    if not trees:
        runs = [one(n) for _ in range(3)]
        print(f"dupcheck's own CPU per lead, no network ({n:,} leads, x3): {_spread(runs)} us")
        return
    results: dict[str, list[float]] = {tree: [] for tree in trees}
    for _ in range(4):
        for tree in trees:
            results[tree].append(_child(tree, n))
    print(f"dupcheck's own CPU per lead, no network ({n:,} leads, x4 alternated, load {os.getloadavg()[0]:.1f}):")
    for tree, runs in results.items():
        print(f"  {tree}: {_spread(runs)} us")
    if len(trees) == 2:
        a, b = (statistics.median(results[t]) for t in trees)
        print(f"  B/A: {b / a:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
