"""CRM limits: leads decided per CRM request, over-limit answers provoked, and
the pace against the quota's ceiling, for each shipped CRM, against the
simulator enforcing the vendors' real limits with time scaled (``make bench``).

The connection's limits are the adaptor's shipped ones with every window
divided by the same time scale as the simulator's.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from dupcheck_plugin.host import Host
from dupcheck_plugin.sim import SimulatorThread
from dupcheck_plugin.sim.limits import Limits as SimLimits

from dupcheck_plugin.resources import shipped_dir

from .common import random_leads

CONTACTS = shipped_dir("examples") / "contacts.csv"
SCALE = 4.0  # simulated seconds per real second (the 5% window margin must cover the jitter of a scaled window)
LEADS = 2000
CRMS = (
    # name, adaptor, secret, scaled limits for the connection, max leads per request, vendor
    ("HubSpot", "hubspot_contacts_search", "HUBSPOT_TOKEN", {"requests": 4, "per_seconds": 1 / SCALE}, "hubspot"),
    ("Salesforce", "salesforce_soql", "SALESFORCE_TOKEN", {}, "salesforce"),
    ("Zoho", "zoho_leads_criteria", "ZOHO_TOKEN", {"concurrency": 10}, "zoho"),
)


def table(rows: list[tuple], headers: tuple) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*headers)] + [fmt.format(*map(str, r)) for r in rows])


def workflow(dir_: Path, adaptor: str, limits: dict) -> Path:
    table_ = ", ".join(f"{k} = {v}" for k, v in limits.items())
    path = dir_ / f"bench_{adaptor}_workflow.toml"
    path.write_text(f'''name = "bench_{adaptor}"
[[nodes]]
id = "crm"
type = "convoso_connect"
config = {{ adaptor = "{adaptor}", limits = {{ {table_} }} }}
[[nodes]]
id = "check"
type = "api_duplicate_check"
[nodes.config]
connect = "crm"
rules = [ {{ key = "x", match = "exists", create_lead = false, add_to_dnc = false, success = false }} ]
''', encoding="utf-8")
    return path


def run_one(adaptor: str, secret: str, limits: dict, vendor: str, dir_: Path) -> tuple:
    leads = [{k: v for k, v in lead.items() if k != "email"} for lead in random_leads(LEADS, seed=3)]
    with SimulatorThread(CONTACTS, limits=SimLimits(time_scale=SCALE)) as sim:
        async def go() -> float:
            async with Host.open(str(workflow(dir_, adaptor, limits)), db=str(dir_ / f"{adaptor}.db"),
                                 crm_url=sim.url, environ={secret: "t"}) as host:
                items = ((i, lead, None) for i, lead in enumerate(leads, 1))

                async def agen():
                    for item in items:
                        yield item
                started = time.perf_counter()
                await host.run(agen(), concurrency=max(32, host.lead_capacity()))
                return time.perf_counter() - started

        elapsed = asyncio.run(go())
        stats = httpx.get(sim.url + "/_sim/stats").json()["vendors"][vendor]
    return stats["requests"], stats["over_limit"], elapsed


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, adaptor, secret, limits, vendor in CRMS:
            requests, over, elapsed = run_one(adaptor, secret, limits, vendor, Path(tmp))
            req_rate = requests / elapsed
            ceiling = f"{limits['requests'] / limits['per_seconds']:.0f}/s" if "requests" in limits else "budget only"
            share = f"{req_rate / (limits['requests'] / limits['per_seconds']):.0%}" if "requests" in limits else "-"
            rows.append((name, adaptor, LEADS, requests, f"{LEADS / requests:.1f}", over, f"{LEADS / elapsed:.0f}",
                         f"{req_rate:.1f}/s", ceiling, share))
    print(f"CRM limits (simulator with the vendors' limits, time x{SCALE:g}; {LEADS} leads each, no email)")
    print(table(rows, ("CRM", "adaptor", "leads", "requests", "leads/request", "over-limit answers", "leads/s",
                       "requests/s", "request ceiling", "share of ceiling")))


if __name__ == "__main__":
    main()
