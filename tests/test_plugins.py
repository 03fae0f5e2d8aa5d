"""The plugin contract: discovery by entry point, name clashes, plugin node types, hook docs."""

from __future__ import annotations

import inspect
from pathlib import Path

import pluggy
import pytest

from dupcheck_plugin import builtin, hookimpl, hookspecs
from dupcheck_plugin.engine.workflow import check_workflow
from dupcheck_plugin.plugins import PluginConflict, Registry, make_plugin_manager
from dupcheck_plugin.types import NodeType

from conftest import install_fake_plugin


def fresh_pm() -> pluggy.PluginManager:
    """A host as dupcheck builds one: the built-in plugin and the installed entry points."""
    return make_plugin_manager()


def no_factory(node_id, config, build):
    raise AssertionError("not built in these tests")


def test_the_builtin_plugin_is_registered_once_by_the_host():
    pm = fresh_pm()
    assert pm.get_plugin("builtin") is builtin
    assert [p for p in pm.get_plugins() if p is builtin] == [builtin]
    registry = Registry.from_plugins(pm)
    assert {"convoso_connect", "api_duplicate_check"} <= set(registry.node_types)
    assert {"e164", "national", "soql", "sosl", "zoho_criteria"} <= set(registry.filters)
    assert registry.node_type_owner["convoso_connect"] == "builtin"


class SameNodeType:
    @hookimpl
    def dupcheck_register_node_types(self, register):
        register(NodeType(name="convoso_connect", config_schema={}, factory=no_factory))


class SameFilter:
    @hookimpl
    def dupcheck_register_template_filters(self, register):
        register("e164", lambda value, code="1": value)


@pytest.mark.parametrize("plugin, what", [(SameNodeType(), "node type 'convoso_connect'"),
                                          (SameFilter(), "template filter 'e164'")])
def test_same_name_from_two_plugins_is_a_conflict_naming_both(plugin, what):
    pm = fresh_pm()
    pm.register(plugin, name="acme-crm")
    with pytest.raises(PluginConflict) as exc:
        Registry.from_plugins(pm)
    message = str(exc.value)
    assert what in message and "builtin" in message and "acme-crm" in message


NOTIFY_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["webhook"],
    "properties": {
        "webhook": {"type": "string", "pattern": "^https://"},
        # a plugin may reuse a shipped definition by its $id
        "retry": {"$ref": "https://dupcheck.dev/schemas/convoso_connect.schema.json#/$defs/retry"},
    },
}


class Notify:
    @hookimpl
    def dupcheck_register_node_types(self, register):
        register(NodeType(name="slack_notify", config_schema=NOTIFY_SCHEMA, factory=no_factory))


def workflow_with_notify(config: dict) -> dict:
    return {"nodes": [
        {"id": "crm", "type": "convoso_connect", "config": {"adaptor": "generic_json"}},
        {"id": "dupcheck", "type": "api_duplicate_check", "config": {"connect": "crm"}},
        {"id": "notify", "type": "slack_notify", "config": config},
    ]}


def notify_registry() -> Registry:
    pm = fresh_pm()
    pm.register(Notify(), name="acme-notify")
    pm.check_pending()
    return Registry.from_plugins(pm)


def test_plugin_node_type_config_is_validated_with_its_schema(tmp_path):
    registry = notify_registry()
    spec, problems = check_workflow(workflow_with_notify({"webhook": "https://hooks.example.com/x"}), "wf.toml", tmp_path, registry)
    assert problems == [] and spec is not None

    bad = {"webhook": "http://hooks.example.com/x", "retry": {"attempts": 0}, "chanel": "#leads"}
    _, problems = check_workflow(workflow_with_notify(bad), "wf.toml", tmp_path, registry)
    where = {str(p).split(": ", 1)[0] for p in problems}
    assert where == {"wf.toml::nodes[2].config.chanel", "wf.toml::nodes[2].config.webhook",
                     "wf.toml::nodes[2].config.retry.attempts"}
    assert any(p.message == "unknown key 'chanel'" for p in problems)


def test_plugin_node_type_unknown_without_the_plugin(tmp_path):
    registry = Registry.from_plugins(fresh_pm())
    _, problems = check_workflow(workflow_with_notify({"webhook": "https://x"}), "wf.toml", tmp_path, registry)
    assert [str(p) for p in problems] == [
        "wf.toml::nodes[2].type: unknown node type 'slack_notify' (registered: api_duplicate_check, convoso_connect)"]


class Typo:
    @hookimpl
    def dupcheck_register_node_type(self, register):  # no such hook: the spec is ..._types
        pass


def test_implementation_of_a_nonexistent_hook_fails_check_pending():
    pm = fresh_pm()
    pm.register(Typo(), name="typo")
    with pytest.raises(pluggy.PluginValidationError, match="dupcheck_register_node_type"):
        pm.check_pending()


# --- hook documentation (as datasette's test_docs does) ------------------------------

HOOKS = [fn for name, fn in vars(hookspecs).items() if name.startswith("dupcheck_") and callable(fn)]


def test_hooks_are_all_specs():
    assert HOOKS
    for fn in HOOKS:
        assert getattr(fn, "dupcheck_spec", None) is not None, fn.__name__


@pytest.mark.parametrize("fn", HOOKS, ids=lambda fn: fn.__name__)
def test_hook_is_documented(fn):
    doc = inspect.getdoc(fn)
    assert doc, f"{fn.__name__} has no docstring"
    params = list(inspect.signature(fn).parameters)
    documented = [line.split(":param ", 1)[1].split(":", 1)[0] for line in doc.splitlines() if line.startswith(":param ")]
    assert documented == params
    if fn.dupcheck_spec["firstresult"]:
        assert "Stops at first non-None result" in doc
    else:
        assert "Stops at first non-None result" not in doc


def test_builtin_implements_only_known_hooks():
    names = {fn.__name__ for fn in HOOKS}
    implemented = {n for n, f in vars(builtin).items() if hasattr(f, "dupcheck_impl")}
    assert implemented and implemented <= names


def test_the_builtin_plugin_has_no_entry_point_to_be_loaded_twice_through():
    import tomli

    pyproject = tomli.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert "dupcheck" not in pyproject["project"].get("entry-points", {})


def test_a_third_party_entry_point_is_loaded(tmp_path, monkeypatch):
    """A distribution on sys.path declaring a dupcheck entry point (conda's test pattern)."""
    install_fake_plugin(tmp_path, "acme_plugin", ACME, "acme")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry.from_plugins(make_plugin_manager())
    assert registry.filters["acme_upper"]("x") == "X" and registry.filter_owner["acme_upper"] == "acme"
    monkeypatch.setenv("DUPCHECK_LOAD_PLUGINS", "")  # narrowed to none: only the built-in plugin
    assert "acme_upper" not in Registry.from_plugins(make_plugin_manager()).filters


ACME = '''\
from dupcheck_plugin import hookimpl
from dupcheck_plugin.host import NodeType


@hookimpl
def dupcheck_register_node_types(register):
    register(NodeType(name="acme_book", config_schema={"type": "object"}, factory=None, output="crm_answer"))


@hookimpl
def dupcheck_register_template_filters(register):
    register("acme_upper", lambda value: str(value).upper())


@hookimpl
def dupcheck_decision_made(record):
    pass
'''


@pytest.mark.e2e
def test_plugins_command_lists_each_plugin_with_its_hooks_node_types_and_filters(tmp_path):
    import json
    import os
    import subprocess
    import sys

    install_fake_plugin(tmp_path, "acme_plugin", ACME, "acme")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    cmd = [sys.executable, "-m", "dupcheck_plugin.cli.main", "plugins"]
    listed = json.loads(subprocess.run(cmd + ["-o", "json"], capture_output=True, text=True, env=env,
                                       timeout=60, check=True).stdout)
    by_name = {p["name"]: p for p in listed}
    assert by_name["acme"] == {"name": "acme", "module": "acme_plugin", "distribution": "acme-plugin 1.0",
                               "hooks": ["dupcheck_decision_made", "dupcheck_register_node_types",
                                         "dupcheck_register_template_filters"],
                               "node_types": ["acme_book"], "filters": ["acme_upper"]}
    assert {"convoso_connect", "api_duplicate_check"} <= set(by_name["builtin"]["node_types"])
    text = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    assert "acme (acme_plugin, acme-plugin 1.0)" in text and "filters: acme_upper" in text
    narrowed = subprocess.run(cmd + ["-o", "json"], capture_output=True, text=True, timeout=60, check=True,
                              env={**env, "DUPCHECK_LOAD_PLUGINS": ""}).stdout
    assert [p["name"] for p in json.loads(narrowed)] == ["builtin"]


WRONG_ARGUMENT = '''
from dupcheck_plugin import hookimpl

@hookimpl
def dupcheck_register_template_filters(reg):
    reg("acme_upper", str.upper)
'''

MISSPELT_HOOK = '''
from dupcheck_plugin import hookimpl

@hookimpl
def dupcheck_register_template_filter(register):
    register("acme_upper", str.upper)
'''


@pytest.mark.parametrize("code, says", [(WRONG_ARGUMENT, "{'reg'} are declared in the hookimpl"),
                                        (MISSPELT_HOOK, "unknown hook 'dupcheck_register_template_filter'")])
def test_a_plugin_whose_hook_does_not_fit_the_specs_is_named_without_a_traceback(tmp_path, monkeypatch, code, says):
    """Before: pluggy's PluginValidationError came out of check, render, explain, plugins and demo
    as a traceback (run and serve printed it, without the plugin's file)."""
    import sys

    from dupcheck_plugin.cli.main import main
    from dupcheck_plugin.plugins import PluginInvalid

    install_fake_plugin(tmp_path, "acme_unfit", code, "acme")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DUPCHECK_LOAD_PLUGINS", "acme")
    monkeypatch.delitem(sys.modules, "acme_unfit", raising=False)
    monkeypatch.setattr("dupcheck_plugin.plugins._default", None)  # the commands build the registry anew
    with pytest.raises(PluginInvalid) as exc:
        make_plugin_manager()
    assert says in str(exc.value) and str(tmp_path / "acme_unfit.py") in str(exc.value)
    assert isinstance(exc.value, PluginConflict)  # every command that reports a conflict reports this
    for argv in (["plugins"], ["explain", "hubspot_dupcheck", "--response", '{"total": 1}']):
        assert main(argv) == 1
