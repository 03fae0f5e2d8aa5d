"""Helpers for testing dupcheck plugins, adaptors and hosts.

- :class:`MemoryStore`: a store in a few dicts that implements exactly the
  :class:`~dupcheck_plugin.host.Store` contract (and :class:`MemoryStorePlugin`
  to supply it through ``dupcheck_make_store``);
- :class:`CrmStub`: a programmable CRM on a loopback port (canned answers
  per phone, statuses, delays), for a CRM dupcheck does not ship;
- the pytest plugin (:mod:`dupcheck_plugin.testing.pytest_plugin`, loaded
  through the ``pytest11`` entry point) with fixtures built on both.
"""

from .crm_stub import CannedAnswer, CrmStub
from .memory_store import MemoryStore, MemoryStorePlugin

__all__ = ["CannedAnswer", "CrmStub", "MemoryStore", "MemoryStorePlugin"]
