"""Plain-text views of a plan and of a table's results, for the terminal (the report builder writes
the Markdown, LaTeX and HTML tables)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from experiments.cost import A100_SUSTAINED_TFLOPS, CPU_SUSTAINED_TFLOPS
from experiments.plan import Planned
from experiments.spec import Column, Spec

if TYPE_CHECKING:
    from experiments.local import Outcome


def grid(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns, a rule under the header."""
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _hours(hours: float) -> str:
    return f"{hours:,.1f}" if hours >= 10 else f"{hours:.3g}"


def format_plan(spec: Spec, preset: str, runs: Sequence[Planned], tflops: float | None) -> str:
    gpus = runs[0].gpus if runs else 0
    unit = "GPU-h" if gpus else "CPU-h"
    rows, total, unknown = [], 0.0, 0
    for p in runs:
        if p.shared_with:
            cost = f"shared with {p.shared_with!r}"
        elif p.cost:
            cost, total = _hours(p.cost.hours), total + p.cost.hours
        else:
            cost, unknown = "?", unknown + 1
        rid = p.run_id + (" (provisional)" if p.provisional else "")
        rows.append((p.row.name, p.seed, rid, p.status, p.gpus or "cpu", cost))
    pending = sum(p.cost.hours for p in runs if p.cost and not p.shared_with and p.status != "finished")
    throughput = tflops or (A100_SUSTAINED_TFLOPS if gpus else CPU_SUSTAINED_TFLOPS)
    lines = [
        f"{spec.title} -- preset {preset}, protocol: {spec.protocol}",
        "",
        grid(("row", "seed", "run id", "status", "GPUs", unit), rows),
        "",
        f"total {_hours(total)} {unit} ({_hours(pending)} still to run)"
        + (f"; {unknown} rows without an estimate" if unknown else ""),
        f"assumptions: training = frozen forward + 3 x trainable forward per clip x clips x epochs, plus single-view "
        f"validation each epoch and the {runs[0].cfg.data.test_crops}x{runs[0].cfg.data.test_clips} views at the end; "
        f"2 FLOPs per multiply-add; {throughput:g} TFLOP/s sustained per {'GPU (A100, --a100-tflops)' if gpus else 'CPU run'}",
    ]
    if gpus:
        lines.append(f"each run uses {gpus} GPUs: wall time ~ GPU-h / {gpus}")
    notes = sorted({p.provisional for p in runs if p.provisional} | {p.cost_note for p in runs if p.cost_note})
    replaced = sorted({o for p in runs for o in p.replaced})
    if replaced:
        notes.append(f"preset {preset} decides {', '.join(replaced)} instead of the spec")
    notes += [f"{p.row.name}: {p.row.note}" for p in runs if p.row.note and p.seed == runs[0].seed]
    lines += [f"note: {n}" for n in dict.fromkeys(notes)]
    return "\n".join(lines)


def format_static(spec: Spec) -> str:
    """Tables with nothing to run: references (Table X) or the presets (Table XIII)."""
    if spec.kind == "presets":
        from experiments.presets_table import presets_table

        header, rows = presets_table(spec)
        return f"{spec.title}\n\n{grid(header, rows)}\n\nsource: {spec.source}"
    header = ["method"] + [c.header for c in spec.columns]
    rows = [[r.name] + [_paper(r.values.get(c.key)) for c in spec.columns] for r in spec.references]
    return f"{spec.title}\n\n{grid(header, rows)}\n\nsource: {spec.source}"


def _raw(outcome: Outcome, metric: str) -> object:
    """The row's value for a column's metric: a run metric, or a measured value ('measured:...')."""
    key = metric.removeprefix("measured:")
    if key == "memory" and "memory_bytes" in outcome.result:
        return outcome.result["memory_bytes"] / 2**30
    return outcome.result.get("metrics", {}).get(key, outcome.result.get(key))


def missing(metric: str) -> str:
    """Why a finished run has no value for `metric` (the report's words: reports/status.py)."""
    return "not validated" if metric.removeprefix("measured:").startswith("val_") else "not measured"


def _value(outcome: Outcome, metric: str) -> object:
    if outcome.error:
        return "failed"
    if outcome.stopped:
        return "stopped"
    value = _raw(outcome, metric)
    if value is None:
        return missing(metric)
    return f"{value:.4g}" if isinstance(value, float) else value


def _paper(value: object) -> object:
    return "-" if value is None else value


def seed_spread(columns: Sequence[Column], outcomes: Sequence[Outcome]) -> list[str]:
    """'row: metric mean +- std over N seeds' for rows that ran with several seeds."""
    lines = []
    for name in dict.fromkeys(o.planned.row.name for o in outcomes):
        runs = [o for o in outcomes if o.planned.row.name == name and o.result and not o.error]
        if len({o.planned.seed for o in runs}) < 2:
            continue
        for column in columns:
            numbers = [float(v) for v in (_raw(o, column.metric) for o in runs) if isinstance(v, (int, float))]
            if len(numbers) >= 2:
                lines.append(
                    f"{name}: {column.header} {statistics.mean(numbers):.4g} +- {statistics.stdev(numbers):.2g} "
                    f"over {len(numbers)} seeds"
                )
    return [""] + lines if lines else []


def format_summary(spec: Spec, preset: str, outcomes: Sequence[Outcome]) -> str:
    compared = [c for c in spec.columns if c.metric]
    header = ["row", "seed", "run id"] + [f"{c.header} ours | paper" for c in compared]
    rows = []
    for o in outcomes:
        cells = [f"{_value(o, c.metric)} | {_paper(o.planned.row.paper.get(c.key))}" for c in compared]
        rows.append([o.planned.row.name, o.planned.seed, o.run_id, *cells])
    lines = [f"{spec.title} -- preset {preset}", "", grid(header, rows)]
    lines += seed_spread(compared, outcomes)
    if preset == "smoke":
        lines.append("\nsmoke runs are synthetic-data checks of the machinery: not comparable with the paper's numbers")
    lines += [f"{o.planned.row.name}: {o.error}" for o in outcomes if o.error]
    paths = sorted({str(o.path) for o in outcomes if o.path})
    lines += ["", "results:", *paths]
    return "\n".join(lines)
