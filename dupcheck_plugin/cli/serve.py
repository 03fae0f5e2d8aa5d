"""``dupcheck serve WORKFLOW``: the Convoso-compatible lead insert API."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading

from .. import aio
from ..config.problems import ConfigError
from .common import EXIT_OK, EXIT_USAGE, fail, origin_url, report_config_error
from .worker import TEMPORAL_EXTRA, add_temporal_args, open_temporal_host, temporal_problem, temporal_usage_error


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve a lead insert API compatible with Convoso's (leads/insert, dnc/...)",
                       description="Serve POST /v1/leads/insert (and leads/search, dnc/insert, dnc/search, "
                                   "decisions, healthz, metrics, openapi.json). Tokens come from "
                                   "DUPCHECK_API_TOKENS (comma-separated) and/or --tokens-file. "
                                   "With admin tokens, the settings console is served under /admin. "
                                   "SIGHUP reloads the workflow file (checked first; between leads).")
    p.add_argument("workflow", help="a shipped workflow's name or a path")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s; 0: any free port)")
    p.add_argument("--db", default="dupcheck.db", help="SQLite file (default: ./dupcheck.db) or postgresql://USER@HOST:PORT/DB")
    p.add_argument("--crm-url", type=origin_url, help="replace scheme://host:port of the CRM URL (a sandbox, the simulator)")
    p.add_argument("--tokens-file", help="API tokens, one per line (# comments)")
    p.add_argument("--admin-tokens-file",
                   help="settings console (/admin) tokens, one per line, optionally NAME:TOKEN; with "
                        "DUPCHECK_ADMIN_TOKENS. Without any admin token the console is off")
    p.add_argument("--check-dup-default", type=int, default=1, choices=(0, 1, 2, 3), metavar="N",
                   help="check_dup when a request has none: 0 none, 1 account-wide (default), 2 same list, "
                        "3 same campaign (= same list)")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="seconds in-flight requests may take to finish after SIGTERM (default: %(default)s)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    add_temporal_args(p, engine_choice=True)
    p.set_defaults(func=main)


def main(args) -> int:
    from ..server.admin.auth import load_admin_tokens
    from ..server.auth import TokenError, load_tokens

    try:
        tokens = load_tokens(args.tokens_file)
        admins = load_admin_tokens(args.admin_tokens_file)
    except TokenError as exc:
        return fail(str(exc), EXIT_USAGE)
    if not 0 <= args.port <= 65535:
        return fail("--port must be between 0 and 65535", EXIT_USAGE)
    if problem := temporal_usage_error(args) or aio.loop_problem():
        return fail(problem, EXIT_USAGE)
    if args.engine == "temporal" and (problem := asyncio.run(temporal_problem(args))):
        return fail(problem)

    import uvicorn

    from .. import fdlimit
    from ..host import Host
    from ..server.app import ServeSettings, create_app
    from ..server.http import uvicorn_options
    from ..server.logs import setup_logging

    fdlimit.raise_soft_limit()  # each client is a socket too
    try:  # opened here so a bad workflow or database fails before anything listens
        if args.engine == "temporal":
            host = open_temporal_host(args)
        else:
            host = Host.open(args.workflow, db=args.db, crm_url=args.crm_url, interactive=True)
    except ImportError:
        return fail(TEMPORAL_EXTRA)
    except ConfigError as exc:
        return report_config_error(exc)
    except Exception as exc:  # the store could not open, say
        return fail(str(exc))
    settings = ServeSettings(workflow=args.workflow, tokens=tokens, db=args.db, crm_url=args.crm_url,
                             check_dup_default=args.check_dup_default, admin_tokens=admins,
                             reload_on_sighup=True)
    try:
        app = create_app(settings, host)
    except TokenError as exc:  # an admin token that is also an insert token
        return fail(str(exc), EXIT_USAGE)
    listener = setup_logging(args.log_level)
    config = uvicorn.Config(app, host=args.host, port=args.port, **uvicorn_options(uvloop=args.engine != "temporal" and aio.loop_name() == "uvloop"),
                            timeout_graceful_shutdown=max(1, round(args.graceful_timeout)))
    logging.getLogger("uvicorn.access").disabled = True  # it would print the raw query: the token
    server = uvicorn.Server(config)
    aio.tune_gc()
    signalled = None
    previous = _exit_by_exception()
    try:
        server.run()  # SIGTERM/SIGINT: stop accepting, finish in-flight requests, run the lifespan shutdown
    except _Signalled as exc:
        signalled = exc.signum
    finally:
        _drain(app.state.api)
        listener.stop()  # flush the log queue
        _restore(previous)
    if signalled is not None:  # exit by the signal, as uvicorn does (143 for SIGTERM), now that all is written
        signal.signal(signalled, signal.SIG_DFL)
        os.kill(os.getpid(), signalled)
    return EXIT_OK if server.started else 1


class _Signalled(BaseException):
    """SIGTERM or SIGINT, once uvicorn has stopped: not an error, the way out of server.run()."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum: int, frame) -> None:
    raise _Signalled(signum)


_EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_by_exception() -> dict[int, object]:
    """Make SIGTERM and SIGINT raise :class:`_Signalled` in the main thread. uvicorn
    handles them while it serves, then raises the signal again under the handler it
    found: with the default one the process died there, before the log queue was
    flushed (the last lines of a shutdown lost). Returns the handlers replaced (none
    outside the main thread, where no handler can be set: uvicorn then sets none either)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _raise_signalled) for sig in _EXIT_SIGNALS}


def _restore(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _drain(api) -> None:
    """A second Ctrl-C makes uvicorn skip the lifespan shutdown; the store
    writer is a daemon thread, so finish its queue here or lose decisions."""
    if api.closed or api.host is None:
        return
    api.host.close_store()
