"""A claim held by one process at a time: a lock file next to the SQLite
store (``run`` claims the lead file it decides, see
:meth:`~dupcheck_plugin.store.contract.Store.claim_run`).

``flock`` on a file of its own per claim: the kernel releases it when the
process ends however it ends (no stale claim after a crash or a SIGKILL),
and it is held per open file, so a second claim in the same process is
refused too. The holder writes its pid and start time into the file for the
refusal to name, and removes the file when it lets go (still holding it: a
process that opened the old file meanwhile sees it is no longer the one at
that path and tries again with a new one).
"""

from __future__ import annotations

import fcntl
import os
from datetime import datetime, timezone
from pathlib import Path

from ..errors import DupcheckError


class Held(DupcheckError):
    """The claim is another process's now; ``note``: what its holder wrote (may be empty)."""

    def __init__(self, note: str):
        super().__init__(note)
        self.note = note


class FileClaim:
    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    def release(self) -> None:
        """Let go (again: nothing)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still held, see the module's docstring
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None


def claim_file(path: Path) -> FileClaim:
    """The claim of ``path``, or :class:`Held` when another holder has it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            note = os.pread(fd, 256, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise Held(note) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            here = os.stat(path)
            ours = os.fstat(fd)
            current = (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino)
        except FileNotFoundError:
            current = False
        if current:
            since = datetime.now(timezone.utc).isoformat(timespec="seconds")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, since {since}\n".encode(), 0)
            return FileClaim(path, fd)
        os.close(fd)  # its holder removed it as we opened it: claim the file now at that path
