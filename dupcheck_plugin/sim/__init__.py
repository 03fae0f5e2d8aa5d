"""The CRM simulator behind ``dupcheck crm-sim``: real HTTP, CRM-shaped answers, fault knobs.

    with SimulatorThread("examples/contacts.csv", knobs=Knobs(latency_ms=20)) as sim:
        ...  # point an adaptor at sim.url with --crm-url
"""

from .contacts import Contact, ContactBook
from .server import Knobs, Simulator, SimulatorThread, run_simulator

__all__ = ["Contact", "ContactBook", "Knobs", "Simulator", "SimulatorThread", "run_simulator"]
