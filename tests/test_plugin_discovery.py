"""``may_declare_plugins`` lets a process without third-party plugins skip
importing importlib.metadata: it may say "may" too often, never "no" where
importlib.metadata finds a ``dupcheck`` entry point."""

from __future__ import annotations

import importlib.metadata
import sys
import zipfile

import pytest

from dupcheck_plugin.plugins import may_declare_plugins


def _dist(folder, name, entry_points: str | None, suffix=".dist-info"):
    info = folder / f"{name}-1.0{suffix}"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_bytes(entry_points.encode())
    return info


def _found_by_importlib() -> bool:
    return bool(importlib.metadata.entry_points(group="dupcheck"))


ENTRY_POINT_FILES = [
    "[dupcheck]\nacme = acme\n",
    "[console_scripts]\nx = y:z\n\n[dupcheck]\nacme = acme\n",
    "[dupcheck]\r\nacme = acme\r\n",
    "[dupcheck]\racme = acme\r",
    "   [dupcheck]   \n  acme = acme\n",
    "[[dupcheck]]\nacme = acme\n",
    "[ dupcheck ]\nacme = acme\n",  # not the group to importlib either
    "[pytest11]\ndupcheck = dupcheck_plugin.testing.pytest_plugin\n",  # the name, not the group
    "# [dupcheck]\n",
    "[dupcheck]\n",  # the group, empty
    "[DUPCHECK]\nacme = acme\n",
]


@pytest.mark.parametrize("text", ENTRY_POINT_FILES)
@pytest.mark.parametrize("suffix", [".dist-info", ".egg-info", ".DIST-INFO"])
def test_never_no_where_importlib_finds_a_plugin(tmp_path, monkeypatch, text, suffix):
    _dist(tmp_path, "other", "[console_scripts]\nx = y:z\n")
    _dist(tmp_path, "acme", text, suffix)
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    if _found_by_importlib():
        assert may_declare_plugins()


def test_no_plugin_installed_is_no(tmp_path, monkeypatch):
    _dist(tmp_path, "other", "[console_scripts]\nx = y:z\n")
    _dist(tmp_path, "bare", None)
    (tmp_path / "some_module.py").write_text("")
    monkeypatch.setattr(sys, "path", [str(tmp_path), str(tmp_path / "missing")])
    assert not may_declare_plugins()
    assert not _found_by_importlib()


def test_a_path_entry_it_cannot_list_counts_as_may(tmp_path, monkeypatch):
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("acme-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: acme\nVersion: 1.0\n")
        z.writestr("acme-1.0.dist-info/entry_points.txt", "[dupcheck]\nacme = acme\n")
    monkeypatch.setattr(sys, "path", [str(archive)])
    assert _found_by_importlib()
    assert may_declare_plugins()


def test_an_egg_counts_as_may(tmp_path, monkeypatch):
    egg = tmp_path / "acme-1.0.egg"
    (egg / "EGG-INFO").mkdir(parents=True)
    (egg / "EGG-INFO" / "entry_points.txt").write_text("[dupcheck]\nacme = acme\n")
    monkeypatch.setattr(sys, "path", [str(egg)])
    assert may_declare_plugins()
