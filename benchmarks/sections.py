"""The registry of `python -m benchmarks.run` sections, and what a section hands back.

A section is a function `run(options) -> Result` registered under a name; `benchmarks.run`
runs the selected ones in registration order, prints each one's report and targets, and writes
every section's keys into one JSON per machine. To add a section (e.g. `suite`: experiments
dry-runs and report timing), write a module with

    @register("suite", "experiments.run NAME --dry-run for every table; reports from 1000 records")
    def suite(options: Options) -> Result:
        ...
        return Result(keys={"dry_run_max_s": ..., "report_1000_runs_s": ...},
                      targets=[Target("dry_run_max_s", value, "<=", 2.0)], report=[...])

and import it in `SECTION_MODULES` below. Keys are flat numbers (the CPU JSON's contract);
`details` holds anything else worth keeping.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

SECTION_MODULES = (
    "benchmarks.step",
    "benchmarks.activation",
    "benchmarks.breakdown",
    "benchmarks.data_section",
    "benchmarks.suite",
    "benchmarks.gpu",
)
"""Modules that register sections, imported in this order (which is the order sections run in)."""


@dataclass(frozen=True)
class Options:
    """What the command line asked for, as every section sees it."""

    quick: bool = False
    """Fewer repeats and smaller sizes, about a minute in all on 2 CPU cores."""
    batch: int = 1
    """Clips per CPU training step (the GPU section has its own, fixed batch)."""
    gpu_batch: int = 8
    """Clips per training step in the GPU section."""
    repeats: int | None = None
    """Timed rounds (passes), overriding each section's own choice (tests use 1)."""
    frames: int | None = None
    """Frames per clip of the CPU step, overriding the section's choice (tests use 1)."""
    videos: int | None = None
    """Videos per type in the data section, overriding its choice (tests use 1)."""

    def pick(self, field: str, quick: int, full: int) -> int:
        """The override of `field` if given, else the quick or full value."""
        given = getattr(self, field)
        return given if given is not None else (quick if self.quick else full)


@dataclass(frozen=True)
class Target:
    """A claim checked by the benchmark and printed as pass/fail (never asserted by tests)."""

    key: str
    value: float
    op: str
    """'<=', '>=' or '=='."""
    limit: float
    claim: str = ""

    @property
    def passed(self) -> bool:
        return {"<=": self.value <= self.limit, ">=": self.value >= self.limit, "==": self.value == self.limit}[self.op]

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "value": self.value,
            "target": f"{self.op} {self.limit:g}",
            "pass": self.passed,
            "claim": self.claim,
        }


@dataclass
class Result:
    """A section's outcome: flat numeric keys, targets, a printable report, and details."""

    keys: dict[str, float] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    report: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Section:
    name: str
    help: str
    run: Callable[[Options], Result]
    needs_gpu: bool = False
    """Runs only with --gpu (and then needs CUDA)."""


SECTIONS: dict[str, Section] = {}


def register(
    name: str, help: str, needs_gpu: bool = False
) -> Callable[[Callable[[Options], Result]], Callable[[Options], Result]]:
    """Decorator: register `run` as the section `name`."""

    def add(run: Callable[[Options], Result]) -> Callable[[Options], Result]:
        if name in SECTIONS:
            raise ValueError(f"benchmark section {name!r} is registered twice")
        SECTIONS[name] = Section(name, help, run, needs_gpu)
        return run

    return add


def load_sections() -> dict[str, Section]:
    """Every registered section, in the order of SECTION_MODULES (whatever order they were imported in)."""
    for module in SECTION_MODULES:
        importlib.import_module(module)
    rank = {module: i for i, module in enumerate(SECTION_MODULES)}
    return dict(sorted(SECTIONS.items(), key=lambda item: rank.get(item[1].run.__module__, len(rank))))
