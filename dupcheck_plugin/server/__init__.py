"""``dupcheck serve``: a lead insert API compatible with Convoso's public API.

``create_app(ServeSettings(...))`` builds the Starlette app; the command
line is :mod:`dupcheck_plugin.cli.serve`.
"""

from .app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
