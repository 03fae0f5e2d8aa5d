"""Change the running workflow without a restart: Apply from the console,
SIGHUP, ``POST /admin/api/reload``.

Every path runs the checks of ``dupcheck check`` first; on a problem nothing
is written and the engine keeps its table. A good file is put in place
atomically, loaded, and swapped in between leads (:meth:`Host.replace`).
Each change that reaches the engine is logged in the store with the whole
file, so any earlier version can be applied again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from typing import Callable

from ..config.checker import check_file
from ..host import ConfigError, Host, Problem, Workflow
from .admin.workflow_file import commit, staged, unified_diff

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    problems: list[Problem]
    change_id: int | None = None  # the change log entry, when the engine changed
    changed: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


class Reloader:
    """One at a time (a lock): two Applies never interleave their write and swap."""

    def __init__(self, host_of: Callable[[], Host], load: Callable[[str], Workflow]):
        self._host_of = host_of  # the host is opened at startup, after this is made
        self._load = load  # a file -> a workflow built as the running one was (CRM URL, secrets)
        self._lock = asyncio.Lock()
        self._running: str | None = None  # the text of the file version the engine runs, when known

    def loaded(self) -> None:
        """Remember the file as the engine loaded it at start: the "before" of the first reload."""
        try:
            self._running = self.read()
        except (OSError, UnicodeDecodeError, TypeError):
            self._running = None  # a host without a workflow file: nothing to compare with

    @property
    def host(self) -> Host:
        return self._host_of()

    @property
    def path(self) -> Path:
        return Path(self.host.spec.source)

    def read(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def _check(self, path: Path) -> list[Problem]:
        result = check_file(path, self.host.registry)
        return [replace(p, file=self.path.name) for p in result.problems]

    async def apply_text(self, text: str, who: str, summary: str) -> Outcome:
        """Check ``text``; if good, write it in place of the workflow file and switch to it."""
        return await self.apply_edit(lambda old: (text, summary), who)

    async def apply_edit(self, edit: Callable[[str], tuple[str, str]], who: str) -> Outcome:
        """``edit``: the file's text -> (new text, summary), run on the file as
        it is under the lock, so two Applies that edit different parts of the
        file both land. A ValueError from ``edit`` is a problem, nothing is written."""
        async with self._lock:
            path = self.path
            old = await asyncio.to_thread(path.read_text, encoding="utf-8")
            try:
                text, summary = edit(old)
            except ValueError as exc:
                return Outcome([Problem(path.name, (), str(exc), code="conflict")])
            if text == old:
                return Outcome([])
            with staged(path, text) as tmp:
                problems = await asyncio.to_thread(self._check, tmp)
                if problems:
                    return Outcome(problems)
                await asyncio.to_thread(commit, tmp, path)
            before = self.host.spec.name
            problems = await self._swap(path)
            if problems:  # it checked but could not be built (a secret missing, say): put the old file back
                with staged(path, old) as tmp:
                    await asyncio.to_thread(commit, tmp, path)
                return Outcome(problems)
            self._running = text
            change_id = await self._log(who, summary, old, text, before)
            return Outcome([], change_id, True)

    async def reload(self, who: str) -> Outcome:
        """Load the workflow file as it is on disk (edited by hand or by CI)."""
        async with self._lock:
            path = self.path
            problems = await asyncio.to_thread(self._check, path)
            if problems:
                return Outcome(problems)
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
            before = self.host.spec.name
            last = await asyncio.to_thread(self._last_text)  # the version the running workflow came from
            problems = await self._swap(path)
            if problems:
                return Outcome(problems)
            self._running = text
            change_id = None
            if last != text:
                change_id = await self._log(who, "reloaded from the file", last or "", text, before)
            return Outcome([], change_id, True)

    async def _swap(self, path: Path) -> list[Problem]:
        try:  # adaptors are read and compiled off the event loop: leads keep flowing meanwhile
            workflow = await asyncio.to_thread(self._load, str(path))
        except ConfigError as exc:
            return [replace(p, file=path.name) for p in exc.problems]
        await self.host.replace(workflow)
        log.info("workflow reloaded", extra={"fields": {"workflow": workflow.name}})
        return []

    def _last_text(self) -> str | None:
        if self._running is not None:
            return self._running
        changes = self.host.store.config_changes(self.host.spec.name, limit=1)
        return changes[0]["text"] if changes else None

    async def _log(self, who: str, summary: str, old: str, new: str, before: str) -> int:
        """Log a change under the workflow's name after it; ``before``: its name before."""
        store, name = self.host.store, self.host.spec.name
        if before != name:  # the log is kept per name: say where the earlier changes are
            summary += f"; workflow renamed {before!r} -> {name!r} (earlier changes are logged under {before!r})"

        def write() -> int:
            if not store.config_changes(name, limit=1) and old:
                # the first change: keep the file as it was, so it can be applied again
                store.add_config_change({"workflow": name, "who": "(file)", "summary": "the file before the first change",
                                         "diff": "", "text": old})
            return store.add_config_change({"workflow": name, "who": who, "summary": summary,
                                            "diff": unified_diff(old, new, self.path.name), "text": new})

        return await asyncio.to_thread(write)
