"""Interleaved timing: several tasks timed in turn, so a slow spell of a shared machine hits them alike.

    times = interleaved({"a": run_a, "b": run_b}, repeats=5)
    ratio = paired_median(times["b"], times["a"])       # median over repeats of b / a
"""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved(tasks: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                sync: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Seconds of each task in each of `repeats` rounds (after `warmup` untimed rounds). Each
    round runs every task once, starting one task later than the round before; `sync` runs
    before and after each timed call (e.g. torch.cuda.synchronize)."""
    names = list(tasks)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(-warmup, repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            start = time.perf_counter()
            tasks[name]()
            sync()
            if round_ >= 0:
                times[name].append(time.perf_counter() - start)
    return times


def paired_median(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of numerator / denominator, each pair taken in the same round."""
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))
