"""ab_serve's report (pure) and its refusal of what is not two source trees."""

from benchmarks.ab_serve import main, report


def run(p50, p99, own_p50=1.0, own_p99=2.0, cpu_us=1000.0):
    return {"p50": p50, "p99": p99, "own_p50": own_p50, "own_p99": own_p99, "cpu_us": cpu_us}


def test_each_tree_is_read_against_the_stub_of_the_same_run():
    lines = report({
        "stub": [run(51.0, 53.0), run(51.4, 52.8), run(60.0, 70.0)],  # medians 51.4 and 53.0
        "A old": [run(53.0, 55.0, 1.5, 3.0, 1400), run(53.5, 55.5, 1.5, 2.0, 1500), run(54.0, 56.0, 1.0, 2.0, 1450)],
        "B new": [run(53.2, 54.8, 1.0), run(53.0, 54.6, 1.0), run(90.0, 99.0, 1.0)],
    })
    assert lines[1].split() == ["stub", "directly", "p50", "51.40", "ms", "p99", "53.00", "ms"]
    assert "adds p50 +2.10 ms, p99 +2.50 ms" in lines[2] and "own p50 <= 1.5 ms, p99 <= 2 ms" in lines[2]
    assert "CPU 1,450 us" in lines[2]
    assert "adds p50 +1.80 ms, p99 +1.80 ms" in lines[3] and "own p50 <= 1 ms" in lines[3]


def test_what_is_not_two_source_trees_is_refused_with_the_usage(tmp_path, capsys):
    (tmp_path / "a" / "dupcheck_plugin").mkdir(parents=True)
    assert main([str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
    assert main([str(tmp_path / "a")]) == 2
    assert "TREE_A TREE_B" in capsys.readouterr().err
