"""Interleaved timing: several tasks timed in turn, so a slow spell of a shared machine hits them alike.

    times = interleaved({"a": run_a, "b": run_b}, repeats=5)
    ratio = paired_median(times.cpu["b"], times.cpu["a"])     # median over rounds of b / a

Each call is timed on two clocks: wall time, and the process's CPU time (all its threads). On a
machine shared with other processes, a preempted process loses wall time but not CPU time, so
with one thread CPU-time ratios stay steady where wall-time ratios swing; with several threads
CPU time also counts threads spinning while they wait for each other.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Timings:
    """Seconds per task and round, on each clock."""

    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def clock(self, name: str) -> dict[str, list[float]]:
        return {"wall": self.wall, "cpu": self.cpu}[name]


def interleaved(
    tasks: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, sync: Callable[[], None] = lambda: None
) -> Timings:
    """Seconds of each task in each of `repeats` rounds (after `warmup` untimed rounds). Each
    round runs every task once, starting one task later than the round before; `sync` runs
    before and after each timed call (e.g. torch.cuda.synchronize)."""
    names = list(tasks)
    times = Timings({name: [] for name in names}, {name: [] for name in names})
    for round_ in range(-warmup, repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            tasks[name]()
            sync()
            if round_ >= 0:
                times.wall[name].append(time.perf_counter() - wall)
                times.cpu[name].append(time.process_time() - cpu)
    return times


def paired_median(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of numerator / denominator, each pair taken in the same round."""
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))
