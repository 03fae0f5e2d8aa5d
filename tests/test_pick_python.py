"""``.ci/pick-python``: the Python ``make`` builds the venv from. Of the usable
candidates (>= 3.11, can make a venv with pip), one with libpython built into its
executable wins over one that loads ``libpython.so``; else the first usable one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PICK = Path(__file__).resolve().parents[1] / ".ci" / "pick-python"


def pick(*candidates: str | Path) -> str:
    return subprocess.run(["sh", str(PICK), *map(str, candidates)], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def fake(tmp_path: Path):
    """A stand-in interpreter that answers the probe with ``kind`` (or fails, as a too old one does)."""
    def make(name: str, kind: str | None) -> Path:
        path = tmp_path / name
        path.write_text(f"#!/bin/sh\necho {kind}\n" if kind else "#!/bin/sh\nexit 1\n")
        path.chmod(0o755)
        return path
    return make


def test_a_build_with_libpython_built_in_wins_over_an_earlier_shared_one(fake):
    shared, built_in = fake("py_shared", "shared"), fake("py_static", "built-in")
    assert pick(shared, built_in) == str(built_in)


def test_with_only_shared_builds_the_first_usable_one_is_picked(fake):
    too_old, first, second = fake("py_old", None), fake("py_a", "shared"), fake("py_b", "shared")
    assert pick(too_old, first, second) == str(first)


def test_nothing_usable_leaves_python3_to_fail_loudly_in_make(fake, tmp_path):
    assert pick(fake("py_old", None), tmp_path / "absent") == "python3"


def test_the_probe_reads_a_real_interpreter():
    """This very interpreter, alone: the probe runs and it is picked (>= 3.11, venv with pip)."""
    assert pick(sys.executable) == sys.executable


def test_the_default_pick_can_make_a_venv():
    chosen = pick()
    out = subprocess.run([chosen, "-c", "import sys, ensurepip, venv; print(sys.version_info >= (3, 11))"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
