"""The README's configuration examples are valid as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import tomli

from dupcheck_plugin.config.adaptors import compile_adaptor
from dupcheck_plugin.engine.workflow import check_workflow
from dupcheck_plugin.plugins import default_registry

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = [textwrap.dedent(b) for b in re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)]
CONFIGS = [b for b in BLOCKS if b.startswith("#:schema")]


def test_the_readme_has_an_adaptor_and_a_workflow_example():
    kinds = sorted(b.split("\n", 1)[0].rsplit("/", 1)[-1] for b in CONFIGS)
    assert kinds == ["adaptor.schema.json", "workflow.schema.json"]


@pytest.mark.parametrize("block", CONFIGS, ids=lambda b: b.split("\n", 1)[0].rsplit("/", 1)[-1])
def test_readme_config_examples_are_valid(block):
    doc = tomli.loads(block)
    registry = default_registry()
    if "adaptor.schema.json" in block.split("\n", 1)[0]:
        _, problems = compile_adaptor(doc, "README.md", registry.filters)
    else:
        _, problems = check_workflow(doc, "README.md", ROOT / "workflows", registry)
    assert problems == [], [str(p) for p in problems]
