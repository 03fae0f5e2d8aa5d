"""Shared bits of the benchmarks: leads, a HubSpot search body, the simulator."""

from __future__ import annotations

import json
import random
from pathlib import Path

from dupcheck_plugin.resources import shipped_dir

CONTACTS = shipped_dir("examples") / "contacts.csv"
SEARCH_PATH = "/crm/v3/objects/contacts/search"


def random_leads(n: int, seed: int = 1) -> list[dict[str, str]]:
    rnd = random.Random(seed)
    return [{"phone_number": f"555{rnd.randint(2000000, 9999999)}", "first_name": f"F{i}", "last_name": "L",
             "email": f"p{i}@example.com"} for i in range(n)]


def search_body(phone: str) -> bytes:
    return json.dumps({"limit": 10, "filterGroups": [{"filters": [
        {"propertyName": "phone", "operator": "EQ", "value": phone}]}]}).encode()


def write_csv(path: Path, n: int, seed: int = 1) -> Path:
    rnd = random.Random(seed)
    with path.open("w") as f:
        f.write("phone_number,first_name,last_name,email\n")
        for i in range(n):
            f.write(f"555{rnd.randint(2000000, 9999999)},First{i},Last{i},p{i}@example.com\n")
    return path


def table(rows: list[tuple], headers: tuple) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*headers)] + [fmt.format(*map(str, r)) for r in rows])
