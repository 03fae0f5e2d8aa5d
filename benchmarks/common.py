"""Shared bits of the benchmarks: lead files."""

from __future__ import annotations

import platform
import random
import sys
from pathlib import Path


def random_leads(n: int, seed: int = 1) -> list[dict[str, str]]:
    rnd = random.Random(seed)
    return [{"phone_number": f"555{rnd.randint(2000000, 9999999)}", "first_name": f"F{i}", "last_name": "L",
             "email": f"p{i}@example.com"} for i in range(n)]


def write_csv(path: Path, n: int, seed: int = 1, email: bool = True) -> Path:
    """A CSV lead file of ``n`` rows with (mostly) distinct phones; ``email=False``: no email column."""
    with path.open("w") as f:
        f.write("phone_number,first_name,last_name" + (",email\n" if email else "\n"))
        for i, lead in enumerate(random_leads(n, seed)):
            f.write(f"{lead['phone_number']},First{i},Last{i}" + (f",{lead['email']}\n" if email else "\n"))
    return path


def interpreter() -> str:
    """The Python every measured process runs on: its version, where it is, and
    whether it loads libpython as a shared library (such a build took 1.16x-1.27x
    the CPU for the same code: :mod:`.ab_python`, README "Where a lead's CPU goes")."""
    try:
        with open("/proc/self/maps") as maps:
            shared = any("libpython" in line for line in maps)
        build = "libpython shared" if shared else "libpython built in"
    except OSError:
        build = "libpython: unknown"
    return f"Python {platform.python_version()} ({sys.executable}, {build})"
