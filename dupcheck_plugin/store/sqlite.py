"""The embedded store: leads, the account DNC list and decision records in one
SQLite file.

One writer thread calls :meth:`SqliteStore.apply`; readers (an HTTP server)
may query from other threads at the same time. Each thread gets its own
connection, and WAL mode lets readers see the last commit while a batch is
being written.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import sqlite3
import threading
import time
import weakref
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .checkpoint import Checkpointer
from .claims import FileClaim, Held, claim_file
from .contract import Commit, DncEntry, RunInProgress, Store, Stored, StoreError, in_progress, upgrade_record
from .phone_guard import FilePhoneGuard
from .rows import batch_rows

if TYPE_CHECKING:
    from ..types import DecisionRecord

__all__ = ["SqliteStore", "StoreError"]

log = logging.getLogger(__name__)

# sqlite3 binds a parameter that is not exactly an int, float, str or bytes through its adapters,
# and for None, with none registered, it first tries two attribute lookups that fail (one formats an
# AttributeError's message): 2,100 instructions a None, and a lead's rows bind three or more (no
# list_id, no email, no idempotency key). With an adapter for None that gives None back (a C call)
# the first lookup answers: NULL all the same. sqlite3's adapters are the whole process's: one a
# program registered for None before this module was imported is left in place.
if (type(None), sqlite3.PrepareProtocol) not in sqlite3.adapters:
    sqlite3.register_adapter(type(None), {}.get)

SCHEMA_VERSION = 3  # 2: config_changes (the settings console's change log); 3: by_phone
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leads (
    id INTEGER PRIMARY KEY,
    phone_e164 TEXT,
    phone_number TEXT,
    phone_code TEXT,
    list_id TEXT,
    status TEXT,
    first_name TEXT,
    last_name TEXT,
    email TEXT,
    created_at TEXT NOT NULL,
    fields TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS dnc (
    id INTEGER PRIMARY KEY,
    phone_e164 TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    phone_code TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    reason TEXT,
    inserted_at TEXT NOT NULL,
    UNIQUE (phone_e164, campaign_id)
);

CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    phone_e164 TEXT,
    lead_id INTEGER,
    action TEXT NOT NULL,
    idempotency_key TEXT,
    workflow TEXT,
    source TEXT,
    row INTEGER,
    decided_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS decisions_idempotency_key
    ON decisions(idempotency_key) WHERE idempotency_key IS NOT NULL;
-- a row of a lead file is decided once per workflow: a re-run cannot decide it twice
CREATE UNIQUE INDEX IF NOT EXISTS decisions_source_row
    ON decisions(workflow, source, row) WHERE source IS NOT NULL AND row IS NOT NULL;
CREATE INDEX IF NOT EXISTS decisions_time ON decisions(decided_at);

-- the leads and decisions of each phone: one index for both tables, where a lead and its
-- decision sit side by side (kind 0: leads.id, 1: decisions.id), kept by the triggers below.
-- Phones arrive in no order, so each phone's entry dirties a page of its own in a batch's
-- commit: with an index on each table's phone_e164 that was two pages (8 KiB of WAL) a
-- created lead, most of what a lead cost to store (schema 3: older files are moved over on open)
CREATE TABLE IF NOT EXISTS by_phone (
    phone_e164 TEXT NOT NULL,
    kind INTEGER NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (phone_e164, kind, id)
) WITHOUT ROWID;

-- every Apply of the settings console: who, when, the diff and the whole file after it
CREATE TABLE IF NOT EXISTS config_changes (
    id INTEGER PRIMARY KEY,
    workflow TEXT NOT NULL,
    who TEXT NOT NULL,
    summary TEXT NOT NULL,
    diff TEXT NOT NULL,
    text TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
"""

_INSERT_LEAD_VALUES = """INSERT INTO leads (id, phone_e164, phone_number, phone_code, list_id, status,
    first_name, last_name, email, created_at, fields) VALUES"""
_INSERT_DECISION_VALUES = """INSERT INTO decisions (phone_e164, lead_id, action, idempotency_key,
    workflow, source, row, decided_at, record) VALUES"""
_INSERT_DNC = """INSERT OR IGNORE INTO dnc (phone_e164, phone_number, phone_code, campaign_id,
    reason, inserted_at) VALUES (?, ?, ?, ?, ?, ?)"""
# by_phone follows every insert, delete and phone change of leads and decisions, whoever writes them
_BY_PHONE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS {table}_by_phone_{event.split()[0].lower()} AFTER {event} ON {table}
    BEGIN {body} END"""
    for table, kind in (("leads", 0), ("decisions", 1))
    for event, body in (
        ("INSERT", f"INSERT INTO by_phone SELECT NEW.phone_e164, {kind}, NEW.id WHERE NEW.phone_e164 IS NOT NULL;"),
        ("DELETE", f"DELETE FROM by_phone WHERE phone_e164 = OLD.phone_e164 AND kind = {kind} AND id = OLD.id;"),
        ("UPDATE OF phone_e164, id",
         f"DELETE FROM by_phone WHERE phone_e164 = OLD.phone_e164 AND kind = {kind} AND id = OLD.id; "
         f"INSERT INTO by_phone SELECT NEW.phone_e164, {kind}, NEW.id WHERE NEW.phone_e164 IS NOT NULL;"),
    )
]
# schema 1 and 2 files: their rows into by_phone, the per-table phone indexes dropped
_MIGRATE_TO_3 = (
    "INSERT OR IGNORE INTO by_phone SELECT phone_e164, 0, id FROM leads WHERE phone_e164 IS NOT NULL",
    "INSERT OR IGNORE INTO by_phone SELECT phone_e164, 1, id FROM decisions WHERE phone_e164 IS NOT NULL",
    "DROP INDEX IF EXISTS leads_phone",
    "DROP INDEX IF EXISTS decisions_phone",
)
# an older file with more rows than this is told that its first open moves them (and takes a while)
_MIGRATION_NOTICE_ROWS = 100_000
# a filter on a table's phone: through by_phone, the row's own phone checked too (two
# parameters, the phone twice): a REPLACE deletes the row it replaces without the DELETE
# trigger (unless recursive_triggers is on, which another client's connection may not have),
# so by_phone may keep an entry of a phone its row no longer has
_LEADS_OF_PHONE = "id IN (SELECT id FROM by_phone WHERE phone_e164 = ? AND kind = 0) AND phone_e164 = ?"
_DECISIONS_OF_PHONE = "id IN (SELECT id FROM by_phone WHERE phone_e164 = ? AND kind = 1) AND phone_e164 = ?"
_LEAD_COLUMNS = ("id", "phone_e164", "phone_number", "phone_code", "list_id", "status",
                 "first_name", "last_name", "email", "created_at", "fields")
_CHANGE_COLUMNS = ("id", "workflow", "who", "summary", "diff", "text", "applied_at")
_DNC_COLUMNS = ("id", "phone_number", "phone_code", "phone_e164", "campaign_id", "reason", "inserted_at")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _lead_row(row: tuple) -> dict[str, Any]:
    lead = dict(zip(_LEAD_COLUMNS, row))
    lead["id"] = str(lead["id"])  # ids are strings in records and the API
    lead["fields"] = json.loads(lead["fields"])
    return lead


MULTI_ROW_MAX = 64  # rows in one INSERT: 64 x 11 columns stays under SQLite's oldest parameter limit (999)


def insert_rows(conn: sqlite3.Connection, insert: str, rows: Sequence[tuple]) -> None:
    """Insert ``rows`` with ``insert`` (``INSERT INTO t (...) VALUES``), in order, a
    few rows to a statement. ``executemany`` runs its statement once a row (bind, step,
    halt, reset); one INSERT of many ``VALUES`` rows runs once. A batched ``run``
    lead: ~438,300 -> ~432,600 instructions (callgrind, two runs of each tree,
    alternated). Chunks are powers of two up to
    :data:`MULTI_ROW_MAX`, so a table needs at most seven statement texts (the
    connection's statement cache keeps them compiled)."""
    done, n = 0, len(rows)
    while done < n:
        size = min(MULTI_ROW_MAX, 1 << ((n - done).bit_length() - 1))
        chunk = rows[done:done + size]
        conn.execute(_values_sql(insert, len(chunk[0]), size), list(itertools.chain.from_iterable(chunk)))
        done += size


@lru_cache(maxsize=64)
def _values_sql(insert: str, width: int, rows: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return f"{insert} {', '.join([row] * rows)}"


class SqliteStore(Store):
    """The :class:`~dupcheck_plugin.store.contract.Store` on one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        if str(path) == ":memory:":
            # every thread has its own connection, so each would see its own empty database
            raise StoreError("the SQLite store needs a file, not ':memory:'")
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise StoreError(f"cannot open database {self.path}: folder {self.path.parent} does not exist")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._closed = False
        self._claims: list[FileClaim] = []
        self._guard: FilePhoneGuard | None = None
        self.checkpointer = Checkpointer(self._conn, f"{self.path}-wal")
        self._create_schema(self._conn())

    # -- connections -----------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            # check_same_thread=False only so close() may close other threads' connections.
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False, cached_statements=64)
            try:
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode=WAL")  # first read of the file: fails here if not a database
                conn.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint; fast commits
                conn.execute("PRAGMA wal_autocheckpoint=0")  # not in a commit: the Checkpointer's thread does it
            except BaseException:
                conn.close()
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        with self._lock:
            # threads of a thread-per-request server come and go: close what dead threads left
            alive = []
            for ref, old in self._conns:
                thread = ref()
                if thread is not None and thread.is_alive():
                    alive.append((ref, old))
                else:
                    old.close()
            alive.append((weakref.ref(threading.current_thread()), conn))
            self._conns = alive
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"database {self.path} has schema version {version}; "
                                 f"this dupcheck knows up to {SCHEMA_VERSION}")
            if version == SCHEMA_VERSION:
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = self._rows_to_move(conn) if version else 0
                if rows > _MIGRATION_NOTICE_ROWS:
                    log.warning("database %s: moving the phones of up to %d leads and decisions into one "
                                "index (schema %d, once); on a file this size it takes a while", self.path,
                                rows, SCHEMA_VERSION)
                started = time.monotonic()
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                for statement in (*_BY_PHONE_TRIGGERS, *_MIGRATE_TO_3):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
                if rows > _MIGRATION_NOTICE_ROWS:
                    log.warning("database %s: schema %d in %.1f s", self.path, SCHEMA_VERSION,
                                time.monotonic() - started)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"cannot set up database {self.path}: {exc}") from None
        except StoreError:
            self.close()
            raise

    @staticmethod
    def _rows_to_move(conn: sqlite3.Connection) -> int:
        """About how many rows an older file's upgrade copies (the largest ids: no
        table scan; 0 for a table it does not have)."""
        total = 0
        for table in ("leads", "decisions"):
            try:
                total += conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
            except sqlite3.OperationalError:  # no such table
                pass
        return total

    def close(self) -> None:
        self.checkpointer.close()  # before its connection goes; the last connection closed checkpoints the rest
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
            claims, self._claims = self._claims, []
        for _, conn in conns:
            conn.close()
        for claim in claims:  # after the last write: a run that comes next finds every decision stored
            claim.release()
        if self._guard is not None:
            self._guard.close()

    def phone_guard(self) -> FilePhoneGuard:
        """Byte locks on ``DB-phones.lock`` next to the database: every process on this file shares them."""
        if self._guard is None:
            try:
                self._guard = FilePhoneGuard(f"{self.path}-phones.lock")
            except OSError as exc:
                raise StoreError(f"cannot open {self.path}-phones.lock: {exc.strerror or exc}") from None
        return self._guard

    def claim_run(self, workflow: str, source: str) -> None:
        """A lock file next to the database per (workflow, lead file), held until close (:mod:`.claims`)."""
        digest = hashlib.sha256(f"{workflow}\0{source}".encode()).hexdigest()[:16]
        path = Path(f"{self.path.resolve()}-run-{digest}.lock")
        try:
            claim = claim_file(path)
        except Held as held:
            raise RunInProgress(in_progress(workflow, source, str(self.path), held.note)) from None
        except OSError as exc:
            raise StoreError(f"cannot claim {source} for this run in {self.path}: {exc}") from None
        with self._lock:
            self._claims.append(claim)

    def __enter__(self) -> "SqliteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes (the writer thread) ---------------------------------------

    def apply(self, commits: Sequence[Commit]) -> list[str | None]:
        return [stored.lead_id for stored in self.apply_stored(commits)]

    def apply_stored(self, commits: Sequence[Commit]) -> list[Stored]:
        """Store a batch of commits in one transaction (see :class:`Store`)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now, not halfway through the batch
        return self._apply_begun(conn, commits)

    def apply_now(self, commits: Sequence[Commit]) -> list[Stored] | None:
        """:meth:`apply_stored`, or None at once (nothing written) when the write lock is
        held: by another process's transaction, or by a RESTART checkpoint copying the WAL.
        A local file's transaction otherwise (no fsync at commit: ``synchronous=NORMAL``)."""
        conn = self._conn()
        conn.execute("PRAGMA busy_timeout=0")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                return None
            raise
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return self._apply_begun(conn, commits)

    def _apply_begun(self, conn: sqlite3.Connection, commits: Sequence[Commit]) -> list[Stored]:
        """The batch's rows, in the transaction ``conn`` began; committed, or rolled back on any error."""
        try:
            # the write lock is held: the new leads' ids are the ones SQLite would give them
            # (the largest id plus one, and on), so every row of the batch is known before any
            # is inserted and each table takes its rows in a few multi-row INSERTs
            next_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM leads").fetchone()[0]
            rows = batch_rows(commits, itertools.count(next_id), _now())
            insert_rows(conn, _INSERT_LEAD_VALUES, rows.leads)
            if rows.dncs:
                conn.executemany(_INSERT_DNC, [self._dnc_row(entry, at) for entry, at in rows.dncs])
            insert_rows(conn, _INSERT_DECISION_VALUES, rows.decisions)
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the transaction is already gone; the original error matters
            if isinstance(exc, sqlite3.IntegrityError) and "idempotency_key" in str(exc):
                raise StoreError("a decision with this idempotency key is already stored; "
                                 "the batch was not stored") from exc
            if isinstance(exc, sqlite3.IntegrityError) and "decisions.row" in str(exc):
                raise StoreError("this row of this lead file is already decided by this workflow; "
                                 "the batch was not stored") from exc
            raise
        # committed: nothing from here on may make a caller think otherwise (and store it again)
        try:
            self.checkpointer.wrote()
        except Exception as exc:  # noqa: BLE001 - no thread to start, say: closing the store checkpoints
            log.warning("WAL checkpoint not scheduled: %s", exc)
        return list(map(Stored, rows.lead_ids, rows.texts))

    @staticmethod
    def _dnc_row(entry: DncEntry, inserted_at: str) -> tuple:
        return (entry.phone_e164, entry.phone_number, entry.phone_code, str(entry.campaign_id), entry.reason,
                inserted_at)

    @classmethod
    def _insert_dnc(cls, conn: sqlite3.Connection, entry: DncEntry, inserted_at: str) -> sqlite3.Cursor:
        return conn.execute(_INSERT_DNC, cls._dnc_row(entry, inserted_at))

    def dnc_add(self, entry: DncEntry) -> tuple[int, bool]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = self._insert_dnc(conn, entry, _now())
            if cur.rowcount == 1:
                result = (cur.lastrowid, True)
            else:
                row = conn.execute("SELECT id FROM dnc WHERE phone_e164 = ? AND campaign_id = ?",
                                   (entry.phone_e164, str(entry.campaign_id))).fetchone()
                result = (row[0], False)
            conn.execute("COMMIT")
            self.checkpointer.wrote()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result

    # -- reads (any thread) ------------------------------------------------

    def find_leads(self, phone_e164: str, list_id: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(_LEAD_COLUMNS)} FROM leads WHERE {_LEADS_OF_PHONE}"
        args: list[Any] = [phone_e164, phone_e164]
        if list_id is not None:
            sql += " AND list_id = ?"
            args.append(str(list_id))
        rows = self._conn().execute(sql + " ORDER BY id DESC", args).fetchall()
        return [_lead_row(row) for row in rows]

    def search_leads(self, *, lead_id: str | None = None, phone_e164: str | None = None,
                     list_id: str | None = None, email: str | None = None, offset: int = 0,
                     limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
        """(total, leads newest first) matching every given filter (email case-insensitive)."""
        where, args = [], []
        for clause, value in (("id = ?", lead_id), (_LEADS_OF_PHONE, phone_e164), ("list_id = ?", list_id)):
            if value is not None:
                where.append(clause)
                args += [str(value)] * clause.count("?")
        if email is not None:
            where.append("lower(email) = lower(?)")
            args.append(email)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        conn = self._conn()
        conn.execute("BEGIN")  # one snapshot: the total and the page agree
        try:
            total = conn.execute(f"SELECT COUNT(*) FROM leads{clause}", args).fetchone()[0]
            rows = conn.execute(f"SELECT {', '.join(_LEAD_COLUMNS)} FROM leads{clause} ORDER BY id DESC "
                                "LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        finally:
            conn.execute("COMMIT")
        return total, [_lead_row(row) for row in rows]

    def lead_by_id(self, lead_id: str) -> dict[str, Any] | None:
        try:
            rowid = int(lead_id)
        except (TypeError, ValueError):
            return None
        row = self._conn().execute(
            f"SELECT {', '.join(_LEAD_COLUMNS)} FROM leads WHERE id = ?", (rowid,)).fetchone()
        return _lead_row(row) if row else None

    def dnc_contains(self, phone_e164: str, campaign_id: str = "0") -> bool:
        row = self._conn().execute("SELECT 1 FROM dnc WHERE phone_e164 = ? AND campaign_id = ?",
                                   (phone_e164, str(campaign_id))).fetchone()
        return row is not None

    def dnc_search(self, phone_e164: str | None, campaign_id: str | None,
                   offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        where, args = [], []
        if phone_e164 is not None:
            where.append("phone_e164 = ?")
            args.append(phone_e164)
        if campaign_id is not None:
            where.append("campaign_id = ?")
            args.append(str(campaign_id))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        conn = self._conn()
        conn.execute("BEGIN")  # one snapshot, so total and entries agree
        try:
            total = conn.execute(f"SELECT COUNT(*) FROM dnc{clause}", args).fetchone()[0]
            rows = conn.execute(f"SELECT {', '.join(_DNC_COLUMNS)} FROM dnc{clause} "
                                "ORDER BY id DESC LIMIT ? OFFSET ?",
                                [*args, max(0, int(limit)), max(0, int(offset))]).fetchall()
        finally:
            conn.execute("COMMIT")
        return total, [dict(zip(_DNC_COLUMNS, row)) for row in rows]

    def decisions(self, phone_e164: str) -> list[DecisionRecord]:
        rows = self._conn().execute(f"SELECT record FROM decisions WHERE {_DECISIONS_OF_PHONE} ORDER BY id",
                                    (phone_e164, phone_e164)).fetchall()
        return [upgrade_record(json.loads(row[0])) for row in rows]

    def decision_by_idempotency_key(self, key: str) -> DecisionRecord | None:
        row = self._conn().execute("SELECT record FROM decisions WHERE idempotency_key = ?",
                                   (key,)).fetchone()
        return upgrade_record(json.loads(row[0])) if row else None

    def decided_rows(self, workflow: str, source: str) -> set[int]:
        """Rows of a lead file this workflow already decided (``run --resume``)."""
        rows = self._conn().execute("SELECT row FROM decisions WHERE workflow = ? AND source = ? AND row IS NOT NULL",
                                    (workflow, source)).fetchall()
        return {r[0] for r in rows}

    def decided_phones(self, workflow: str, source: str) -> dict[int, str | None]:
        """Row -> the phone it was decided for (``run --resume`` checks the file is the same)."""
        return dict(self._conn().execute("SELECT row, phone_e164 FROM decisions WHERE workflow = ? AND source = ? "
                                         "AND row IS NOT NULL", (workflow, source)).fetchall())

    def decided_records(self, workflow: str, source: str) -> Iterator[DecisionRecord]:
        """The records of the rows of a lead file this workflow decided, by row (``run --resume --out``)."""
        cur = self._conn().execute("SELECT record FROM decisions WHERE workflow = ? AND source = ? "
                                   "AND row IS NOT NULL ORDER BY row", (workflow, source))
        for (text,) in cur:
            yield upgrade_record(json.loads(text))

    def search_decisions(self, *, since: str | None = None, until: str | None = None, action: str | None = None,
                         rules_row: str | None = None, phone_e164: str | None = None, list_id: str | None = None,
                         offset: int = 0, limit: int = 50) -> tuple[int, list[DecisionRecord]]:
        """(total, records newest first, each with its ``id``) matching every given filter.
        ``since``/``until`` compare with ``decided_at`` (ISO 8601, UTC); ``rules_row`` is a
        row's name or its number, or what decided (``check_dup``, ``on_error``...)."""
        where, args = [], []
        for clause, value in (("decided_at >= ?", since), ("decided_at <= ?", until), ("action = ?", action),
                              (_DECISIONS_OF_PHONE, phone_e164),
                              ("json_extract(record, '$.lead.list_id') = ?", list_id)):
            if value is not None:
                where.append(clause)
                args += [value] * clause.count("?")
        if rules_row is not None:
            # the keys of today's records and of older ones (see upgrade_record)
            where.append("(? IN (json_extract(record, '$.rules_row_name'), json_extract(record, '$.decided_by'), "
                         "json_extract(record, '$.rule_name')) OR CAST(COALESCE(json_extract(record, '$.rules_row'), "
                         "json_extract(record, '$.matched_rule')) AS TEXT) = ?)")
            args += [rules_row, rules_row]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        conn = self._conn()
        conn.execute("BEGIN")  # one snapshot: the total and the page agree
        try:
            total = conn.execute(f"SELECT COUNT(*) FROM decisions{clause}", args).fetchone()[0]
            rows = conn.execute(f"SELECT id, record FROM decisions{clause} ORDER BY id DESC LIMIT ? OFFSET ?",
                                [*args, max(0, int(limit)), max(0, int(offset))]).fetchall()
        finally:
            conn.execute("COMMIT")
        return total, [{"id": row[0], **upgrade_record(json.loads(row[1]))} for row in rows]

    def decision_by_id(self, decision_id: int) -> DecisionRecord | None:
        row = self._conn().execute("SELECT id, record FROM decisions WHERE id = ?", (int(decision_id),)).fetchone()
        return {"id": row[0], **upgrade_record(json.loads(row[1]))} if row else None

    # -- the settings console's change log ---------------------------------

    def add_config_change(self, change: dict[str, Any]) -> int:
        """Store one applied change (``workflow, who, summary, diff, text``); returns its id."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute("INSERT INTO config_changes (workflow, who, summary, diff, text, applied_at) "
                               "VALUES (?, ?, ?, ?, ?, ?)",
                               (change["workflow"], change["who"], change["summary"], change["diff"],
                                change["text"], change.get("applied_at") or _now()))
            conn.execute("COMMIT")
            self.checkpointer.wrote()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return cur.lastrowid

    def config_changes(self, workflow: str, limit: int = 50) -> list[dict[str, Any]]:
        """The workflow's changes, newest first."""
        rows = self._conn().execute(f"SELECT {', '.join(_CHANGE_COLUMNS)} FROM config_changes WHERE workflow = ? "
                                    "ORDER BY id DESC LIMIT ?", (workflow, max(0, int(limit)))).fetchall()
        return [dict(zip(_CHANGE_COLUMNS, row)) for row in rows]

    def config_change(self, change_id: int) -> dict[str, Any] | None:
        row = self._conn().execute(f"SELECT {', '.join(_CHANGE_COLUMNS)} FROM config_changes WHERE id = ?",
                                   (int(change_id),)).fetchone()
        return dict(zip(_CHANGE_COLUMNS, row)) if row else None

    def counts(self) -> dict[str, int]:
        row = self._conn().execute(
            "SELECT (SELECT COUNT(*) FROM leads), (SELECT COUNT(*) FROM dnc),"
            " (SELECT COUNT(*) FROM decisions)").fetchone()
        return {"leads": row[0], "dnc": row[1], "decisions": row[2]}
