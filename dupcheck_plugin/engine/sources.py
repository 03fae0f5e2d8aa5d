"""Lead sources: CSV (header row) or JSON Lines, from a file or stdin, streamed.

Rows are read in a thread and handed over in batches, so a slow stdin never
blocks the event loop and a million-row file never sits in memory. Each item
is ``(row_number, lead or None, error or None)``: a malformed row is an item
too, so it gets its own rejected decision.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import sys
import threading
from pathlib import Path
from typing import AsyncIterator, Iterator, TextIO

log = logging.getLogger(__name__)

Item = tuple[int, "dict | None", "str | None"]
BATCH = 256


def detect_format(path: str, first_line: str | None = None) -> str:
    lower = path.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if first_line is not None and first_line.lstrip().startswith("{"):
        return "jsonl"
    return "csv"


def iter_csv(stream: TextIO) -> Iterator[Item]:
    reader = csv.reader(stream)
    header = None
    for fields in reader:
        if not fields or all(not f.strip() for f in fields):
            continue
        if header is None:
            header = [h.strip() for h in fields]
            if "phone_number" not in header:
                log.warning("the header has no phone_number column (it has: %s): every row will be refused (6007)",
                            ", ".join(header))
            continue
        row = reader.line_num
        if len(fields) != len(header):
            yield row, dict(zip(header, fields)), f"line {row}: {len(fields)} fields, the header has {len(header)}"
            continue
        yield row, dict(zip(header, fields)), None


def iter_jsonl(stream: TextIO) -> Iterator[Item]:
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            yield n, None, f"line {n}: not JSON ({exc})"
            continue
        if not isinstance(obj, dict):
            yield n, None, f"line {n}: a lead must be a JSON object, not {type(obj).__name__}"
            continue
        yield n, obj, None


def iter_leads(stream: TextIO, fmt: str) -> Iterator[Item]:
    return iter_csv(stream) if fmt == "csv" else iter_jsonl(stream)


def open_source(path: str, fmt: str | None = None) -> tuple[TextIO, str]:
    """Open ``path`` (``-`` for stdin) and tell its format. Raises OSError."""
    if path == "-":
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="replace", newline="")
        if fmt is None:
            buffered = stream.buffer if hasattr(stream, "buffer") else None
            peek = buffered.peek(64)[:64].decode("utf-8", "replace") if buffered and hasattr(buffered, "peek") else ""
            fmt = detect_format("-", peek)
        return stream, fmt
    stream = Path(path).open("r", encoding="utf-8-sig", errors="replace", newline="")
    if fmt is None:
        first = stream.readline()
        stream.seek(0)
        fmt = detect_format(path, first)
    return stream, fmt


async def stream_items(stream: TextIO, fmt: str) -> AsyncIterator[Item]:
    """Read ``stream`` in a thread; yield items as they come, in batches."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=8)
    done = object()

    def produce() -> None:
        batch: list[Item] = []
        try:
            for item in iter_leads(stream, fmt):
                batch.append(item)
                if len(batch) >= BATCH:
                    asyncio.run_coroutine_threadsafe(queue.put(batch), loop).result()
                    batch = []
            if batch:
                asyncio.run_coroutine_threadsafe(queue.put(batch), loop).result()
        except BaseException as exc:  # surfaced in the event loop
            asyncio.run_coroutine_threadsafe(queue.put(exc), loop).result()
        finally:
            asyncio.run_coroutine_threadsafe(queue.put(done), loop).result()

    threading.Thread(target=produce, name="dupcheck-lead-reader", daemon=True).start()
    while True:
        batch = await queue.get()
        if batch is done:
            return
        if isinstance(batch, BaseException):
            raise batch
        for item in batch:
            yield item
