"""The store contract: what every store (SQLite, PostgreSQL, a plugin's) does.

The engine decides what a decision means -- which lead to create with which
status, which DNC entry to add, which record to keep -- and hands the store
a :class:`Commit` per lead. The store only keeps what it is given, in one
transaction per :meth:`Store.apply` call, and answers the reads the commands
make. A store supplied through ``dupcheck_make_store`` subclasses
:class:`Store`; a missing method is then a ``TypeError`` at start-up, not a
failure on the first request that needs it.

Threads: ``apply`` and ``dnc_add`` are called from one writer thread at a
time; reads may come from any thread, concurrently with writes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, NamedTuple, Sequence

from ..codes import INTERNAL
from ..errors import DupcheckError
from ..frozen import one_step_init

if TYPE_CHECKING:
    from ..types import DecisionRecord  # types imports this module
    from .phone_guard import PhoneGuard


class StoreError(DupcheckError):
    """The store cannot be opened or refused a write; the message says why.

    Raised by ``apply`` when a record's ``idempotency_key`` or its
    (``workflow``, ``source``, ``source_row``) is already stored: nothing of
    that call landed."""


class StoreOutcomeUnknown(StoreError):
    """A write whose outcome the store cannot learn: the connection to a
    database server went at its COMMIT, and the server could not be asked
    afterwards. The batch may have landed; the store writer does not write its
    commits again (that could store them twice), and a caller should look
    before it retries (a lead file's rows: ``--resume`` finds the rows stored)."""


class RunInProgress(StoreError):
    """Another run of the workflow is deciding the lead file in this store
    right now (:meth:`Store.claim_run`); the message names them, and the
    other run's process when the store knows it."""


def in_progress(workflow: str, source: str, store: str, holder: str) -> str:
    """RunInProgress's message (``holder``: what the store knows of the other run's process, or "")."""
    return (f"another run of workflow {workflow!r} is deciding {source} in {store} right now"
            + (f" ({holder})" if holder else "") + ": let it finish, or stop it and go on with --resume")


def upgrade_record(record: Mapping[str, Any]) -> DecisionRecord:
    """A decision record as read back from a store, with today's keys.

    Records written by older versions (``matched_rule``, ``rule_name``,
    ``row``: a rules-table row was once a "rule") get ``rules_row``,
    ``rules_row_name``, ``decided_by`` and ``source_row``; ``decided_by`` is
    read from what such a record holds.
    A current record is returned as it is. Every store applies this to each
    record it reads back."""
    if not any(key in record for key in ("matched_rule", "rule_name", "row")):
        return record  # type: ignore[return-value]
    out: dict[str, Any] = dict(record)
    index = out.pop("matched_rule", None)
    name = out.pop("rule_name", None)
    out["source_row"] = out.pop("row", out.get("source_row"))
    out["rules_row"] = index
    out["rules_row_name"] = name if index is not None else None
    if index is not None:
        by = "rules_row"
    elif name in ("check_dup", "check_dnc"):  # old records named the local check that decided there
        by = name
    elif out.get("checked"):
        by = "default_status"
    elif str(out.get("detail") or "").startswith("CRM "):  # the on_error policy's reasons
        by = "on_error"
    elif out.get("code") == INTERNAL.code:
        by = "node_error"
    elif out.get("action") == "rejected":
        by = "intake"
    else:
        by = "check_off"
    out["decided_by"] = by
    return out  # type: ignore[return-value]


@one_step_init
@dataclass(frozen=True)
class NewLead:
    """A lead to create. ``fields`` are all of the lead's fields as strings."""

    phone_e164: str | None
    phone_number: str | None
    phone_code: str | None
    list_id: str | None
    status: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    fields: Mapping[str, str]


@one_step_init
@dataclass(frozen=True)
class DncEntry:
    """An entry of the account's do-not-call list; one per (phone, campaign).
    ``campaign_id`` "0" is the account-wide list."""

    phone_e164: str
    phone_number: str  # national digits, as Convoso's DNC API shows them
    phone_code: str
    campaign_id: str
    reason: str


@one_step_init
@dataclass(frozen=True)
class Commit:
    """Everything one decision stores, together or not at all.

    ``record`` is the decision record (the README's JSON object); the store
    keeps it with ``lead_id`` set to the id of ``lead`` once created. The
    store reads these keys of it: ``phone_e164``, ``action``,
    ``idempotency_key`` (unique when set), ``workflow``, ``source`` and
    ``source_row`` (unique together when ``source`` and ``source_row`` are set),
    ``decided_at`` (ISO 8601, the lead's ``created_at`` and the DNC entry's
    ``inserted_at``)."""

    record: DecisionRecord
    lead: NewLead | None = None
    dnc: DncEntry | None = None


class Stored(NamedTuple):
    """What :meth:`Store.apply_stored` says of one commit."""

    lead_id: str | None  # the new lead's id, or None where no lead was created
    record_json: str | None  # the record as stored (``lead_id`` set) in JSON text; None: the store does not say


class StoredRecord(dict):
    """A decision record as the store keeps it (``lead_id`` set). ``json`` is
    the store's own JSON text of it, or None: ``run --out`` writes that text,
    so a record is serialised once, and the line is what the store holds."""

    __slots__ = ("json",)

    @classmethod
    def of(cls, record: Mapping[str, Any], stored: Stored) -> "StoredRecord":
        out = cls(record)
        out["lead_id"] = stored.lead_id
        out.json = stored.record_json
        return out


def _defining(store: Any, name: str) -> type | None:
    """The class in ``store``'s MRO whose own body defines ``name`` (None: none does)."""
    return next((c for c in type(store).__mro__ if name in vars(c)), None)


def applier(store: Any) -> Callable[[Sequence[Commit]], list[Stored]]:
    """How a writer stores a batch with ``store``: its ``apply_stored``,
    unless a subclass overrode ``apply`` below the class that gives
    ``apply_stored`` (a plugin's store wrapping SQLite's ``apply``, say): its
    ``apply`` must then see every batch, and the records' text is not known."""
    gives, applies = _defining(store, "apply_stored"), _defining(store, "apply")
    if gives is not None and applies is not None and issubclass(gives, applies):
        return store.apply_stored
    return lambda commits: [Stored(lead_id, None) for lead_id in store.apply(commits)]


def in_place_applier(store: Any) -> Callable[[Sequence[Commit]], list[Stored] | None] | None:
    """``store.apply_now`` when the writer may use it: the class that gives it is the
    one whose writes the writer calls (:func:`applier`). A subclass that overrides
    ``apply`` or ``apply_stored`` below it (a plugin's store sending each batch
    somewhere too) would be bypassed: None then, as for a store without one."""
    gives = _defining(store, "apply_now")
    if gives is None or gives is Store:
        return None
    for name in ("apply", "apply_stored"):
        defined = _defining(store, name)
        if defined is not None and not issubclass(gives, defined):
            return None
    return store.apply_now


class Store(ABC):
    """Where decisions land: leads, the account DNC list, decision records.

    Leads are returned as dicts with the keys ``id`` (a string), ``phone_e164``,
    ``phone_number``, ``phone_code``, ``list_id``, ``status``, ``first_name``,
    ``last_name``, ``email``, ``created_at`` and ``fields``; DNC entries with
    ``id``, ``phone_e164``, ``phone_number``, ``phone_code``, ``campaign_id``,
    ``reason``, ``inserted_at``; decision records as stored (with ``lead_id``),
    each passed through :func:`upgrade_record` so that records an older
    version wrote read with today's keys.
    """

    # -- writes ---------------------------------------------------------------

    @abstractmethod
    def apply(self, commits: Sequence[Commit]) -> list[str | None]:
        """Store every commit in one transaction: its lead, its DNC entry (an
        entry already there for that phone and campaign is kept), its record.
        Returns the new lead ids (None where no lead was created), in order.
        On any error nothing lands; raise :class:`StoreError` for a duplicate
        idempotency key or (workflow, source, row)."""

    def apply_stored(self, commits: Sequence[Commit]) -> list[Stored]:
        """:meth:`apply`, also giving each record's JSON text as stored where
        the store has it (the SQL stores serialise each record once, and the
        writer hands that text on). A store that does not override it gives
        None for the text; a subclass that overrides only ``apply`` is written
        through its ``apply`` (see :func:`applier`)."""
        return [Stored(lead_id, None) for lead_id in self.apply(commits)]

    def apply_now(self, commits: Sequence[Commit]) -> list[Stored] | None:
        """:meth:`apply_stored` if the transaction can start at once, from the
        calling thread, and takes well under a millisecond; None (nothing
        written) if it would have to wait (another writer holds the lock). The
        store writer then stores an idle ``serve``'s inserts in the event loop's
        own thread instead of handing it to the writer thread and back (two
        thread wake-ups, each slow on an idle core). None here: a store that
        answers over a network never can."""
        return None

    @abstractmethod
    def dnc_add(self, entry: DncEntry) -> tuple[int, bool]:
        """Add one DNC entry now; returns (entry id, newly added)."""

    # -- reads ----------------------------------------------------------------

    @abstractmethod
    def find_leads(self, phone_e164: str, list_id: str | None = None) -> list[dict[str, Any]]:
        """Leads with this phone, newest first (optionally in one list)."""

    @abstractmethod
    def search_leads(self, *, lead_id: str | None = None, phone_e164: str | None = None,
                     list_id: str | None = None, email: str | None = None, offset: int = 0,
                     limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page of leads newest first) matching every given filter
        (``email`` case-insensitively); the total and the page agree."""

    @abstractmethod
    def lead_by_id(self, lead_id: str) -> dict[str, Any] | None:
        """The lead with this id, or None (also for an id that is not a number)."""

    @abstractmethod
    def dnc_contains(self, phone_e164: str, campaign_id: str = "0") -> bool:
        """Whether this phone is on this campaign's DNC list."""

    @abstractmethod
    def dnc_search(self, phone_e164: str | None, campaign_id: str | None,
                   offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page of entries newest first) of the DNC list, filtered."""

    @abstractmethod
    def decisions(self, phone_e164: str) -> list[DecisionRecord]:
        """Decision records for a phone, oldest first."""

    @abstractmethod
    def decision_by_idempotency_key(self, key: str) -> DecisionRecord | None:
        """The record stored with this idempotency key, or None."""

    @abstractmethod
    def decided_rows(self, workflow: str, source: str) -> set[int]:
        """Rows of lead file ``source`` that ``workflow`` already decided."""

    def decided_phones(self, workflow: str, source: str) -> dict[int, str | None]:
        """Row -> the E.164 phone it was decided for (None: it had none valid), for the
        rows of lead file ``source`` that ``workflow`` decided: ``run --resume`` checks
        the file still holds those leads there. The default reads the records; a
        store that can (SQLite, PostgreSQL) reads its phone column alone."""
        return {record["source_row"]: record.get("phone_e164") for record in self.decided_records(workflow, source)}

    def phone_guard(self) -> "PhoneGuard | None":
        """The lock per phone that every process writing this store shares
        (:mod:`dupcheck_plugin.store.phone_guard`), one per store, closed with
        it; None (the default) for a store only one process writes. A host takes
        it after its own lock on the phone."""
        return None

    def claim_run(self, workflow: str, source: str) -> None:
        """Claim lead file ``source`` for one run of ``workflow`` until the
        store is closed (or the process ends): :class:`RunInProgress` when
        another run, in any process, holds that claim now. Without it two
        runs of one file both decide its rows until the second meets a row
        the first stored. The default claims nothing: a store that can tell
        (SQLite, PostgreSQL) overrides it."""

    @abstractmethod
    def decided_records(self, workflow: str, source: str) -> Iterator[DecisionRecord]:
        """The records of the rows of lead file ``source`` that ``workflow``
        decided, by row (``run --resume`` repairs ``--out`` from them)."""

    @abstractmethod
    def search_decisions(self, *, since: str | None = None, until: str | None = None, action: str | None = None,
                         rules_row: str | None = None, phone_e164: str | None = None, list_id: str | None = None,
                         offset: int = 0, limit: int = 50) -> tuple[int, list[DecisionRecord]]:
        """(total, one page of records newest first, each with its store ``id``)
        matching every filter given: ``since``/``until`` compare with
        ``decided_at`` as text, ``rules_row`` is a row's name or number
        (or a ``decided_by`` value: ``check_dup``, ``on_error``...),
        ``list_id`` the lead's. The settings console's Decisions page."""

    @abstractmethod
    def decision_by_id(self, decision_id: int) -> DecisionRecord | None:
        """One record with its ``id``, or None."""

    # -- the settings console's change log -------------------------------------

    @abstractmethod
    def add_config_change(self, change: Mapping[str, Any]) -> int:
        """Keep one applied change of a workflow file: ``workflow``, ``who``,
        ``summary``, ``diff`` and ``text`` (the whole file after it). Sets
        ``applied_at`` (ISO 8601); returns the change's id."""

    @abstractmethod
    def config_changes(self, workflow: str, limit: int = 50) -> list[dict[str, Any]]:
        """The workflow's changes, newest first, each with ``id`` and ``applied_at``."""

    @abstractmethod
    def config_change(self, change_id: int) -> dict[str, Any] | None:
        """One change by id, or None."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """``{"leads": n, "dnc": n, "decisions": n}``."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; calling it again does nothing."""
