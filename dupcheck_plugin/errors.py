"""The one base of every error dupcheck raises on purpose.

A host catches :class:`DupcheckError` to tell "dupcheck refused this, the
message says why" from a bug. Errors that are also a ``ValueError`` (a bad
phone, a lead that cannot be rendered) subclass both.
"""

from __future__ import annotations


class DupcheckError(Exception):
    """Base of dupcheck's errors; ``str(exc)`` is the message for a person."""
