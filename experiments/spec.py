"""What a paper table or figure is, as data: rows of config overrides beside the paper's numbers.

A spec module (experiments/table3.py, ...) defines one `SPEC`. Adding an ablation row is one line:

    row("+ SME-Adapter", "model.sme_window=5", top1=59.4)

The row's overrides apply on top of the preset and the spec's `base`; the keyword numbers are the
paper's values for the spec's columns, as printed. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tdsclip.config import ConfigError, RunConfig, apply_overrides, flatten, parse_override
from tdsclip.presets import OWNS, resolve

FLOPS_CACHE = Path(__file__).with_name("flops.json")
"""FLOPs and parameters per model config (python -m experiments.flops), read by plans and reports."""

Kind = Literal["runs", "measure", "static", "presets", "maps"]
"""runs: each row is a training run; measure: each row is a model measured (no training);
static: a reference table with nothing to run; presets: rendered from the presets themselves;
maps: activation maps computed from other specs' trained rows."""

Chart = Literal["none", "ablation", "memory", "data_efficiency", "maps"]
"""The figure a report draws for the table (reports/build.py): none; ablation: our top-1 per setting
beside the paper's; memory: ratios to the first row; data_efficiency: Fig. 6's lines; maps: Fig. 5."""
CHARTS: tuple[str, ...] = ("none", "ablation", "memory", "data_efficiency", "maps")
ABLATION_TOLERANCE = 0.5
"""Top-1/top-5 points within which a single-knob ablation's cell counts as reproduced."""

SINGLE_VIEW = "single-view validation (best epoch, 1 centre clip x 1 centre crop)"
MULTI_VIEW = "multi-view test protocol on the validation split (crops x clips, softmax averaged)"


@dataclass(frozen=True)
class Column:
    """A column of the table: the key of a row's paper value, its header, and the run-record
    metric it compares with ('' for columns only the paper has)."""

    key: str
    header: str
    metric: str = ""


@dataclass(frozen=True)
class Row:
    name: str
    overrides: tuple[str, ...]
    paper: Mapping[str, float | str | None]
    note: str = ""


@dataclass(frozen=True)
class Reference:
    """Another method's row, printed from the paper and never run."""

    name: str
    values: Mapping[str, float | str | None]
    group: str = ""


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    kind: Kind
    columns: tuple[Column, ...]
    rows: tuple[Row, ...] = ()
    base: tuple[str, ...] = ()
    """Overrides every row shares (on top of the preset)."""
    protocol: str = SINGLE_VIEW
    references: tuple[Reference, ...] = ()
    notes: tuple[str, ...] = ()
    source: str = ""
    """Where the paper's numbers come from (table, section), shown under the table."""
    extra: Mapping[str, object] = field(default_factory=dict)
    """Kind-specific settings (e.g. the rows a figure draws from)."""
    chart: Chart = "none"
    """The figure a report draws for the table (see Chart)."""
    tolerance: float = ABLATION_TOLERANCE
    """How far ours may be from the paper's value in a compared cell and still count as reproduced,
    in the compared columns' own unit (points of top-1/top-5, or a ratio)."""

    def __post_init__(self) -> None:
        if self.chart not in CHARTS:
            raise SpecError(f"{self.name}: chart {self.chart!r}; expected one of {', '.join(CHARTS)}")
        if not self.tolerance >= 0:
            raise SpecError(f"{self.name}: tolerance {self.tolerance!r}; expected a number >= 0")

    def row(self, name: str) -> Row:
        for candidate in self.rows:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


def row(name: str, overrides: str = "", note: str = "", **paper: float | str | None) -> Row:
    """One table row: a name, space-separated `key=value` overrides, and the paper's values."""
    return Row(name, tuple(overrides.split()), paper, note)


def reference(name: str, group: str = "", **values: float | str | None) -> Reference:
    return Reference(name, values, group)


NAMES: tuple[str, ...] = (
    "table1",
    "table2",
    "table3",
    "table4",
    "table5",
    "table6",
    "table7",
    "table8",
    "table9",
    "table10",
    "table11",
    "table12",
    "table13",
    "fig5",
    "fig6",
)


class SpecError(ValueError):
    """An unknown table, row or key; the message is one line listing the valid names."""


def load(name: str) -> Spec:
    """The spec called `name` (table1 ... table13, fig5, fig6)."""
    if name not in NAMES:
        close = difflib.get_close_matches(name, NAMES, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? (python -m experiments.run lists them)" if close else ""
        raise SpecError(f"unknown table {name!r}; {hint or 'expected one of ' + ', '.join(NAMES)}")
    return importlib.import_module(f"experiments.{name}").SPEC


def select_rows(spec: Spec, names: str | None) -> tuple[Row, ...]:
    """The rows named in a comma-separated list (all rows for None)."""
    if not names:
        return spec.rows
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    valid = [r.name for r in spec.rows]
    unknown = [n for n in wanted if n not in valid]
    if unknown:
        raise SpecError(f"{spec.name} has no row {unknown[0]!r}; expected one of: {', '.join(valid) or '(no rows)'}")
    return tuple(spec.row(n) for n in wanted)


# ----------------------------------------------------------------------------- a row's config


def spec_overrides(spec: Spec, row: Row, preset: str) -> tuple[list[str], tuple[str, ...]]:
    """The row's overrides (spec base first) minus those the preset owns, and the dropped ones."""
    owned = set(OWNS[preset])
    kept, dropped = [], []
    for text in (*spec.base, *row.overrides):
        (dropped if parse_override(text)[0] in owned else kept).append(text)
    return kept, tuple(dropped)


def row_config(
    spec: Spec, row: Row, preset: str, overrides: Sequence[str] = (), seed_offset: int = 0
) -> tuple[RunConfig, tuple[str, ...]]:
    kept, dropped = spec_overrides(spec, row, preset)
    try:
        cfg = resolve(preset, [*kept, *overrides])
    except ConfigError as error:
        raise ConfigError(f"{spec.name} row {row.name!r}: {error}") from None
    if seed_offset:
        cfg = apply_overrides(cfg, {"train.seed": cfg.train.seed + seed_offset})
    return cfg, dropped


def replaced_note(preset: str, runs: Iterable[tuple[Sequence[str], RunConfig]]) -> str:
    """What the runs use where the preset overrode the spec, given each run's dropped spec overrides
    (`spec_overrides`) and its config: 'preset smoke runs data.dataset=synthetic, ... in place of the
    spec's data.dataset=ssv1, ...' ('' when the preset overrode nothing). The plan and the report say it."""
    asked: dict[str, list[str]] = {}
    used: dict[str, list[str]] = {}
    for dropped, cfg in runs:
        values = flatten(cfg)
        for text in dropped:
            key, _, value = text.partition("=")
            asked.setdefault(key, []).append(value)
            used.setdefault(key, []).append(str(values[key]))

    def listed(values: dict[str, list[str]]) -> str:
        return ", ".join(f"{key}={'/'.join(dict.fromkeys(values[key]))}" for key in sorted(values))

    return f"preset {preset} runs {listed(used)} in place of the spec's {listed(asked)}" if asked else ""
