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
