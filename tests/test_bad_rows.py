"""A row that cannot be decided is rejected, never fatal (issue 10): `run` goes on."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import write_workflow
from dupcheck_plugin.cli.main import main
from dupcheck_plugin import codes
from dupcheck_plugin.engine.intake import MAX_FIELD_CHARS, MAX_ROW_CHARS, admit

CODE_MALFORMED = codes.MISSING_FIELDS.code
from dupcheck_plugin.engine.sources import LeadFileError, iter_csv, iter_jsonl, open_source

BASE_ROW = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}
# contacts the simulator knows (customer, opportunity, lead) and numbers it does not
PHONES = ["5550100101", "5550100002", "5550100003", "5550100181", "5550100182", "5550100183", "5550100184"]

CSV_BAD = {
    "oversize": lambda: b"5550100190," + b"x" * (MAX_FIELD_CHARS + 10),
    "surrogate": lambda: b"5550100191,a\xed\xa0\x80b",  # UTF-8 of a lone surrogate: not valid UTF-8
    "bad_utf8": lambda: b"5550100192,\xff\xfe",
    "nul": lambda: b"5550100193,a\x00b",
    "open_quote": lambda: b'5550100194,"never closed',
    "stray_quote": lambda: b'5550100195,"closed" then text',
    "long_line": lambda: b"5550100196," + b"y," * (MAX_ROW_CHARS // 2 + 10),
}
JSONL_BAD = {
    "oversize": lambda: json.dumps({"phone_number": "5550100190", "first_name": "x" * (MAX_FIELD_CHARS + 1)}).encode(),
    "surrogate": lambda: b'{"phone_number": "5550100191", "first_name": "a\\ud800b"}',
    "nul": lambda: b'{"phone_number": "5550100193", "first_name": "a\\u0000b"}',
    "array": lambda: b"[1, 2]",
    "repeated_key": lambda: b'{"phone_number": "5550100197", "phone_number": "5550100198"}',
    "string": lambda: b'"a lead"',
    "number": lambda: b"12",
    "null": lambda: b"null",
    "broken": lambda: b'{"phone_number": "5550100197", ',
    "nested": lambda: b'{"phone_number": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "bad_utf8": lambda: b'{"phone_number": "5550100192", "first_name": "\xff"}',
}


def valid_line(fmt: str, phone: str) -> bytes:
    if fmt == "csv":
        return f"{phone},P{phone[-3:]}".encode()
    return json.dumps({"phone_number": phone, "first_name": f"P{phone[-3:]}"}).encode()


def write_leads(path: Path, fmt: str, lines: list[bytes]) -> None:
    header = [b"phone_number,first_name"] if fmt == "csv" else []
    path.write_bytes(b"\n".join(header + lines) + b"\n")


def run(capsys, wf: Path, leads: Path, db: Path, out: Path, sim_url: str, *extra: str) -> tuple[int, list[dict], str]:
    code = main(["run", str(wf), "--leads", str(leads), "--db", str(db), "--out", str(out),
                 "--crm-url", sim_url, "--no-progress", *extra])
    _, err = capsys.readouterr()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return code, records, err


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    return write_workflow(tmp_path_factory.mktemp("wf"), [BASE_ROW])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["csv", "jsonl"]), data=st.data())
def test_bad_rows_are_rejected_and_every_valid_row_is_decided(capsys, crm_sim, hubspot_env, workflow, fmt, data):
    bad_kinds = CSV_BAD if fmt == "csv" else JSONL_BAD
    valid = data.draw(st.lists(st.sampled_from(PHONES), unique=True, max_size=5), label="valid phones")
    bad = data.draw(st.lists(st.sampled_from(sorted(bad_kinds)), min_size=1, max_size=5), label="bad rows")
    rows = data.draw(st.permutations([("valid", p) for p in valid] + [("bad", k) for k in bad]), label="order")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # the decision each valid row gets on its own
        write_leads(tmp / f"ref.{fmt}", fmt, [valid_line(fmt, p) for p in valid])
        code, ref, err = run(capsys, workflow, tmp / f"ref.{fmt}", tmp / "ref.db", tmp / "ref.out", crm_sim.url)
        assert code == 0, err
        expected = {r["lead"]["phone_number"]: (r["action"], r["code"], r["rules_row"]) for r in ref}

        lines = [valid_line(fmt, v) if kind == "valid" else bad_kinds[v]() for kind, v in rows]
        write_leads(tmp / f"mixed.{fmt}", fmt, lines)
        code, records, err = run(capsys, workflow, tmp / f"mixed.{fmt}", tmp / "mixed.db", tmp / "mixed.out",
                                 crm_sim.url)
        assert code == 0, err
        assert "Traceback" not in err and "run stopped" not in err
        first = 2 if fmt == "csv" else 1  # the CSV header is line 1
        by_line = {r["source_row"]: r for r in records}
        assert sorted(by_line) == list(range(first, first + len(rows))), "one record per row"
        for line, (kind, value) in enumerate(rows, first):
            record = by_line[line]
            if kind == "valid":
                assert (record["action"], record["code"], record["rules_row"]) == expected[value]
            else:
                assert (record["action"], record["code"]) == ("rejected", CODE_MALFORMED), (value, record["detail"])
                assert record["text"] == codes.MISSING_FIELDS.text and record["detail"].startswith("Malformed row: ")
                assert len(json.dumps(record["lead"])) < 2000  # a refused value is recorded cut

        # --resume finds nothing left to do and never stops where the first run did not
        code, _, err = run(capsys, workflow, tmp / f"mixed.{fmt}", tmp / "mixed.db", tmp / "again.out",
                           crm_sim.url, "--resume")
        assert code == 0, err
        assert f"resuming: {len(rows)} rows already decided" in err


# --- the pieces, without a CRM ------------------------------------------------------

def items(fmt: str, text: bytes):
    stream = io.TextIOWrapper(io.BytesIO(text), encoding="utf-8-sig", errors="surrogateescape", newline="")
    return list(iter_csv(stream) if fmt == "csv" else iter_jsonl(stream))


def test_an_open_quote_swallows_no_valid_row():
    got = items("csv", b'phone_number,first_name\n5550100101,"open\n5550100102,Bo\n5550100103,"x\n5550100104,Di\n')
    assert [(row, lead, error is None) for row, lead, error in got] == [
        (2, None, False), (3, {"phone_number": "5550100102", "first_name": "Bo"}, True),
        (4, None, False), (5, {"phone_number": "5550100104", "first_name": "Di"}, True)]


def test_blank_csv_rows_are_skipped_and_rows_keep_their_line_numbers():
    got = items("csv", b'\n  ,\t\nphone_number,first_name\n5550100101,A\n\n , \n,\n5550100102, \n')
    assert got == [(4, {"phone_number": "5550100101", "first_name": "A"}, None),
                   (8, {"phone_number": "5550100102", "first_name": " "}, None)]


def test_a_quoted_field_may_still_span_lines():
    got = items("csv", b'phone_number,address\n5550100101,"1 Main St\nSpringfield"\n5550100102,x\n')
    assert got == [(3, {"phone_number": "5550100101", "address": "1 Main St\nSpringfield"}, None),
                   (4, {"phone_number": "5550100102", "address": "x"}, None)]


def test_an_overlong_line_is_skipped_not_held():
    got = items("jsonl", b'{"a": "' + b"x" * (MAX_ROW_CHARS + 5) + b'"}\n{"phone_number": "1"}\n')
    assert got[0][0] == 1 and got[0][1] is None and "longer than" in got[0][2]
    assert got[1] == (2, {"phone_number": "1"}, None)


@pytest.mark.parametrize("lead, reason", [
    ({"phone_number": "5550100101", "notes": "x" * (MAX_FIELD_CHARS + 1)}, "longer than 65536"),
    ({"phone_number": "5550100101", **{f"f{i}": "x" * 60_000 for i in range(20)}}, "lead is larger than"),
    ({"phone_number": "5550100101", "name": "a\ud800"}, "not valid Unicode"),
    ({"phone_number": "5550100101", "name\udcff": "a"}, "not valid Unicode"),
    ({"phone_number": "5550100101", "name": "a\x00b"}, "NUL character"),
])
def test_intake_refuses_what_no_store_or_crm_could_carry(lead, reason):
    intake = admit(lead, {})
    assert intake.refused.code == CODE_MALFORMED and reason in intake.refused.detail
    json.dumps(intake.lead).encode("utf-8")  # the recorded lead can be stored
    assert len(json.dumps(intake.lead)) < 10_000


@pytest.mark.parametrize("list_id", ["1000", "01000", " 1000", "1000 "])
def test_list_ids_are_normalised_like_serve(list_id):
    assert admit({"phone_number": "5550100101", "list_id": list_id}, {}).lead["list_id"] == "1000"


@pytest.mark.parametrize("list_id", ["inf", "web-leads", "1000.0", "1e3", "12345678901234567890", "１０００"])
def test_a_list_id_that_is_not_an_integer_is_refused_as_serve_refuses_it(list_id):
    """Before: kept as written ("inf" from a JSON 1e400), while serve answers 6002 for it."""
    intake = admit({"phone_number": "5550100101", "list_id": list_id}, {})
    assert intake.refused.code == 6002 and "list_id must be an integer" in intake.refused.detail
    assert admit({"phone_number": "5550100101", "list_id": "  "}, {"list_id": "7"}).lead["list_id"] == "7"
    assert admit({"phone_number": "5550100101", "list_id": "-3"}, {}).lead["list_id"] == "-3"  # as serve takes it


def test_a_json_lead_files_huge_list_id_is_a_refused_row_not_inf(capsys, crm_sim, hubspot_env, workflow, tmp_path):
    leads = tmp_path / "leads.jsonl"
    leads.write_text('{"phone_number": "5550100101", "list_id": 1e400}\n{"phone_number": "5550100102", "list_id": 1000}\n')
    code, records, err = run(capsys, workflow, leads, tmp_path / "r.db", tmp_path / "out.jsonl", crm_sim.url)
    assert code == 0, err
    first, second = records
    assert first["action"] == "rejected" and first["code"] == 6002 and "'inf'" in first["detail"]
    assert second["action"] != "rejected" and second["lead"]["list_id"] == "1000"


def test_an_open_quote_on_the_last_line_is_that_line():
    got = items("csv", b'phone_number,first_name\n5550100101,Ann\n5550100194,"never closed\n')
    assert [(row, error is None) for row, _, error in got] == [(2, True), (3, False)]


@pytest.mark.parametrize(("text", "leads"), [
    # a spreadsheet saved with a locale's list separator, quoted or not
    (b"phone_number;first_name\n5550100101;Ann\n", [{"phone_number": "5550100101", "first_name": "Ann"}]),
    (b'\n"phone_number";"first_name"\n"5550100101";"A;n"\n', [{"phone_number": "5550100101", "first_name": "A;n"}]),
    (b"phone_number\tfirst_name\n5550100101\tAnn\n", [{"phone_number": "5550100101", "first_name": "Ann"}]),
    # a comma header stays a comma file, whatever its values hold
    (b"phone_number,first_name\n5550100101,A;n\n", [{"phone_number": "5550100101", "first_name": "A;n"}]),
])
def test_a_header_with_another_separator_and_no_comma_is_read_with_it(text, leads, caplog):
    got = items("csv", text)
    assert [lead for _, lead, error in got if error is None] == leads and len(got) == 1
    assert ("separated: its header has no comma" in caplog.text) == (b"," not in text.splitlines()[-2])


@pytest.mark.parametrize(("header", "says"), [
    ("Phone Number,first_name", "no phone_number column (it has: Phone Number, first_name): every lead needs one. "
                                "A column takes the name of the lead field it holds, in lower case with underscores: "
                                "rename 'Phone Number' to phone_number"),
    ("phone,first_name", "no phone_number column (it has: phone, first_name): every lead needs one"),
    ("phone_number,email,first_name,email", "('email' in columns 2, 4): each row would keep one of its values"),
])
def test_a_header_no_lead_can_be_read_from_is_refused_before_its_first_row(header, says):
    with pytest.raises(LeadFileError) as raised:
        items("csv", f"{header}\n5550100101,a@example.com,Ann,b@example.com\n".encode())
    assert str(raised.value).startswith("line 1: ") and says in str(raised.value)


@pytest.mark.parametrize("data", [
    b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xb1\xc3\xd7,phone_number\n5550100101\n",  # an .xlsx
    "phone_number,Pr\u00e9nom\n5550100101,Zo\u00eb\n".encode("latin-1"),  # a CP-1252 export read as UTF-8
    b"phone_number,first\x00name\n5550100101,Ann\n",
])
def test_a_header_that_is_not_text_is_refused_as_such(tmp_path, data):
    # before: its names were listed as lone surrogates, or read as a column whose name
    # refused every row (each stored as decided, so the fixed file could not run on the store)
    path = tmp_path / "leads.csv"
    path.write_bytes(data)
    stream, _ = open_source(str(path))
    with stream, pytest.raises(LeadFileError) as raised:
        list(iter_csv(stream))
    assert str(raised.value) == (
        "line 1: the header is not UTF-8 text: a lead file is CSV or JSON Lines (a spreadsheet's workbook, .xlsx "
        "or .xls: save it as CSV; a CSV in another encoding: --encoding cp1252, say)")


def test_a_header_in_another_encoding_is_read_with_it_and_unicode_names_are_text(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_bytes("phone_number,Pr\u00e9nom\n5550100101,Zo\u00eb\n".encode("cp1252"))
    stream, _ = open_source(str(path), encoding="cp1252")
    with stream:
        [(_, lead, error)] = list(iter_csv(stream))
    assert error is None and lead["Pr\u00e9nom"] == "Zo\u00eb"
    path.write_bytes("phone_number,Pr\u00e9nom,caf\u00e9\u200b\tnote\n5550100101,Zo\u00eb,x\n".encode())
    stream, _ = open_source(str(path))
    with stream:
        [(_, lead, error)] = list(iter_csv(stream))
    assert error is None and lead["caf\u00e9\u200b\tnote"] == "x"  # printable or not, Unicode is text


def test_a_long_header_without_phone_number_is_listed_in_short():
    header = ",".join(f"column_{i}_" + "x" * 60 for i in range(30))
    with pytest.raises(LeadFileError) as raised:
        items("csv", f"{header}\n1\n".encode())
    message = str(raised.value)
    assert "column_0_" + "x" * 31 + "... (29 more characters)" in message
    assert "column_19_" in message and "column_20_" not in message and " and 10 more): every lead needs one" in message
    assert len(message) < 1500


def test_a_column_a_case_away_from_a_lead_field_is_a_warning(caplog):
    got = items("csv", b"phone_number,First Name,emial,favourite_colour,,\n5550100101,Ann,a@example.com,red,,\n")
    assert got[0][1]["First Name"] == "Ann"  # read as it is named: a custom field
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "line 1: column 'First Name' is a typo or a case away from Convoso's lead field first_name: it is read as "
        "a custom field of its own name, and first_name stays empty (rename it first_name)",
        "line 1: column 'emial' is a typo or a case away from Convoso's lead field email: it is read as a custom "
        "field of its own name, and email stays empty (rename it email)"]


def test_a_json_line_that_gives_a_key_twice_is_refused_and_the_next_is_read():
    # before: json kept the last phone_number and dropped the first unsaid
    got = items("jsonl", b'{"phone_number": "5550100101", "first_name": "A", "phone_number": "5550100102"}\n'
                         b'{"phone_number": "5550100103", "first_name": "B"}\n')
    assert got == [(1, None, "line 1: the key 'phone_number' is given twice: which value is the lead's cannot be "
                             "told"),
                   (2, {"phone_number": "5550100103", "first_name": "B"}, None)]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_a_utf16_file_with_its_byte_order_mark_is_read_as_utf16(tmp_path, codec, caplog):
    # a spreadsheet's "Unicode text" export: UTF-16 with a BOM, tab-separated. Before, read as
    # UTF-8 its header was one column of lone surrogates ("\udcff\udcfep h o n e ...")
    path = tmp_path / "leads.txt"
    path.write_bytes("\ufeffphone_number\tfirst_name\r\n5550100101\tZoë\r\n".encode(codec))
    stream, fmt = open_source(str(path))
    with stream:
        got = list(iter_csv(stream))
    assert fmt == "csv" and got == [(2, {"phone_number": "5550100101", "first_name": "Zoë"}, None)]
    assert "reading the lead file as UTF-16" in caplog.text


def test_utf16_on_stdin_is_read_as_utf16(tmp_path):
    import subprocess
    import sys

    leads = "\ufeffphone_number\tfirst_name\n5550100101\tAnn\n".encode("utf-16-le")
    proc = subprocess.run([sys.executable, "-c", "import sys; from dupcheck_plugin.engine.sources import open_source, "
                           "iter_csv; s, f = open_source('-'); print(list(iter_csv(s)))"],
                          input=leads, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == "[(2, {'phone_number': '5550100101', 'first_name': 'Ann'}, None)]"


def test_the_lead_reader_stops_quietly_when_the_run_stops_before_the_file_ends():
    """The run stops (Ctrl-C, an error) while the reader thread waits to hand rows over to a full
    queue: the thread ends without a word. Before, about 1 stop in 10 printed a
    concurrent.futures.CancelledError traceback from the thread."""
    import asyncio
    import threading

    from dupcheck_plugin.engine.sources import stream_items

    seen: list[BaseException] = []
    hook, threading.excepthook = threading.excepthook, lambda args: seen.append(args.exc_value)
    try:
        async def stop_early() -> None:
            rows = "phone_number\n" + "".join(f"555{i:07d}\n" for i in range(20_000))
            items = stream_items(io.StringIO(rows), "csv")
            async for _ in items:
                break  # one row taken: the reader fills the queue and waits on its next put
            await asyncio.sleep(0.05)
            await items.aclose()

        for _ in range(20):  # the loop closes while the reader waits, as a stopped run's does
            asyncio.run(stop_early())
        for thread in [t for t in threading.enumerate() if t.name == "dupcheck-lead-reader"]:
            thread.join(10)
            assert not thread.is_alive()
    finally:
        threading.excepthook = hook
    assert seen == []
