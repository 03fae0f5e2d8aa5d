"""One base for every error dupcheck raises: a host catches DupcheckError to
tell "dupcheck refused this, the message says why" from a bug."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import dupcheck_plugin
from dupcheck_plugin.errors import DupcheckError

# The CRM simulator's own errors (a malformed SOQL query, a bad HubSpot filter) are
# turned into the vendor's HTTP error answer inside the simulator: they never leave it.
EXEMPT = ("dupcheck_plugin.sim.",)


def project_exceptions() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(dupcheck_plugin.__path__, "dupcheck_plugin."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == info.name:
                found.append(cls)
    return found


def test_every_exception_class_derives_from_dupcheck_error():
    classes = project_exceptions()
    names = {cls.__name__ for cls in classes}
    assert {"StoreError", "RegexError", "SecretMissing", "Refused", "TemplateCostError"} <= names  # the walk sees them
    # an error is an Exception; what derives from BaseException alone is control flow (a
    # cancellation that carries the record it stored, serve's exit by a signal), never caught as one
    stray = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in classes
                   if issubclass(cls, Exception) and not issubclass(cls, DupcheckError)
                   and not cls.__module__.startswith(EXEMPT))
    assert not stray, f"not a DupcheckError: {stray}"
    flow = {cls.__name__ for cls in classes if not issubclass(cls, Exception)}
    assert flow == {"CancelledAfterCommit", "_Signalled"}, flow  # a new one is a decision, made here


def test_errors_keep_their_second_base_for_existing_callers():
    from dupcheck_plugin.adaptor.batch import BatchError
    from dupcheck_plugin.adaptor.sandbox import TemplateCostError
    from dupcheck_plugin.connection.secrets import SecretMissing
    from dupcheck_plugin.dev.postgres import PostgresUnavailable
    from dupcheck_plugin.rules.match import RegexError

    assert issubclass(BatchError, ValueError) and issubclass(TemplateCostError, ValueError)
    assert issubclass(RegexError, ValueError) and issubclass(SecretMissing, LookupError)
    assert issubclass(PostgresUnavailable, RuntimeError)
