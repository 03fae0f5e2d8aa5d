"""File descriptors: how many this process may open, and CRM connections that fit.

Every CRM connection is a socket, and so is every client of ``serve``. A
shell's soft limit (``ulimit -n``) is often 1,024 while the hard limit a
process may raise it to is far higher; a run of ``--concurrency 3000`` on
1,024 fails its connects with EMFILE (each an error the rules see as the
CRM's, and after a few in a row the circuit breaker refuses them all), then
the store's next SQLite connection cannot open its file. So ``run``,
``serve`` and ``worker`` raise the soft limit to the hard one at start (as
nginx's ``worker_rlimit_nofile``, Go's runtime and systemd's services do), and
``run`` caps its connections to what then fits (:func:`fit`).
"""

from __future__ import annotations

from typing import Mapping

# descriptors kept for what is not a CRM connection: the standard streams, the event loop's,
# the lead file and --out, the store's (SQLite: a file, its WAL and its shm for each of the
# writer's, the checkpointer's and a reader's connections; PostgreSQL: its pool), the run's claim
RESERVE = 64
UNLIMITED_TARGET = 1 << 20  # a hard limit of "unlimited": the kernel's nr_open default, where it cannot be read


def raise_soft_limit() -> int | None:
    """Raise this process's soft limit on open files to its hard limit; returns the
    soft limit now in force (None where the platform has no such limit)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _nr_open() if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # a limit the kernel holds lower (nr_open): keep the soft one
            pass
    return None if soft == resource.RLIM_INFINITY else soft


def _nr_open() -> int:
    """The most files the kernel lets a process have open (Linux: /proc/sys/fs/nr_open)."""
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return UNLIMITED_TARGET


def fit(caps: Mapping[str, int], limit: int | None) -> dict[str, int]:
    """The connection caps of ``caps`` (node -> connections it may open) that must be
    lowered so that all fit ``limit`` open files with :data:`RESERVE` to spare: each
    lowered in proportion, to at least one. Empty when they fit (or there is no limit)."""
    total = sum(caps.values())
    room = max(len(caps), (limit or 0) - RESERVE)
    if limit is None or total <= room:
        return {}
    lowered = {node: max(1, cap * room // total) for node, cap in caps.items()}
    return {node: cap for node, cap in lowered.items() if cap < caps[node]}
