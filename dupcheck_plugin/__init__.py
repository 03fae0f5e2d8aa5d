"""dupcheck: API Duplicate Lead Check as a pluggy plugin.

Plugins implement the hooks of :mod:`dupcheck_plugin.hookspecs` with the
``hookimpl`` marker exported here and register under the ``dupcheck``
entry-point group.
"""

import pluggy

PROJECT_NAME = "dupcheck"
__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl", "__version__"]
