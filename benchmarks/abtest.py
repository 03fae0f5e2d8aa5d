"""A against B, fairly: whole processes, alternated A B A B, medians and spread.

Each measurement is one child process run to completion; its wall time and
its own CPU (user + system, from ``wait4``) are taken, with the 1-minute load
average beside it, so a figure can be read against what else the machine was
doing. Repetitions alternate A and B so drift in the machine's load falls on
both sides.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence


@dataclass(frozen=True)
class Sample:
    wall_s: float
    cpu_s: float
    load: float
    # the child's own peak RSS (VmHWM) when sampled (run_process(peak_rss=True)), else 0. Not
    # wait4's ru_maxrss: Linux carries the parent's RSS at the spawn into it (a `python -c pass`
    # spawned by a 200 MB parent reports 213 MB), so a benchmark harness that has grown (make
    # bench's, after the serve runs) showed as the child's peak: the "95 MB at 100,000 rows"
    max_rss_kb: int = 0


@dataclass
class Series:
    name: str
    units: int  # leads or requests per run
    samples: list[Sample] = field(default_factory=list)
    one_unit: list[Sample] = field(default_factory=list)  # runs of one lead: start-up and exit, rep by rep

    def rates(self) -> list[float]:
        return [self.units / s.wall_s for s in self.samples]

    def cpu_per_unit_us(self) -> list[float]:
        return [s.cpu_s / self.units * 1e6 for s in self.samples]

    def steady_cpu_per_unit_us(self) -> list[float]:
        """CPU per unit with start-up and exit taken off: (a run's CPU - the same rep's
        one-unit run's) / (units - 1), the marginal cost of a unit."""
        return [(s.cpu_s - one.cpu_s) / (self.units - 1) * 1e6 for s, one in zip(self.samples, self.one_unit)]

    @property
    def steady_cpu_us(self) -> float:
        return statistics.median(self.steady_cpu_per_unit_us())

    @property
    def rate(self) -> float:
        return statistics.median(self.rates())

    @property
    def cpu_us(self) -> float:
        return statistics.median(self.cpu_per_unit_us())

    @property
    def load(self) -> float:
        return statistics.median(s.load for s in self.samples)


def spread(values: Sequence[float]) -> str:
    """``median [min-max]``."""
    return f"{statistics.median(values):,.0f} [{min(values):,.0f}-{max(values):,.0f}]"


def run_process(cmd: Sequence[str], env: dict | None = None, check: Callable[[int, str], None] | None = None,
                peak_rss: bool = False) -> Sample:
    """Run one child to completion; its wall time and its own CPU time, and with
    ``peak_rss`` its own peak RSS (see :class:`Sample`)."""
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    hwm_kb = 0
    if peak_rss:  # VmHWM only rises: its last reading is the peak, but for the last 20 ms
        while True:
            hwm_kb = max(hwm_kb, _vm_hwm_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.02)
    else:
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}: {stderr[-2000:]}")
    if check is not None:
        check(proc.returncode, stderr)
    return Sample(wall, usage.ru_utime + usage.ru_stime, load, hwm_kb)


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0  # exited (a zombie has no memory), or not Linux


def alternate(a: tuple[Series, Callable[[], Sample]], b: tuple[Series, Callable[[], Sample]],
              reps: int = 3) -> None:
    for _ in range(reps):
        for series, measure in (a, b):
            series.samples.append(measure())
