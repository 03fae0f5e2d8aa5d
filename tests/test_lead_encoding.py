"""`run --encoding`: a lead file in another text encoding than UTF-8 (a
spreadsheet's CSV export is often cp1252) is read as its author wrote it."""

from __future__ import annotations

import json

import pytest

from conftest import write_workflow
from dupcheck_plugin.cli.main import main

NAMES = ["José", "Zoë", "Françoise", "Ann"]
CSV = "phone_number,first_name\n" + "".join(f"55501001{i:02d},{name}\n" for i, name in enumerate(NAMES))


@pytest.fixture
def run(tmp_path, crm_sim, hubspot_env, capsys):
    wf = write_workflow(tmp_path, [])

    def go(data: bytes, *extra: str) -> tuple[int, list[dict], str]:
        leads, out = tmp_path / "leads.csv", tmp_path / "out.jsonl"
        leads.write_bytes(data)
        for path in tmp_path.glob("d.db*"):
            path.unlink()
        code = main(["run", str(wf), "--leads", str(leads), "--db", str(tmp_path / "d.db"), "--out", str(out),
                     "--crm-url", crm_sim.url, "--no-progress", *extra])
        err = capsys.readouterr().err
        records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if code == 0 else []
        return code, sorted(records, key=lambda r: r["source_row"]), err
    return go


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-16"])
def test_a_file_in_its_own_encoding_is_read_as_written(run, encoding):
    code, records, err = run(CSV.encode(encoding), "--encoding", encoding)
    assert code == 0, err
    assert [(r["action"], r["lead"]["first_name"]) for r in records] == [("created", name) for name in NAMES]


def test_without_it_a_cp1252_file_rejects_the_rows_it_cannot_read_and_says_why(run):
    code, records, err = run(CSV.encode("cp1252"))
    assert code == 0, err
    assert [r["action"] for r in records] == ["rejected", "rejected", "rejected", "created"]
    assert "not valid Unicode" in records[0]["detail"]
    assert "3 row(s) rejected: not valid utf-8" in err and "--encoding cp1252" in err  # the summary's hint


def test_no_encoding_hint_when_every_row_reads(run):
    code, records, err = run(CSV.encode("cp1252"), "--encoding", "cp1252")
    assert code == 0 and "--encoding" not in err


def test_utf8_with_a_byte_order_mark_is_read_by_default(run):
    code, records, err = run(b"\xef\xbb\xbf" + CSV.encode("utf-8"))
    assert code == 0, err
    assert [r["lead"]["first_name"] for r in records] == NAMES  # the BOM is not part of the first column


@pytest.mark.parametrize("name, says", [("nope", "unknown encoding 'nope'"), ("base64", "not a text encoding"),
                                        ("idna", "cannot read a lead file")])
def test_an_encoding_that_cannot_read_text_is_a_usage_error(run, name, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        run(CSV.encode(), "--encoding", name)
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


def test_the_format_of_stdin_is_told_in_its_own_encoding(tmp_path, crm_sim, hubspot_env):
    """JSON Lines on stdin in UTF-16: its first "{" is two bytes, which read
    as UTF-8 made the lines look like CSV."""
    import subprocess
    import sys

    wf = write_workflow(tmp_path, [])
    lines = "".join(json.dumps({"phone_number": f"55501001{i:02d}", "first_name": name}) + "\n"
                    for i, name in enumerate(NAMES))
    proc = subprocess.run([sys.executable, "-m", "dupcheck_plugin.cli.main", "run", str(wf), "--leads", "-",
                           "--encoding", "utf-16", "--db", str(tmp_path / "s.db"), "--crm-url", crm_sim.url,
                           "--no-progress"], input=lines.encode("utf-16"), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    records = sorted((json.loads(line) for line in proc.stdout.decode().splitlines()), key=lambda r: r["source_row"])
    assert [(r["action"], r["lead"]["first_name"]) for r in records] == [("created", name) for name in NAMES]


def test_a_utf16_file_with_a_bad_code_unit_rejects_that_row_and_decides_the_others(run):
    """A lone surrogate (00 D8) in a UTF-16 file: Python's surrogateescape takes bytes from 0x80
    only, so the read raised (a traceback at the first row, or 'run stopped' at every resume)."""
    data = ("phone_number,first_name\r\n5550100101,Ann\r\n".encode("utf-16") + "5550100102,B".encode("utf-16-le")
            + b"\x00\xd8" + "\r\n5550100103,Cy\r\n".encode("utf-16-le"))
    code, records, err = run(data)
    assert code == 0 and "Traceback" not in err, err
    assert [(r["source_row"], r["action"]) for r in records] == [(2, "created"), (3, "rejected"), (4, "created")]
    assert "not valid Unicode" in records[1]["detail"]
    # the byte-order mark chose UTF-16: no advice to try another --encoding
    assert "1 row(s) rejected: not valid utf-16, the encoding the file's byte-order mark names" in err
    assert "--encoding" not in err
