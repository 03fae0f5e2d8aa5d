"""The Decisions page's evidence (pure): the row as the file in force then wrote it, the body for reading."""

from __future__ import annotations

from dupcheck_plugin.server.admin.evidence import response_body, row_in_force, version_in_force

FILE = """name = "wf"
[[nodes]]
id = "check"
type = "api_duplicate_check"
config = {{ connect = "crm", rules = [ {{ name = "{name}", key = "total", match = "gt", value = 0, create_lead = false, add_to_dnc = false, success = false }} ] }}
"""
# the change log, newest first: the file as found, then two Applies
CHANGES = [{"id": 3, "applied_at": "2026-01-03T00:00:00.000+00:00", "text": FILE.format(name="third")},
           {"id": 2, "applied_at": "2026-01-02T00:00:00.000+00:00", "text": FILE.format(name="second")},
           {"id": 1, "applied_at": "2026-01-02T00:00:00.000+00:00", "text": FILE.format(name="first")}]


def record(at: str, name: str, row: int | None = 0) -> dict:
    return {"rules_row": row, "rules_row_name": name, "decided_at": at}


def test_the_version_in_force_is_the_last_applied_before_the_decision():
    assert version_in_force(CHANGES, "2026-01-02T12:00:00.000+00:00")["id"] == 2
    assert version_in_force(CHANGES, "2026-01-05T00:00:00.000+00:00")["id"] == 3
    assert version_in_force(CHANGES, "2025-12-31T00:00:00.000+00:00")["id"] == 1  # before any change: the file as found
    assert version_in_force([], "2026-01-01") is None


def test_the_row_comes_from_that_version_and_a_name_that_differs_is_said():
    row = row_in_force(record("2026-01-02T12:00:00.000+00:00", "second"), CHANGES, "", "check")
    assert row.text.startswith('{ name = "second", key = "total"') and row.warning is None
    assert "version #2" in row.source
    row = row_in_force(record("2026-01-02T12:00:00.000+00:00", "other"), CHANGES, "", "check")
    assert "the record says 'other'" in row.warning
    row = row_in_force(record("2026-01-01", "now"), [], FILE.format(name="now"), "check")
    assert 'name = "now"' in row.text and "as it is now" in row.source  # no change log: the file as it is
    assert row_in_force(record("2026-01-01", "x", row=None), CHANGES, "", "check") is None  # no row decided
    assert row_in_force(record("2026-01-01", "x", row=5), CHANGES, "", "check") is None  # not in that version
    assert row_in_force(record("2026-01-01", "x"), [], "not = [toml", "check") is None


def test_a_whole_json_body_is_pretty_printed_and_a_cut_one_shown_as_kept():
    assert response_body({"body": '{"a":[1]}', "truncated": False, "bytes": 9}) == '{\n  "a": [\n    1\n  ]\n}'
    assert response_body({"body": '{"a":[1', "truncated": True, "bytes": 90_000}) == '{"a":[1'
    assert response_body({"body": "<html>", "truncated": False, "bytes": 6}) == "<html>"
    assert response_body(None) is None
