"""``run --out FILE --resume``: make FILE hold every decided row of this file once.

The records of a run reach ``--out`` after the store has them; a ``kill -9``
can lose the last ones written (a process buffer, a torn last line). On
``--resume`` the file is first repaired: a torn last line is cut, the rows
the store decided that the file lacks are appended from the store, and the
run then appends, never truncates. So after any number of interrupted runs,
the file holds each row exactly once.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Iterable

from ..host import upgrade_record


def cut_torn_tail(path: str) -> None:
    """Drop a last line that has no newline: a write a crash cut short."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            i = chunk.rfind(b"\n")
            if i >= 0:
                end = pos - step + i + 1
                if end != size:
                    f.truncate(end)
                return
            pos -= step
        f.truncate(0)


def rows_in(path: str, workflow: str, source: str) -> set[int]:
    rows: set[int] = set()
    with open(path, "rb") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            record = upgrade_record(record)  # a line an older version wrote
            if record.get("workflow") == workflow and record.get("source") == source \
                    and isinstance(record.get("source_row"), int):
                rows.add(record["source_row"])
    return rows


def repair(path: str, workflow: str, source: str, stored: Callable[[], Iterable[dict[str, Any]]],
           dumps: Callable[[Any], str]) -> int:
    """Append to ``path`` the stored records of (workflow, source) it lacks; returns how many."""
    if not os.path.exists(path):
        open(path, "w").close()
    cut_torn_tail(path)
    present = rows_in(path, workflow, source)
    added = 0
    with open(path, "a", encoding="utf-8") as out:
        for record in stored():
            if record.get("source_row") not in present:
                out.write(dumps(record) + "\n")
                present.add(record["source_row"])
                added += 1
    return added
