"""Run every benchmark and print its figures (``make bench``).

Each benchmark measures a baseline in the same run and prints a ratio:
these machines are shared and noisy, absolute numbers vary.
"""

from __future__ import annotations

from . import bench_memory, bench_overhead, bench_pipeline, bench_render, bench_transport


def main() -> None:
    for bench in (bench_render, bench_overhead, bench_transport, bench_pipeline, bench_memory):
        bench.main()
        print()


if __name__ == "__main__":
    main()
