"""The CRM simulator behind ``dupcheck crm-sim``: real HTTP, CRM-shaped answers, vendors' limits, fault knobs.

    with SimulatorThread("examples/contacts.csv", knobs=Knobs(latency_ms=20)) as sim:
        ...  # point an adaptor at sim.url with --crm-url

    # the vendors' real limits, the clock stopped (sim.advance(seconds) moves it)
    with SimulatorThread("examples/contacts.csv", limits=Limits.real(time_scale=0, salesforce_daily=500)) as sim:
        sim.stats()["vendors"]["salesforce"]["over_limit"]

The Python API enforces no limits unless given ``limits``; ``crm-sim`` does
(docs/crms.md, "Limits in the simulator").
"""

from .contacts import Contact, ContactBook
from .limits import Limits
from .server import Knobs, Simulator, SimulatorThread, run_simulator

__all__ = ["Contact", "ContactBook", "Knobs", "Limits", "Simulator", "SimulatorThread", "run_simulator"]
