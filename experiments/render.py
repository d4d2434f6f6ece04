"""Plain-text views of a plan and of a table's results, for the terminal (the report builder writes
the Markdown, LaTeX and HTML tables).

On a terminal (or with $COLUMNS set) tables and notes fit its width: cells wrap inside their
columns, and a table still too wide is folded into several, each repeating the first column. Into
a file or a pipe every row stays one line, for grep."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from experiments.cost import A100_SUSTAINED_TFLOPS, CPU_SUSTAINED_TFLOPS
from experiments.plan import Planned, measured
from experiments.spec import Column, Spec, replaced_note
from tdsclip.locations import Missing, locations_file

if TYPE_CHECKING:
    from experiments.local import Outcome

GAP = "  "
MIN_COLUMN = 12
"""Narrowest a column is wrapped to before the table is folded instead."""


def terminal_width() -> int | None:
    """Columns to fit the output to: the terminal's (or $COLUMNS), None into a file or a pipe."""
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _draw(cells: list[list[str]], widths: list[int]) -> list[str]:
    """Rows of cells wrapped to their column widths (a row may take several lines), a rule under the header."""
    lines = []
    for number, row in enumerate(cells):
        parts = [textwrap.wrap(cell, width, break_on_hyphens=False) or [""] for cell, width in zip(row, widths)]
        for i in range(max(len(p) for p in parts)):
            lines.append(GAP.join((p[i] if i < len(p) else "").ljust(w) for p, w in zip(parts, widths)).rstrip())
        if number == 0:
            lines.append(GAP.join("-" * w for w in widths))
    return lines


def _floors(cells: list[list[str]], natural: list[int], width: int) -> list[int]:
    """The narrowest each column is wrapped to: its longest word (words are not broken where they
    fit), at least MIN_COLUMN, at most its natural width and half the terminal."""
    longest = [max((len(w) for r in cells for w in r[i].split()), default=0) for i in range(len(natural))]
    return [min(n, max(MIN_COLUMN, min(w, width // 2))) for n, w in zip(natural, longest)]


def _shrink(natural: list[int], floors: list[int], room: int) -> list[int]:
    """Column widths summing (with the gaps) to at most `room`: the column with the most to give
    gives way first, none below its floor."""
    widths = list(natural)
    while sum(widths) + len(GAP) * (len(widths) - 1) > room:
        i = max(range(len(widths)), key=lambda j: widths[j] - floors[j])
        if widths[i] <= floors[i]:
            break
        widths[i] -= 1
    return widths


def grid(header: Sequence[str], rows: Sequence[Sequence[object]], width: int | None = -1) -> str:
    """Left-aligned columns, a rule under the header, fitted to `width` columns (the default: the
    terminal's, see terminal_width; None: never wrapped)."""
    width = terminal_width() if width == -1 else width
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    natural = [max(len(r[i]) for r in cells) for i in range(len(header))]
    if width is None or sum(natural) + len(GAP) * (len(natural) - 1) <= width:
        return "\n".join(_draw(cells, natural))
    floors = _floors(cells, natural, width)
    # Fold: the first column, then as many others as fit at their floors, table after table.
    first = min(natural[0], max(floors[0], width // 3))
    folds: list[list[int]] = [[]]
    room = width - first
    for i in range(1, len(natural)):
        need = len(GAP) + floors[i]
        if folds[-1] and need > room:
            folds.append([])
            room = width - first
        folds[-1].append(i)
        room -= need
    tables = []
    for fold in folds:
        widths = _shrink([natural[i] for i in fold], [floors[i] for i in fold], width - first - len(GAP))
        tables.append("\n".join(_draw([[r[i] for i in (0, *fold)] for r in cells], [first, *widths])))
    return "\n\n".join(tables)


def wrap(lines: Sequence[str], width: int | None = -1) -> list[str]:
    """Prose lines fitted to `width` (as in grid), continuation lines indented; words never broken."""
    width = terminal_width() if width == -1 else width
    if width is None:
        return list(lines)
    out = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
        else:
            out += textwrap.wrap(line, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
    return out


def format_hours(hours: float) -> str:
    return f"{hours:,.1f}" if hours >= 10 else f"{hours:.3g}"


def missing_locations(missing: Sequence[Missing]) -> str:
    """Every location a plan still needs, once each, with the variable and the file key to set."""
    unique = sorted(dict.fromkeys(missing), key=lambda m: m.config_key == "model.weights")  # data first
    intro = (
        f"locations not set ({len(unique)}): export the variable or add the key to {locations_file()} "
        "(run ids stay provisional until then; key=value on the command line also works)"
    )
    table = grid(
        ("needs", "environment variable", "locations file key"), [(m.config_key, m.env, m.file_key) for m in unique]
    )
    others = wrap(
        [f"{key}: {text}" for key, text in dict.fromkeys((m.config_key, m.alternative) for m in unique) if text]
    )
    return "\n".join([*wrap([intro]), table, *others])


def _notes(spec: Spec, preset: str, runs: Sequence[Planned]) -> list[str]:
    notes = sorted({p.provisional for p in runs if p.provisional and not p.missing})
    notes += sorted({p.cost_note for p in runs if p.cost_note})
    replaced = replaced_note(preset, [(p.replaced, p.cfg) for p in runs])
    notes += [replaced] if replaced else []
    notes += [f"{p.row.name}: {p.row.note}" for p in runs if p.row.note and p.seed == runs[0].seed]
    return [f"note: {n}" for n in dict.fromkeys(notes)]


def format_plan(spec: Spec, preset: str, runs: Sequence[Planned], tflops: float | None) -> str:
    if spec.kind == "measure":
        return format_measurements(spec, preset, runs)
    gpus = runs[0].gpus if runs else 0
    unit = "GPU-h" if gpus else "CPU-h"
    rows, total, unknown = [], 0.0, 0
    for p in runs:
        if p.shared_with:
            cost = f"shared with {p.shared_with!r}"
        elif p.cost:
            cost, total = format_hours(p.cost.hours), total + p.cost.hours
        else:
            cost, unknown = "?", unknown + 1
        rid = p.run_id + (" (provisional)" if p.provisional else "")
        rows.append((p.row.name, p.seed, rid, p.status, p.gpus or "cpu", cost))
    pending = sum(p.cost.hours for p in runs if p.cost and not p.shared_with and p.status != "finished")
    throughput = tflops or (A100_SUSTAINED_TFLOPS if gpus else CPU_SUSTAINED_TFLOPS)
    lines = [
        *wrap([f"{spec.title} -- preset {preset}, protocol: {spec.protocol}"]),
        "",
        grid(("row", "seed", "run id", "status", "GPUs", unit), rows),
        "",
    ]
    prose = [
        f"total {format_hours(total)} {unit} ({format_hours(pending)} still to run)"
        + (f"; {unknown} rows without an estimate" if unknown else ""),
        f"assumptions: training = frozen forward + 3 x trainable forward per clip x clips x epochs, plus single-view "
        f"validation each epoch and the {runs[0].cfg.data.test_crops}x{runs[0].cfg.data.test_clips} views at the end; "
        f"2 FLOPs per multiply-add; {throughput:g} TFLOP/s sustained per {'GPU (A100, --a100-tflops)' if gpus else 'CPU run'}",
    ]
    if gpus:
        prose.append(f"each run uses {gpus} GPUs: wall time ~ GPU-h / {gpus}")
    lines += wrap(prose + _notes(spec, preset, runs))
    missing = [m for p in runs for m in p.missing]
    if missing:
        lines += ["", missing_locations(missing)]
    return "\n".join(lines)


def format_measurements(spec: Spec, preset: str, runs: Sequence[Planned]) -> str:
    """The plan of a measuring table (Table XII): what each row's model measures, nothing trained."""
    rows = []
    for p, m in zip(runs, measured(runs)):
        params = f"{m['trainable_params'] / 1e6:.2f} M / {m['total_params'] / 1e6:.1f} M" if m else "?"
        flops = f"{m['gflops_per_view']:.4g}" if m else "?"
        paper = [f"{_paper(p.row.paper.get(c.key))}" for c in spec.columns]
        status = "measured" if p.status == "finished" else "not measured"
        rows.append((p.row.name, p.run_id, status, params, flops, *paper))
    header = ("row", "measurement", "status", "params trainable / total", "GFLOPs/view")
    header += tuple(f"paper: {c.header}" for c in spec.columns)
    lines = [*wrap([f"{spec.title} -- preset {preset}"]), "", grid(header, rows), ""]
    prose = [
        "measures each row's model, no training and no data: parameters and FLOPs per view (meta device, "
        "random weights; experiments/flops.json holds them), and " + spec.protocol,
        f"runs here (--executor local); python -m experiments.run {spec.name} measures the rows and writes "
        "runs/measurements/<measurement>.json",
    ]
    lines += wrap(prose + _notes(spec, preset, runs))
    return "\n".join(lines)


def format_static(spec: Spec) -> str:
    """Tables with nothing to run: references (Table X) or the presets (Table XIII)."""
    if spec.kind == "presets":
        from experiments.presets_table import presets_table

        header, rows = presets_table(spec)
        return "\n".join([*wrap([spec.title]), "", grid(header, rows), "", *wrap([f"source: {spec.source}"])])
    header = ["method"] + [c.header for c in spec.columns]
    rows = [[r.name] + [_paper(r.values.get(c.key)) for c in spec.columns] for r in spec.references]
    return "\n".join([*wrap([spec.title]), "", grid(header, rows), "", *wrap([f"source: {spec.source}"])])


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
    lines = [*wrap([f"{spec.title} -- preset {preset}"]), "", grid(header, rows)]
    lines += wrap(seed_spread(compared, outcomes))
    if preset == "smoke":
        lines += [
            "",
            *wrap(["smoke runs are synthetic-data checks of the machinery: not comparable with the paper's numbers"]),
        ]
    lines += wrap([f"{o.planned.row.name}: {o.error}" for o in outcomes if o.error])
    paths = sorted({str(o.path) for o in outcomes if o.path})
    lines += ["", "results:", *paths]
    return "\n".join(lines)
