"""Run every benchmark and print its figures (``make bench``).

Every comparison is A against B on the same server, both whole processes,
alternated A B A B with medians and [min-max], the load average beside each:
these machines are shared and noisy, so read the ratios.
"""

from __future__ import annotations

import os

from . import (bench_batched, bench_check, bench_client, bench_crm_limits, bench_instructions, bench_memory, bench_serve,
               bench_temporal)
from .common import interpreter

BENCHMARKS = (bench_client, bench_instructions, bench_batched, bench_serve, bench_check, bench_memory, bench_crm_limits,
              bench_temporal)


def main() -> None:
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; {interpreter()}\n", flush=True)
    bench_check.compile_bytecode()  # every dupcheck process starts from bytecode, as an installed one does
    for bench in BENCHMARKS:
        bench.main()
        print(flush=True)


if __name__ == "__main__":
    main()
