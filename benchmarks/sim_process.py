"""The CRM simulator in its own process (its own core), as a context manager."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager


@contextmanager
def simulator(*args: str):
    proc = subprocess.Popen([sys.executable, "-m", "dupcheck_plugin.cli.main", "crm-sim", "--port", "0", "--limits", "off", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        if "http://" not in line:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield line[line.index("http://"):].strip()
    finally:
        proc.terminate()
        proc.wait(10)
