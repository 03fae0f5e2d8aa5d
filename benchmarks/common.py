"""Shared bits of the benchmarks: lead files."""

from __future__ import annotations

import random
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
