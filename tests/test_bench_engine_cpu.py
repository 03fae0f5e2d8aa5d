"""benchmarks/engine_cpu.py runs the engine's whole path with an instant CRM node."""

from __future__ import annotations

from benchmarks.engine_cpu import one


def test_the_engine_benchmark_decides_every_lead_and_measures_cpu():
    assert one(40) > 0  # one() checks that every lead was decided
