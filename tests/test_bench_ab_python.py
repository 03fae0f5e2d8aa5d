"""ab_python: two Pythons on this tree, alternated; its refusal of what it cannot run."""

from __future__ import annotations

import sys

from benchmarks.ab_python import main


def test_what_is_not_two_pythons_and_a_count_is_refused_with_the_usage(tmp_path, capsys):
    assert main([]) == 2
    assert main([sys.executable, sys.executable, "many"]) == 2
    assert main([sys.executable, str(tmp_path / "no-python")]) == 2
    err = capsys.readouterr().err
    assert "PYTHON_A PYTHON_B [REPS]" in err and "cannot import" in err


def test_one_python_against_itself_prints_both_figures_and_their_ratio(capsys):
    assert main([sys.executable, sys.executable, "1"], n=300) == 0  # raises unless the runs batched
    out = capsys.readouterr().out
    assert out.count(f"({sys.executable}, libpython") == 2
    assert out.count("100 leads/request") == 2 and "B/A:" in out and "x a bare request" in out
