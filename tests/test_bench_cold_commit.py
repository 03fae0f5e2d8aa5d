"""The cold-commit benchmark stores what it times: one lead and its decision a commit."""

from __future__ import annotations

from benchmarks import cold_commit
from dupcheck_plugin.store.sqlite import SqliteStore


def test_each_timed_commit_is_one_stored_lead_and_its_decision(tmp_path):
    store = SqliteStore(tmp_path / "cold.db")
    commits = [cold_commit._commit(i) for i in range(5)]
    took = cold_commit.timed(store, commits, idle_s=0.001)
    assert len(took) == 5 and all(t > 0 for t in took)
    assert store.counts()["leads"] == 5 and store.counts()["decisions"] == 5
    for commit in commits:  # each lead by its own phone, with its record's lead id
        [lead] = store.find_leads(commit.lead.phone_e164)
        [record] = store.decisions(commit.lead.phone_e164)
        assert record["lead_id"] == lead["id"]
    store.close()


def test_the_commits_have_distinct_phones():
    phones = {cold_commit._commit(i).lead.phone_e164 for i in range(5_000)}
    assert len(phones) == 5_000


def test_main_prints_both_cases_and_their_ratio(capsys):
    cold_commit.main(5)
    out = capsys.readouterr().out
    assert "back to back" in out and "5 ms idle between" in out and "x the time of a commit back to back" in out
