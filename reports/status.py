"""The verdict on each cell and row: reproduced, off, not comparable, ..., and the tolerances.

A compared cell is judged on the difference as printed (ours rounded to the cell's decimals, minus
the paper's value), so a cell never reads "+0.5" and "off" under a 0.5 tolerance. Each spec carries
its own tolerance (experiments/spec.py `Spec.tolerance`). Smoke runs are
checks of the machinery on synthetic data and a tiny ViT: "not comparable", never "off".
"""

from __future__ import annotations

from collections.abc import Iterable

REPRODUCED, OFF, NOT_COMPARABLE, NO_PAPER = "reproduced", "off", "not comparable", "no paper value"
RUNNING, STOPPED, FAILED, NOT_RUN = "running", "stopped", "failed", "not run"
NOT_VALIDATED, NOT_MEASURED = "not validated", "not measured"
"""A finished run without the cell's metric: never validated (a val_ metric), or not measured (the others)."""
ROW_STATUSES = (
    REPRODUCED,
    OFF,
    NOT_COMPARABLE,
    NO_PAPER,
    NOT_VALIDATED,
    NOT_MEASURED,
    RUNNING,
    STOPPED,
    FAILED,
    NOT_RUN,
)
"""Summary order: what a reader looks for first."""


DECIMALS = {"memory": 3, "memory_ratio": 3, "box_mass": 3, "gflops_over_first_row": 1}
"""Decimals per metric (accuracies: 1, as the paper prints them)."""


def decimals(metric: str) -> int:
    return DECIMALS.get(metric.removeprefix("measured:"), 1)


def incomparable(preset: str) -> str:
    """Why results of `preset` cannot be judged against the paper ('' when they can)."""
    if preset == "smoke":
        return "smoke runs (synthetic data, tiny ViT) check the machinery: not comparable with the paper's numbers"
    return ""


def missing(metric: str) -> str:
    """Why a finished run has no value for `metric`: it was never validated, or never measured."""
    return NOT_VALIDATED if metric.removeprefix("measured:").startswith("val_") else NOT_MEASURED


def verdict(diff: float, tol: float) -> str:
    return REPRODUCED if abs(diff) <= tol + 1e-9 else OFF


def row_status(state: str, cells: Iterable[str]) -> str:
    """A row's status from its run state (not run, running, failed win) and its compared cells:
    off if any cell is off, reproduced if any cell is (and none off), then not comparable, then
    not validated / not measured (a finished run without the metric), else no paper value."""
    if state in (NOT_RUN, RUNNING, STOPPED, FAILED):
        return state
    found = set(cells)
    for status in (OFF, REPRODUCED, NOT_COMPARABLE, NOT_VALIDATED, NOT_MEASURED):
        if status in found:
            return status
    return NO_PAPER


def counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many rows have each status, in summary order (zeros kept)."""
    found = list(statuses)
    return {status: found.count(status) for status in ROW_STATUSES}


def number(value: float | None, places: int, sign: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.{places}f}" if sign else f"{value:.{places}f}"
