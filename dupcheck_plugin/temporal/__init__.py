"""A Temporal host for the plugin: one Temporal workflow per lead.

- :mod:`.lead`: what a workflow gets and the ids it runs under (pure).
- :mod:`.workflow`: the deterministic workflow: local check, nodes, decision.
- :mod:`.activities`: the I/O a workflow asks for (local check, CRM call,
  store write), run by workers.
- :mod:`.worker`: ``dupcheck worker``: loads a workflow file, runs both.
- :mod:`.client`: the engine ``serve``/``run --engine temporal`` use: one
  workflow started per lead, its result is the decision record.

Needs ``pip install 'dupcheck-plugin[temporal]'``.
"""
