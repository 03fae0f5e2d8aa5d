"""A Temporal host for the plugin: one Temporal workflow per lead.

- :mod:`.lead`: what a workflow gets and the ids it runs under (pure).
- :mod:`.workflow`: the deterministic workflow: local check, nodes, decision.
- :mod:`.activities`: the I/O a workflow asks for (local check, CRM call,
  store write), run by workers.
- :mod:`.worker`: ``dupcheck worker``: loads a workflow file, runs both.
- :mod:`.client`: the engine ``serve``/``run --engine temporal`` use: one
  workflow started per lead, its result is the decision record.
- :mod:`.connect`: the connection to Temporal, with an error that names an
  unreachable server or an unknown namespace.

Like any host built on dupcheck it imports the public host API only
(``dupcheck_plugin.host``, the hook specs, the node contract): an
import-linter contract in ``pyproject.toml`` holds it to that.

Needs ``pip install 'dupcheck-plugin[temporal]'``.
"""
