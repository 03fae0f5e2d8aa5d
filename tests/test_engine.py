"""The engine uses plugins only through the public hooks, as a third-party
engine would: a plugin's store, node type and observer all take part."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from dupcheck_plugin import hookimpl
from dupcheck_plugin.config.problems import ConfigError
from dupcheck_plugin.host import StoreError
from dupcheck_plugin.engine.runner import aiter_items
from dupcheck_plugin.host import Host as Engine
from dupcheck_plugin.plugins import DEFAULT_PLUGINS, Registry, make_plugin_manager
from dupcheck_plugin.store.sqlite import SqliteStore
from dupcheck_plugin.testing import MemoryStore
from dupcheck_plugin.types import CrmAnswer, CrmNode, NodeType

from conftest import write_workflow


def custom_node_workflow(tmp_path, node_type: str, config: str):
    """A workflow whose duplicate check reads a plugin's node instead of Convoso Connect."""
    wf = tmp_path / "wf.toml"
    wf.write_text(f"""
[[nodes]]
id = "crm"
type = "{node_type}"
config = {config}
[[nodes]]
id = "check"
type = "api_duplicate_check"
config = {{ connect = "crm", rules = [ {{ key = "total", match = "gt", value = 0, create_lead = false, add_to_dnc = false, success = false }} ] }}
""")
    return wf


def registry_with(*plugins) -> Registry:
    pm = make_plugin_manager(load_entrypoints=False)
    for p in plugins:
        pm.register(p)
    pm.check_pending()
    return Registry.from_plugins(pm)


def run(engine: Engine, leads: list[dict]) -> list[dict]:
    async def go():
        out = []
        async with engine:
            await engine.run(aiter_items((i, lead, None) for i, lead in enumerate(leads, 1)), concurrency=4,
                             on_record=out.append)
        return out

    return asyncio.run(go())


def test_hook_dupcheck_make_store(tmp_path, crm_sim, hubspot_env):
    store = MemoryStore()

    class StorePlugin:
        @hookimpl
        def dupcheck_make_store(self, settings):
            return store

    wf = write_workflow(tmp_path, [{"key": "total", "match": "gt", "value": 0, "create_lead": False,
                                    "add_to_dnc": True, "success": False}])
    engine = Engine.open(str(wf), crm_url=crm_sim.url, registry=registry_with(StorePlugin()))
    records = run(engine, [{"phone_number": "+15550100003"}, {"phone_number": "5550100190"}])
    assert sorted(r["action"] for r in records) == ["created", "duplicate"]
    assert [e["phone_e164"] for e in store.dnc] == ["+15550100003"]
    assert [lead["phone_e164"] for lead in store.leads] == ["+15550100190"] and len(store.records) == 2
    assert store.closed and not (tmp_path / "dupcheck.db").exists()


def test_a_plugin_store_that_is_not_a_store_is_refused_at_start(tmp_path):
    class NotAStore:
        def apply(self, commits):
            return []

    class StorePlugin:
        @hookimpl
        def dupcheck_make_store(self, settings):
            return NotAStore()

    wf = write_workflow(tmp_path, [])
    with pytest.raises(StoreError, match="NotAStore is not a dupcheck Store"):
        Engine.open(str(wf), registry=registry_with(StorePlugin()), environ={"HUBSPOT_TOKEN": "x"})


def test_without_a_plugin_store_the_builtin_sqlite_store_answers(tmp_path):
    pm = make_plugin_manager(load_entrypoints=False)
    store = pm.hook.dupcheck_make_store(settings={"db": str(tmp_path / "x.db")})
    assert isinstance(store, SqliteStore)
    store.close()


def test_hook_dupcheck_decision_made(tmp_path, crm_sim, hubspot_env):
    seen: list[dict[str, Any]] = []

    class Observer:
        @hookimpl
        def dupcheck_decision_made(self, record):
            assert record["action"] != "created" or record["lead_id"] is not None  # stored first
            seen.append(record)

    class Broken:
        @hookimpl
        def dupcheck_decision_made(self, record):
            raise RuntimeError("observer bug")

    wf = write_workflow(tmp_path, [])
    engine = Engine.open(str(wf), db=str(tmp_path / "d.db"), crm_url=crm_sim.url,
                         registry=registry_with(Observer(), Broken()))
    records = run(engine, [{"phone_number": f"55501002{i:02d}"} for i in range(10)])
    assert len(records) == 10 and len(seen) == 10  # a broken observer does not cost a decision
    assert sorted(r["source_row"] for r in seen) == list(range(1, 11))


def test_hook_dupcheck_register_node_types(tmp_path, hubspot_env):
    """A plugin's node stands in for Convoso Connect: the duplicate check reads its answer."""

    class FakeCrm(CrmNode):
        def __init__(self, node_id, config, build):
            self.known = set(config["known"])

        async def run(self, lead):
            hit = lead.phone_e164 in self.known
            return CrmAnswer(status_code=200, headers={}, body={"total": int(hit)}, latency_ms=0.0)

    class NodePlugin:
        @hookimpl
        def dupcheck_register_node_types(self, register):
            register(NodeType(
                name="fake_crm",
                config_schema={"type": "object", "required": ["known"], "additionalProperties": False,
                               "properties": {"known": {"type": "array", "items": {"type": "string"}}}},
                factory=FakeCrm, output="crm_answer"))

    wf = custom_node_workflow(tmp_path, "fake_crm", '{ known = ["+15550100301"] }')
    registry = registry_with(NodePlugin())
    engine = Engine.open(str(wf), db=str(tmp_path / "d.db"), registry=registry)
    records = run(engine, [{"phone_number": "5550100301"}, {"phone_number": "5550100302"}])
    assert sorted((r["lead"]["phone_number"], r["action"]) for r in records) == [
        ("5550100301", "duplicate"), ("5550100302", "created")]
    # the plugin's schema is enforced on its node's config
    wf = custom_node_workflow(tmp_path, "fake_crm", "{ known = 5 }")
    with pytest.raises(ConfigError) as exc:
        Engine.open(str(wf), db=str(tmp_path / "d.db"), registry=registry)
    assert "nodes[0].config.known" in str(exc.value)


def test_a_node_that_is_not_the_contract_base_is_refused_at_load(tmp_path):
    """A factory must return a CrmNode for a crm_answer type: the host then calls
    read_answer, preview, secret_names, health and lead_capacity without guessing."""

    class Loose:  # a run() and nothing else, not a CrmNode
        def __init__(self, node_id, config, build):
            pass

        async def run(self, lead):
            return CrmAnswer(status_code=200, headers={}, body={"total": 0}, latency_ms=0.0)

    class Bare(CrmNode):  # only run(): the contract's defaults do the rest
        def __init__(self, node_id, config, build):
            pass

        async def run(self, lead):
            return CrmAnswer(status_code=200, headers={}, body={"total": 0}, latency_ms=0.0)

    def plugin(factory):
        class NodePlugin:
            @hookimpl
            def dupcheck_register_node_types(self, register):
                register(NodeType(name="fake_crm", config_schema={"type": "object"}, factory=factory,
                                  output="crm_answer"))
        return registry_with(NodePlugin())

    wf = custom_node_workflow(tmp_path, "fake_crm", "{}")
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.type: .*Loose must subclass dupcheck_plugin.host.CrmNode"):
        Engine.open(str(wf), db=str(tmp_path / "d.db"), registry=plugin(Loose))
    engine = Engine.open(str(wf), db=str(tmp_path / "d.db"), registry=plugin(Bare))
    try:
        workflow = engine.workflow
        assert (workflow.secret_names, workflow.health(), engine.lead_capacity()) == (frozenset(), {}, 0)
        assert workflow.crm.read_answer(200, {}, b'{"total": 1}').body == {"total": 1}  # explain's default reading
        assert workflow.crm.read_answer(200, {}, b"<xml/>").body == "<xml/>"
        assert workflow.crm.preview({"phone_number": "5550100301"}) is None
    finally:
        asyncio.run(engine.aclose())


def _fake_crm(factory):
    class NodePlugin:
        @hookimpl
        def dupcheck_register_node_types(self, register):
            register(NodeType(name="fake_crm", config_schema={"type": "object"}, factory=factory, output="crm_answer"))
    return registry_with(NodePlugin())


class _OneArgument(CrmNode):
    def __init__(self, config):  # the factory is called factory(node_id, config, build)
        pass

    async def run(self, lead):
        return CrmAnswer(status_code=200, headers={}, body={"total": 0}, latency_ms=0.0)


class _NotAsync(CrmNode):
    def __init__(self, node_id, config, build):
        pass

    def run(self, lead):
        return CrmAnswer(status_code=200, headers={}, body={"total": 0}, latency_ms=0.0)


def _raising(node_id, config, build):
    raise KeyError("url")


@pytest.mark.parametrize("factory, says", [
    (_OneArgument, "its factory cannot be called as factory(node_id, config, build)"),
    (_NotAsync, "_NotAsync.run must be a coroutine: async def run(self, lead)"),
])
def test_a_node_type_that_cannot_work_is_a_check_problem_naming_it(tmp_path, factory, says):
    """Before: `check` said ok; `run` stopped with "__init__() takes 2 positional arguments
    but 4 were given" (no node, no plugin named), or rejected every lead (6500) for a run
    that is not a coroutine."""
    from dupcheck_plugin.config.checker import check_paths

    wf = custom_node_workflow(tmp_path, "fake_crm", "{}")
    [result] = check_paths([wf], _fake_crm(factory))
    [problem] = result.problems
    assert problem.code == "node_contract" and problem.path == ("nodes", 0, "type")
    assert "node type 'fake_crm'" in problem.message and says in problem.message


def test_a_factory_that_fails_is_named_at_load_and_a_wrong_answer_type_in_the_lead_s_record(tmp_path):
    wf = custom_node_workflow(tmp_path, "fake_crm", "{}")
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.type: node type 'fake_crm' .*could not build node 'crm': "
                                          r"KeyError: 'url'"):
        Engine.open(str(wf), db=str(tmp_path / "d.db"), registry=_fake_crm(_raising))

    class Dict(CrmNode):  # answers a dict, not a CrmAnswer
        def __init__(self, node_id, config, build):
            pass

        async def run(self, lead):
            return {"total": 0}

    [record] = run(Engine.open(str(wf), db=str(tmp_path / "e.db"), registry=_fake_crm(Dict)),
                   [{"phone_number": "5550100301"}])
    assert record["decided_by"] == "node_error" and record["code"] == 6500
    assert "node 'crm' returned a dict, not the CrmAnswer its node type declares" in record["detail"]


def test_builtin_plugins_are_registered_like_third_party_ones():
    pm = make_plugin_manager(load_entrypoints=False)
    assert [pm.get_name(p) for p in pm.get_plugins()] == [name for name, _ in DEFAULT_PLUGINS]
    assert "convoso_connect" in Registry.from_plugins(pm).node_types
    # the engine knows node types only through the hooks: without the built-in plugin there are none
    pm.unregister(name="builtin")
    assert Registry.from_plugins(pm).node_types == {} and Registry.from_plugins(pm).filters == {}


def test_the_readme_plugin_example_works(tmp_path):
    """The README's plugin snippet, run as written: its node stands in for Convoso Connect."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (snippet,) = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "local_book" in block]
    module: dict = {}
    exec(compile(textwrap.dedent(snippet), "README.md", "exec"), module)

    class Plugin:
        dupcheck_register_node_types = staticmethod(module["dupcheck_register_node_types"])

    wf = custom_node_workflow(tmp_path, "local_book", '{ phones = ["+15550100401"] }')
    engine = Engine.open(str(wf), db=str(tmp_path / "d.db"), registry=registry_with(Plugin()))
    records = run(engine, [{"phone_number": "5550100401"}, {"phone_number": "5550100402"}])
    assert sorted((r["phone_e164"], r["action"]) for r in records) == [
        ("+15550100401", "duplicate"), ("+15550100402", "created")]


def test_hook_dupcheck_register_template_filters(tmp_path):
    """A plugin's filter is used by an adaptor's request template, in the request sent."""

    class FilterPlugin:
        @hookimpl
        def dupcheck_register_template_filters(self, register):
            register("acme_digits", lambda value: "".join(ch for ch in str(value) if ch.isdigit()))

    (tmp_path / "acme.toml").write_text(textwrap.dedent("""\
        name = "acme"
        [fields]
        phone_number = { mapped_to = "phone", required = true }
        [request]
        method = "GET"
        url = "https://crm.example/search"
        [request.query]
        q = "{{ phone | acme_digits }}"
        """))
    wf = write_workflow(tmp_path, [{"key": "total", "match": "gt", "value": 0, "create_lead": False,
                                    "add_to_dnc": False, "success": False}], adaptor="acme")
    sent = []

    def crm(request):
        sent.append(request)
        return httpx.Response(200, json={"total": 1})

    async def go():
        async with Engine.open(str(wf), registry=registry_with(FilterPlugin()), store=MemoryStore(),
                               http_transport=httpx.MockTransport(crm)) as host:
            return await host.decide({"phone_number": "(555) 010-0101"})

    record = asyncio.run(go())
    assert [r.url.params["q"] for r in sent] == ["5550100101"] and record["action"] == "duplicate"


def test_run_reads_a_bounded_way_ahead_and_decides_every_row_once(tmp_path, hubspot_env):
    """run()'s feed buffers at most twice its concurrency: a million-row file never sits
    in memory, and every row is decided once, whichever worker takes it."""

    class SlowCrm(CrmNode):  # some answers wait several loop turns, so the buffer fills and drains
        def __init__(self, node_id, config, build):
            pass

        async def run(self, lead):
            for _ in range(int(lead.lead["phone_number"][-1]) % 3):
                await asyncio.sleep(0)
            return CrmAnswer(status_code=200, headers={}, body={"total": 0}, latency_ms=0.0)

    class NodePlugin:
        @hookimpl
        def dupcheck_register_node_types(self, register):
            register(NodeType(name="slow_crm", config_schema={"type": "object"}, factory=SlowCrm,
                              output="crm_answer"))

    wf = custom_node_workflow(tmp_path, "slow_crm", "{}")
    engine = Engine.open(str(wf), db=str(tmp_path / "d.db"), registry=registry_with(NodePlugin()))
    concurrency, n = 4, 600
    counts = {"read": 0, "decided": 0, "ahead": 0}

    async def items():
        for i in range(1, n + 1):
            counts["read"] += 1
            counts["ahead"] = max(counts["ahead"], counts["read"] - counts["decided"])
            yield i, {"phone_number": f"555{4_000_000 + i:07d}"}, None

    def decided(record):
        counts["decided"] += 1

    async def go():
        async with engine:
            return await engine.run(items(), concurrency=concurrency, on_record=decided, source="ahead.csv")

    summary = asyncio.run(go())
    assert summary.total == counts["decided"] == n
    # buffered (2 x concurrency) + being decided (concurrency) + the one being handed over
    assert concurrency < counts["ahead"] <= 3 * concurrency + 1
    store = SqliteStore(str(tmp_path / "d.db"))
    try:
        assert store.decided_rows(engine.workflow.name, "ahead.csv") == set(range(1, n + 1))
    finally:
        store.close()


def test_a_node_that_fails_gives_its_lead_one_retryable_decision_on_either_path(tmp_path, hubspot_env):
    """The usual graph (a CRM node read by api_duplicate_check) is run by evaluate()
    itself; a plugin's check node goes through the node graph. A node that raises
    gives its lead a 6500 on both, and the other leads are decided as usual."""
    from dupcheck_plugin.types import CheckNode, CheckOutcome
    from dupcheck_plugin.rules.decide import Decision, Settings

    class FlakyCrm(CrmNode):
        def __init__(self, node_id, config, build):
            pass

        async def run(self, lead):
            if lead.lead["phone_number"].endswith("9"):
                raise RuntimeError("the CRM node broke")
            return CrmAnswer(status_code=200, headers={}, body={"total": 1}, latency_ms=0.0)

    class EveryoneIsNew(CheckNode):  # a plugin's check: reads the CRM, creates every lead it answered for
        def __init__(self, node_id, config, build):
            self.settings = Settings.from_config({"connect": config["connect"]})

        async def run(self, lead):
            answer = await lead.output(self.settings.connect)
            return CheckOutcome(Decision.created("PLUGIN", by="rules_row", checked=True), answer)

    class NodePlugin:
        @hookimpl
        def dupcheck_register_node_types(self, register):
            register(NodeType(name="flaky_crm", config_schema={"type": "object"}, factory=FlakyCrm,
                              output="crm_answer"))
            register(NodeType(name="everyone_is_new", config_schema={"type": "object"}, factory=EveryoneIsNew,
                              inputs=lambda config: {"connect": config["connect"]}, output="check_outcome"))

    registry = registry_with(NodePlugin())
    shipped = custom_node_workflow(tmp_path, "flaky_crm", "{}")
    plugin = tmp_path / "plugin_check.toml"
    plugin.write_text('[[nodes]]\nid = "crm"\ntype = "flaky_crm"\nconfig = {}\n'
                      '[[nodes]]\nid = "check"\ntype = "everyone_is_new"\nconfig = { connect = "crm" }\n')
    leads = [{"phone_number": "5550100401"}, {"phone_number": "5550100409"}]
    for wf, ok in ((shipped, ("duplicate", None)), (plugin, ("created", "PLUGIN"))):
        records = sorted(run(Engine.open(str(wf), db=str(tmp_path / f"{wf.stem}.db"), registry=registry), leads),
                         key=lambda r: r["source_row"])
        assert [(r["action"], r["status"]) for r in records] == [ok, ("rejected", None)], wf.stem
        failed = records[1]
        assert (failed["code"], failed["decided_by"], failed["retryable"]) == (6500, "node_error", True)
        assert failed["detail"] == "RuntimeError: the CRM node broke"


class _Quick(CrmNode):
    def __init__(self, node_id, config, build):
        pass

    async def run(self, lead):
        await asyncio.sleep(0.001)
        return CrmAnswer(status_code=200, headers={}, body={"total": 0}, latency_ms=0.0)


def test_a_cancelled_run_hands_on_every_record_it_stored(tmp_path):
    """Ctrl-C, SIGTERM: "what was decided is stored and in --out". A lead whose commit was
    under way when the run was cancelled is stored (the write is waited for); its record
    never reached on_record (--out), the summary, the observers (26-48 records short of the
    store at each SIGTERM of a real run)."""
    import time

    class SlowStore(MemoryStore):  # each transaction takes a while: commits are often under way
        def apply(self, commits):
            time.sleep(0.05)
            return super().apply(commits)

    store = SlowStore()
    wf = custom_node_workflow(tmp_path, "quick_crm", "{}")
    seen: list[int] = []

    class Observer:
        @hookimpl
        def dupcheck_decision_made(self, record):
            seen.append(record["source_row"])

    class NodePlugin:
        @hookimpl
        def dupcheck_register_node_types(self, register):
            register(NodeType(name="quick_crm", config_schema={"type": "object"}, factory=_Quick, output="crm_answer"))

    engine = Engine.open(str(wf), store=store, registry=registry_with(NodePlugin(), Observer()))
    handed: list[int] = []
    summary_total: list[int] = []

    async def go():
        async with engine:
            task = asyncio.create_task(engine.run(aiter_items((i, {"phone_number": f"555{4_000_000 + i:07d}"}, None)
                                                              for i in range(1, 10_000)),
                                                  concurrency=16, source="x.csv",
                                                  on_record=lambda r: handed.append(r["source_row"])))
            while len(store.records) < 20:  # commits are landing: cancel among them
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(go())
    stored = sorted(r["source_row"] for r in store.records)
    assert len(stored) >= 20
    assert sorted(handed) == stored, f"{len(stored) - len(handed)} stored records never reached on_record"
    assert sorted(seen) == stored  # the dupcheck_decision_made observers too
