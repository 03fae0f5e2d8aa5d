"""The event loop `dupcheck run` and `serve` run on: uvloop unless DUPCHECK_LOOP says asyncio."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from dupcheck_plugin import aio


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize("environ,loop", [
    ({}, "uvloop"),
    ({"DUPCHECK_LOOP": "auto"}, "uvloop"),
    ({"DUPCHECK_LOOP": "uvloop"}, "uvloop"),
    ({"DUPCHECK_LOOP": "asyncio"}, "asyncio"),
])
def test_uvloop_unless_asyncio_is_asked_for(environ, loop):
    assert aio.loop_problem(environ) is None
    assert aio.run(_loop_module(), environ=environ).split(".")[0] == loop


def test_the_temporal_engine_keeps_asyncios_loop():
    assert aio.run(_loop_module(), allow_uvloop=False, environ={}).split(".")[0] == "asyncio"


def test_a_bad_setting_is_a_usage_error_not_a_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", "run", "workflows/x.toml",
                           "--leads", str(tmp_path / "none.csv")], capture_output=True, text=True,
                          env={**os.environ, "DUPCHECK_LOOP": "fast"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "DUPCHECK_LOOP must be one of auto, asyncio, uvloop, not 'fast'" in done.stderr


def test_serve_refuses_a_bad_setting_too(tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("a-token-of-enough-length-0123456789\n")
    done = subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", "serve", "workflows/x.toml",
                           "--tokens-file", str(tokens)], capture_output=True, text=True,
                          env={**os.environ, "DUPCHECK_LOOP": "fast"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "DUPCHECK_LOOP must be one of auto, asyncio, uvloop, not 'fast'" in done.stderr


def test_serves_uvicorn_loop_is_asyncios_for_the_temporal_engine():
    from dupcheck_plugin.server.http import uvicorn_options

    assert uvicorn_options()["loop"] == "auto"  # uvicorn takes uvloop when it is installed
    assert uvicorn_options(uvloop=False)["loop"] == "asyncio"
