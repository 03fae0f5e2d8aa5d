"""One serialisation per record (issue 14): the SQL stores dump each record
once, and `run --out` writes the store's own text of it."""

from __future__ import annotations

import json
import sqlite3
from types import SimpleNamespace

import orjson

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import write_workflow
from dupcheck_plugin import jsontext
from dupcheck_plugin.cli.main import main
from dupcheck_plugin.store.contract import Commit, NewLead, StoredRecord, applier
from dupcheck_plugin.store.rows import record_json
from dupcheck_plugin.store.sqlite import SqliteStore
from dupcheck_plugin.store.writer import StoreWriter

SCALARS = st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=12)
# strings and keys that look like the tail the fast path looks for
TRICKY = st.sampled_from([',"lead_id":null}', '"lead_id":null', "lead_id", '\\",\\"lead_id\\":null}', "}"])
VALUES = st.recursive(SCALARS | TRICKY, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8) | TRICKY, inner, max_size=3), max_leaves=12)
LEAD_IDS = st.none() | st.integers(1, 10**12).map(str) | st.sampled_from(["", "12a", "٣", '"', "x\\y"])


@settings(max_examples=400, deadline=None)
@given(before=st.dictionaries(st.text(max_size=8) | TRICKY, VALUES, max_size=6),
       after=st.dictionaries(st.text(max_size=8) | TRICKY, VALUES, max_size=3),
       lead_id=LEAD_IDS, nested_last=VALUES)
def test_the_record_text_is_the_record_with_its_lead_id(before, after, lead_id, nested_last):
    """The fast path (one dump, the id put in place) gives what dumping the
    record with its lead_id gives, whatever the record holds and wherever
    ``lead_id`` sits: last (run), before other keys (serve), or only inside a
    nested object."""
    for record in ({**before, "lead_id": None},  # run: lead_id last
                   {**before, "lead_id": None, **after},  # serve: api, idempotency_key after it
                   {**before, "z": {"lead_id": None}},  # a nested lead_id only
                   {**before, "z": [nested_last, {"lead_id": None}]}):
        assert record_json(record, lead_id) == jsontext.dumps({**record, "lead_id": lead_id})


def test_each_record_is_dumped_once_wherever_its_lead_id_sits(monkeypatch):
    calls = []

    def counting_dumps(obj, *args, **kwargs):
        calls.append(obj)
        return orjson.dumps(obj, *args, **kwargs)

    monkeypatch.setattr(jsontext, "orjson", SimpleNamespace(dumps=counting_dumps,
                                                            JSONEncodeError=orjson.JSONEncodeError))
    run_record = {"workflow": "w", "lead": {"lead_id": None}, "lead_id": None}
    serve_record = {"workflow": "w", "lead_id": None, "api": {"check_dup": 0}, "idempotency_key": "k"}
    for record in (run_record, serve_record, {"lead_id": None}):
        for lead_id in (None, "17"):
            calls.clear()
            assert json.loads(record_json(record, lead_id)) == {**record, "lead_id": lead_id}
            assert len(calls) == (2 if len(record) == 1 else 1), (record, lead_id)


def commit(row: int, phone: str, *, created: bool) -> Commit:
    record = {"workflow": "w", "source": "f.csv", "source_row": row, "decided_at": "2026-11-27T20:00:00.000+00:00",
              "lead": {"phone_number": phone[2:], "note": 'a "quoted" ,"lead_id":null} text'},
              "phone_e164": phone, "action": "created" if created else "duplicate", "lead_id": None}
    lead = NewLead(phone, phone[2:], "1", "1000", "NEW", None, None, None, {"phone_number": phone[2:]}) \
        if created else None
    return Commit(record, lead)


def test_the_writer_hands_on_the_text_the_store_holds(tmp_path):
    import asyncio

    store = SqliteStore(tmp_path / "s.db")
    writer = StoreWriter(store)

    async def go():
        return await asyncio.gather(*(writer.store_record(commit(i, f"+1555010{i:04d}", created=i % 2 == 0))
                                      for i in range(20)))

    stored = asyncio.run(go())
    writer.close()
    held = dict(sqlite3.connect(tmp_path / "s.db").execute("SELECT row, record FROM decisions").fetchall())
    store.close()
    for i, record in enumerate(stored):
        assert isinstance(record, StoredRecord)
        assert record.json == held[i]  # the very text in the decisions row
        assert json.loads(record.json) == record
        assert record["lead_id"] == (json.loads(held[i])["lead_id"]) and (record["lead_id"] is None) == (i % 2 == 1)


def test_run_out_lines_are_the_stored_records_serialised_once(tmp_path, crm_sim, hubspot_env, monkeypatch):
    """Each --out line is the decisions row's text, byte for byte, and each
    record is dumped once on its way to both."""
    dumped = []

    def counting_dumps(obj, *args, **kwargs):
        if isinstance(obj, dict) and "decided_at" in obj:  # a decision record
            dumped.append(obj.get("source_row"))
        return orjson.dumps(obj, *args, **kwargs)

    # jsontext's view of orjson, counting
    monkeypatch.setattr(jsontext, "orjson", SimpleNamespace(dumps=counting_dumps,
                                                            JSONEncodeError=orjson.JSONEncodeError))
    wf = write_workflow(tmp_path, [{"key": "total", "match": "gt", "value": 0, "create_lead": False,
                                    "add_to_dnc": True, "success": False}])
    leads = tmp_path / "leads.csv"
    phones = ["5550100101", "5550100002", "5550100003", "5550100181", "5550100182"]
    leads.write_text("phone_number,first_name\n" + "".join(f"{p},Ann \"A\" ü\n" for p in phones) + "nope,B\n")
    db, out = tmp_path / "d.db", tmp_path / "out.jsonl"
    code = main(["run", str(wf), "--leads", str(leads), "--db", str(db), "--out", str(out),
                 "--crm-url", crm_sim.url, "--no-progress"])
    assert code == 0
    held = [text for (text,) in sqlite3.connect(db).execute("SELECT record FROM decisions ORDER BY row")]
    lines = sorted(out.read_text(encoding="utf-8").splitlines(), key=lambda line: json.loads(line)["source_row"])
    assert lines == held and len(held) == 6
    assert {json.loads(line)["action"] for line in lines} >= {"created", "duplicate", "rejected"}
    assert sorted(dumped) == list(range(2, 8))  # once per record: for the store, and that text to --out


def test_a_store_that_wraps_apply_sees_every_batch(tmp_path):
    """A plugin's store that overrides SQLite's ``apply`` (and not
    ``apply_stored``) is written through its ``apply``; the text is then not
    known, and ``run --out`` dumps the record itself."""
    seen = []

    class Audited(SqliteStore):
        def apply(self, commits):
            seen.append(len(commits))
            return super().apply(commits)

    class AuditedBoth(Audited):
        def apply_stored(self, commits):
            seen.append(-len(commits))
            return super().apply_stored(commits)

    class Duck:
        def apply(self, commits):
            return ["7"] * len(commits)

    for cls in (Audited, AuditedBoth, SqliteStore):
        store = cls(tmp_path / f"{cls.__name__}.db")
        [one] = applier(store)([commit(2, "+15550100190", created=True)])
        store.close()
        assert one.lead_id == "1"
        assert (one.record_json is None) == (cls is Audited)
    assert seen == [1, -1]  # Audited: its apply; AuditedBoth: its apply_stored
    assert applier(Duck())([commit(2, "+15550100190", created=True)]) == [("7", None)]
