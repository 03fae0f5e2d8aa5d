"""Lead sources: CSV (header row) or JSON Lines, from a file or stdin, streamed.

Rows are read in a thread and handed over in batches, so a slow stdin never
blocks the event loop and a million-row file never sits in memory. Each item
is ``(row_number, lead or None, error or None)``: a malformed row is an item
too, so it gets its own rejected decision and the rest of the file goes on.
Broken CSV (a field over the limit, an unclosed quote), a line that is not
JSON or not an object, and a physical line longer than ``MAX_ROW_CHARS`` are
such rows; invalid UTF-8 is read as lone surrogates, which intake refuses.
Row numbers are physical line numbers, the same on every read of the file,
so ``--resume`` skips exactly what was decided.
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import csv
import io
import json
import logging
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, TextIO

from ..config.suggest import did_you_mean
from ..convoso_fields import LEAD_FIELDS
from ..errors import DupcheckError
from .intake import MAX_FIELD_CHARS, MAX_ROW_CHARS, printable

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


class BoundedLines:
    """The physical lines of ``stream``, none longer than ``limit`` (the rest of
    an overlong line is skipped, never held in memory, and ``overlong`` says
    so). Lines handed out since :meth:`mark` can be pushed back, to be read
    again: a quote opened by mistake must not swallow the rows after it."""

    def __init__(self, stream: TextIO, limit: int = MAX_ROW_CHARS):
        self.stream, self.limit = stream, limit
        self._overlong: set[int] = set()  # physical numbers of the lines cut short
        self.number = 0  # physical number of the last line handed out
        self.taken: list[tuple[int, str]] = []
        self._read = 0
        self._pending: deque[tuple[int, str]] = deque()

    def __iter__(self) -> "BoundedLines":
        return self

    def __next__(self) -> str:
        if self._pending:
            self.number, line = self._pending.popleft()
        else:
            self._read += 1
            try:
                line = self._readline()
            except StopIteration:  # no such line: the last one stays the last one read
                self._read -= 1
                raise
            self.number = self._read
        self.taken.append((self.number, line))
        return line

    def _readline(self) -> str:
        line = self.stream.readline(self.limit + 1)
        if not line:
            raise StopIteration
        if len(line) > self.limit and not line.endswith("\n"):
            self._overlong.add(self._read)
            while True:  # skip to the end of this physical line
                rest = self.stream.readline(self.limit)
                if not rest or rest.endswith("\n"):
                    break
            return "\n"
        return line

    @property
    def overlong(self) -> bool:
        """Was a line handed out since :meth:`mark` cut short?"""
        return bool(self._overlong) and any(n in self._overlong for n, _ in self.taken)

    def mark(self) -> None:
        self.taken = []

    def push_back(self, lines: list[tuple[int, str]]) -> None:
        self._pending.extendleft(reversed(lines))


class LeadFileError(DupcheckError):
    """A lead file that cannot be read as leads at all (its header): raised before
    its first row, so nothing is decided (a header mistake would refuse every row,
    each stored as decided, and the fixed file could not run on the same store)."""


# a spreadsheet saved with a locale's list separator: a header with none of these but commas
OTHER_DELIMITERS = (";", "\t", "|")


def csv_delimiter(lines: BoundedLines) -> str:
    """The header's separator: a comma, or one of OTHER_DELIMITERS when the first
    non-blank line has no comma and names phone_number with it. The lines read
    to tell are pushed back."""
    lines.mark()
    first = ""
    for line in lines:
        if line.strip():
            first = line
            break
    lines.push_back(lines.taken)
    if "," not in first:
        for delimiter in OTHER_DELIMITERS:
            if delimiter in first and "phone_number" in (h.strip().strip('"') for h in first.split(delimiter)):
                log.warning("reading the lead file as %s-separated: its header has no comma",
                            "tab" if delimiter == "\t" else repr(delimiter))
                return delimiter
    return ","


def header_problem(header: list[str]) -> str | None:
    """What makes a CSV header unreadable as leads: a column name given twice
    (each row would keep one value and drop the other), no phone_number (every
    lead needs one)."""
    named = [h for h in header if h]  # unnamed columns (a spreadsheet's trailing commas) are not read
    twice = sorted({h for h in named if named.count(h) > 1}, key=header.index)
    if twice:
        where = "; ".join(f"{h!r} in columns {', '.join(str(i + 1) for i, x in enumerate(header) if x == h)}"
                          for h in twice)
        return (f"the header names a column more than once ({where}): each row would keep one of its values "
                "and lose the other; rename or remove the repeat")
    if "phone_number" not in header:
        meant = did_you_mean("phone_number", header)
        return (f"the header has no phone_number column (it has: {_listed(header)}): every lead needs one"
                + (f". A column takes the name of the lead field it holds, in lower case with underscores: "
                   f"rename {meant!r} to phone_number" if meant else ""))
    return None


HEADER_NAMES_SHOWN = 20


def _listed(header: list[str]) -> str:
    """The header's names as a message shows them: the first few, each cut and printable."""
    shown = ", ".join(printable(h, 40) for h in header[:HEADER_NAMES_SHOWN])
    return shown + (f" and {len(header) - HEADER_NAMES_SHOWN} more" if len(header) > HEADER_NAMES_SHOWN else "")


def _not_text(header: list[str]) -> bool:
    """Whether a header holds bytes its encoding does not read (lone surrogates, as the
    file is opened) or control characters but a tab: a binary file, or a text file in
    another encoding."""
    return any(any("\udc00" <= c <= "\udcff" or (c < " " and c != "\t") or c == "\x7f" for c in h)
               for h in header if not h.isascii() or not h.isprintable())


def _encoding_name(stream: TextIO) -> str:
    encoding = getattr(stream, "encoding", None) or "UTF-8"
    return "UTF-8" if encoding.lower().replace("_", "-").startswith("utf-8") else encoding


def header_warnings(header: list[str]) -> list[str]:
    """A column a typo or a case away from one of Convoso's lead fields (``First Name``):
    read as a custom field of that name, so the lead field it was meant for is empty."""
    out = []
    for name in header:
        meant = None if not name or name in LEAD_FIELDS else did_you_mean(name, LEAD_FIELDS)
        if meant is not None and meant not in header:
            out.append(f"column {name!r} is a typo or a case away from Convoso's lead field {meant}: it is read "
                       f"as a custom field of its own name, and {meant} stays empty (rename it {meant})")
    return out


def iter_csv(stream: TextIO) -> Iterator[Item]:
    """The rows of a CSV lead file; raises :class:`LeadFileError` at a header it cannot read."""
    csv.field_size_limit(MAX_FIELD_CHARS)  # a bigger field (or a runaway quote) is that row's error
    lines = BoundedLines(stream)
    # strict: a quote left open at the end of the file is an error
    reader = csv.reader(lines, delimiter=csv_delimiter(lines), strict=True)
    header = None
    while True:
        lines.mark()
        error = None
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader starts afresh on the next line
            fields, error = None, f"broken CSV ({exc})"
        taken = lines.taken
        if len(taken) > 1 and (fields is None or (header is not None and len(fields) != len(header))):
            # a quote opened on the first line swallowed the lines after it: refuse that line, read the rest again
            first = taken[0][0]
            lines.push_back(taken[1:])
            yield first, None, f"line {first}: broken CSV quoting (a quote opened and not closed on this line)"
            continue
        row = lines.number
        if lines.overlong:
            yield row, None, f"line {row}: longer than {MAX_ROW_CHARS} characters"
            continue
        if error:
            yield row, None, f"line {row}: {error}"
            continue
        if not "".join(fields).strip():  # no fields, or blanks only: a blank line
            continue
        if header is None:
            header = [h.strip() for h in fields]
            if _not_text(header):  # read as names, its bytes would refuse every row (6000s): say it once
                raise LeadFileError(
                    f"line {row}: the header is not {_encoding_name(stream)} text: a lead file is CSV "
                    "or JSON Lines (a spreadsheet's workbook, .xlsx or .xls: save it as CSV; a CSV in another "
                    "encoding: --encoding cp1252, say)")
            problem = header_problem(header)
            if problem is not None:
                raise LeadFileError(f"line {row}: {problem}")
            for warning in header_warnings(header):
                log.warning("line %d: %s", row, warning)
            continue
        if len(fields) != len(header):
            yield row, dict(zip(header, fields)), f"line {row}: {len(fields)} fields, the header has {len(header)}"
            continue
        yield row, dict(zip(header, fields)), None


class RepeatedKey(DupcheckError, ValueError):
    """A JSON line's object gives a key twice: that line is refused."""


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: json keeps a repeated key's last
    value and drops the others unsaid (two phone_numbers: which is the lead's?)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKey(f"the key {key[:200]!r} is given twice: which value is the lead's cannot be told")
            seen.add(key)
    return obj


def iter_jsonl(stream: TextIO) -> Iterator[Item]:
    lines = BoundedLines(stream)
    while True:
        lines.mark()
        line = next(lines, None)
        if line is None:
            return
        n = lines.number
        if lines.overlong:
            yield n, None, f"line {n}: longer than {MAX_ROW_CHARS} characters"
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=_once_each)
        except RepeatedKey as exc:
            yield n, None, f"line {n}: {exc}"
            continue
        except (ValueError, RecursionError) as exc:  # bad JSON, absurd nesting or numbers
            yield n, None, f"line {n}: not JSON ({str(exc)[:200]})"
            continue
        if not isinstance(obj, dict):
            yield n, None, f"line {n}: a lead must be a JSON object, not {type(obj).__name__}"
            continue
        yield n, obj, None


def iter_leads(stream: TextIO, fmt: str) -> Iterator[Item]:
    return iter_csv(stream) if fmt == "csv" else iter_jsonl(stream)


def _escape_undecodable(exc: UnicodeError) -> tuple[str, int]:
    """``surrogateescape`` for every codec: each byte the file's encoding does not read becomes
    a lone surrogate, which intake refuses (that row is rejected, saying so). Python's own
    handler takes only bytes from 0x80, and a UTF-16 file's bad code unit holds lower ones
    (a lone surrogate ``00 d8``, a file cut in the middle of a character): that read raised."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "".join(chr(0xDC00 + b) for b in exc.object[exc.start:exc.end]), exc.end


UNDECODABLE = "dupcheck-escape"
codecs.register_error(UNDECODABLE, _escape_undecodable)


def open_source(path: str, fmt: str | None = None, encoding: str = "utf-8") -> tuple[TextIO, str]:
    """Open ``path`` (``-`` for stdin) and tell its format. Raises OSError.
    ``encoding``: the file's text encoding (a spreadsheet's CSV export is
    often ``cp1252``); UTF-8 may start with a byte-order mark. Bytes that
    are not of it reach intake, which rejects their row and says so."""
    utf8 = encoding.replace("_", "-").lower() in ("utf-8", "utf8")
    if utf8:
        encoding = "utf-8-sig"  # a BOM is not part of the first column's name
    if path == "-":
        if utf8 and hasattr(sys.stdin.buffer, "peek"):
            encoding = _by_bom(sys.stdin.buffer.peek(2)[:2], encoding)
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding=encoding, errors=UNDECODABLE, newline="")
        if fmt is None:
            buffered = stream.buffer if hasattr(stream, "buffer") else None
            # read in the stream's own encoding (UTF-16's "{" is two bytes): a cut last character is replaced
            peek = buffered.peek(64)[:64].decode(encoding, "replace") if buffered and hasattr(buffered, "peek") else ""
            fmt = detect_format("-", peek)
        return stream, fmt
    if utf8:
        with Path(path).open("rb") as raw:
            encoding = _by_bom(raw.read(2), encoding)
    stream = Path(path).open("r", encoding=encoding, errors=UNDECODABLE, newline="")
    if fmt is None:
        first = stream.readline(4096)
        stream.seek(0)
        fmt = detect_format(path, first)
    return stream, fmt


def _by_bom(start: bytes, encoding: str) -> str:
    """UTF-16 where the first bytes are its byte-order mark (a spreadsheet's "Unicode text"
    export), else ``encoding``: read as UTF-8, every byte of it would be a lone surrogate."""
    if start in (b"\xff\xfe", b"\xfe\xff"):
        log.warning("reading the lead file as UTF-16: it starts with UTF-16's byte-order mark")
        return "utf-16"
    return encoding


async def stream_items(stream: TextIO, fmt: str) -> AsyncIterator[Item]:
    """Read ``stream`` in a thread; yield items as they come, in batches."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=8)
    done = object()

    class Gone(Exception):
        """The run stopped (Ctrl-C, SIGTERM, an error) while this thread waited to hand rows over."""

    def put(x: Any) -> None:
        try:
            asyncio.run_coroutine_threadsafe(queue.put(x), loop).result()
        except (concurrent.futures.CancelledError, RuntimeError) as exc:  # cancelled, or the loop closed
            raise Gone from exc

    def produce() -> None:
        batch: list[Item] = []
        try:
            try:
                for item in iter_leads(stream, fmt):
                    batch.append(item)
                    if len(batch) >= BATCH:
                        put(batch)
                        batch = []
                if batch:
                    put(batch)
            except Gone:
                raise
            except BaseException as exc:  # surfaced in the event loop
                put(exc)
            put(done)
        except Gone:
            return  # nobody reads the rows any more

    threading.Thread(target=produce, name="dupcheck-lead-reader", daemon=True).start()
    while True:
        batch = await queue.get()
        if batch is done:
            return
        if isinstance(batch, BaseException):
            raise batch
        for item in batch:
            yield item
