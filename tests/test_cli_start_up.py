"""The console script's start-up imports its command with the garbage collector off
(what imports make lives as long as the process), then turns it back on."""

from __future__ import annotations

import gc

from dupcheck_plugin.cli.main import start_up


def test_start_up_turns_the_collector_back_on_with_what_it_imported_frozen():
    gc.unfreeze()
    try:
        parser = start_up(["check", "x.toml"])
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # out of later collections' way
        assert parser.parse_args(["check", "x.toml"]).paths == ["x.toml"]
    finally:
        gc.unfreeze()  # this test process's objects are collected as before


def test_the_console_script_does_not_import_httpxs_command_line_client(tmp_path):
    """httpx's CLI would pull in click, rich and pygments (all installed in the dev venv)."""
    import subprocess
    import sys

    probe = ("import sys; from dupcheck_plugin.cli.main import start_up; start_up(['check', 'x.toml']); "
             "import httpx; print(sorted(m for m in ('httpx._main', 'rich', 'pygments') if sys.modules.get(m)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]"
