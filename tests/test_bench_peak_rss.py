"""The memory benchmark's peak RSS is the child's own, not its parent's carried over."""

from __future__ import annotations

import sys

from benchmarks.abtest import run_process

ALLOCATE_80_MB = "b = bytearray(80 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(0.3)"


def test_a_child_that_grows_reports_its_own_peak():
    sample = run_process([sys.executable, "-c", ALLOCATE_80_MB], peak_rss=True)
    assert 80 * 1024 <= sample.max_rss_kb < 160 * 1024


def test_a_small_child_of_a_large_parent_reports_its_own_small_peak():
    held = bytearray(150 * 1024 * 1024)  # the parent resident at 150 MB more: wait4's ru_maxrss carries it over
    held[::4096] = b"x" * len(held[::4096])
    sample = run_process([sys.executable, "-c", "import time; time.sleep(0.3)"], peak_rss=True)
    assert 0 < sample.max_rss_kb < 60 * 1024
    del held
