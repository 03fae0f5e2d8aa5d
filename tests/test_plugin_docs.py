"""Every hook is documented in docs/plugin-hooks.md with its exact signature
and has a test named test_hook_<name> (datasette's test_docs pattern); the
examples there run."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from dupcheck_plugin import hookspecs
from dupcheck_plugin.plugins import make_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "plugin-hooks.md").read_text(encoding="utf-8")


def hooks() -> list[str]:
    """The hooks the host's plugin manager knows (not a list kept by hand)."""
    pm = make_plugin_manager(load_entrypoints=False)
    return sorted(name for name in vars(pm.hook) if name.startswith("dupcheck_"))


def documented() -> dict[str, str]:
    return dict(re.findall(r"^## (\w+)\((.*?)\)$", DOC, re.M))


def hooks_with_tests() -> set[str]:
    names = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        names |= set(re.findall(r"^def test_hook_(\w+)\(", path.read_text(encoding="utf-8"), re.M))
    return names


def test_the_walker_sees_every_hook_of_the_specs():
    assert hooks() == sorted(n for n in vars(hookspecs) if n.startswith("dupcheck_"))


@pytest.mark.parametrize("hook", hooks())
def test_hook_is_documented_with_its_signature(hook):
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert documented().get(hook) == params, f"docs/plugin-hooks.md needs '## {hook}({params})'"


@pytest.mark.parametrize("hook", hooks())
def test_hook_has_a_test(hook):
    assert hook in hooks_with_tests(), f"no test_hook_{hook} in tests/"


def test_the_docs_name_no_hook_that_does_not_exist():
    assert set(documented()) <= set(hooks())


def test_a_new_hook_without_docs_or_test_is_caught(monkeypatch):
    """The walker reads the plugin manager: a hook added to the specs shows up in it."""
    import pluggy

    def dupcheck_brand_new(thing):
        """A hook nobody documented."""

    spec = pluggy.HookspecMarker("dupcheck")(dupcheck_brand_new)
    monkeypatch.setattr(hookspecs, "dupcheck_brand_new", spec, raising=False)
    assert "dupcheck_brand_new" in hooks()
    assert "dupcheck_brand_new" not in documented() and "dupcheck_brand_new" not in hooks_with_tests()


@pytest.mark.parametrize("block", re.findall(r"```python\n(.*?)```", DOC, re.S))
def test_the_hook_examples_define_their_hook(block):
    namespace: dict = {}
    exec(compile(block, "docs/plugin-hooks.md", "exec"), namespace)
    impls = [v for k, v in namespace.items() if k.startswith("dupcheck_") and hasattr(v, "dupcheck_impl")]
    assert len(impls) == 1 and impls[0].__name__ in hooks()
