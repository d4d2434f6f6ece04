"""A paper table as a report shows it: per row ours beside the paper's, the difference, a status per
cell, the measured columns and the row's provenance.

    view = build_table(load("table3"), "smoke", LocalSource(runs_dir), runs_dir)

The records say which runs a table has (each run's tags: table, row, preset, overrides, seed and
kind: `find_runs`, no re-planning); the source says what became of each. A released checkpoint
evaluated as a row (kind "released", experiments.run --released) is a row of its own beside the
trained one, "<row> (released checkpoint, evaluated here)", with its own status and the file's
sha256 in the provenance. Measurements (Table XII) and Fig. 5's maps are files under the runs folder, read here
whatever the source. Nothing is trained, measured or guessed: a row that has not run says so.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from experiments.spec import FLOPS_CACHE, Row, Spec, replaced_note, row_config
from reports import status as st
from reports.sources import Found, RunView, Source
from tdsclip import measure_cache
from tdsclip.config import ConfigError, RunConfig, apply_overrides
from tdsclip.data.official import video_counts as videos
from tdsclip.identity import RELEASED
from tdsclip.records import RecordError, read_json
from tdsclip.runstate import RunsFolder

ColumnKind = Literal["paper", "compared", "measured"]
RELEASED_LABEL = "released checkpoint, evaluated here"
COMPARED_MEASURES = ("measured:memory_ratio",)
"""Measured columns the paper's values are judged against (the others are shown side by side)."""
NO_DIFFERENCE = ("measured:memory",)
"""Measured columns shown without a difference: Table XII's GiB depend on a batch the paper does not
state (its rows are compared as ratios)."""
HEADERS = {
    "ssv1_top1": "SSv1 Top-1 (%)",
    "ssv1_top5": "SSv1 Top-5 (%)",
    "ssv2_top1": "SSv2 Top-1 (%)",
    "ssv2_top5": "SSv2 Top-5 (%)",
    "gap_5": "Gap at 5% (points)",
}
"""Headers of reference-only keys (the other methods' rows of Table I, Fig. 6's gaps)."""


@dataclass(frozen=True)
class ColumnView:
    key: str
    header: str
    kind: ColumnKind
    metric: str = ""


@dataclass(frozen=True)
class Value:
    """One cell: ours (mean over the seeds that gave it), the paper's, the difference as printed."""

    ours: float | str | None = None
    paper: float | str | None = None
    diff: float | None = None
    status: str = ""
    spread: float | None = None
    """Sample standard deviation over seeds (None for one seed)."""
    n: int = 0
    places: int = 1
    why: str = ""
    """Why ours is missing where a value was expected ("not validated", "not measured")."""

    @property
    def ours_text(self) -> str:
        if isinstance(self.ours, float):
            text = st.number(self.ours, self.places)
            return text + (f" ± {st.number(self.spread, self.places)}" if self.spread is not None else "")
        return self.why if self.ours is None else str(self.ours)

    @property
    def paper_text(self) -> str:
        if isinstance(self.paper, float):
            return st.number(self.paper, self.places)
        return "" if self.paper is None else str(self.paper)

    @property
    def diff_text(self) -> str:
        return st.number(self.diff, self.places, sign=True)


@dataclass(frozen=True)
class Provenance:
    run_ids: tuple[str, ...]
    seeds: tuple[int, ...]
    seeds_done: int
    preset: str
    protocol: str
    manifest: str = ""
    videos: str = ""
    git: str = ""
    provisional: str = ""
    """Why the run id is not final (data or weights not located here), '' when it is."""
    overrides: str = ""
    """The command-line overrides the row's runs were made with."""
    data: str = ""
    """The data fingerprint's summary (counts per split, the comparison with a reference list)."""
    differs: bool = False
    """Some run of the row was evaluated on data that differs from its reference list."""
    released: str = ""
    """A released row's checkpoint: its sha256 and file name ('' for a trained row)."""

    @property
    def seeds_text(self) -> str:
        text = ", ".join(str(s) for s in self.seeds)
        return text + (f" ({self.seeds_done}/{len(self.seeds)} done)" if len(self.seeds) > 1 else "")


@dataclass(frozen=True)
class RowView:
    name: str
    state: str
    """done | running | failed | not run, over the row's seeds (done if any seed is)."""
    status: str
    values: Mapping[str, Value]
    provenance: Provenance
    note: str = ""


Grid = tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]


@dataclass(frozen=True)
class TableView:
    name: str
    title: str
    kind: str
    preset: str
    protocol: str = ""
    paper_source: str = ""
    columns: tuple[ColumnView, ...] = ()
    rows: tuple[RowView, ...] = ()
    references: Grid | None = None
    """The paper's rows of other methods: header and rows of text."""
    static: Grid | None = None
    """Tables with nothing to run (X, XIII): header and rows of text."""
    notes: tuple[str, ...] = ()
    incomparable: str = ""
    tolerance: str = ""
    records: str = ""
    """Where the runs were read from."""
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, int]:
        return st.counts(r.status for r in self.rows)


# ----------------------------------------------------------------------------- the runs of a table


@dataclass(frozen=True)
class Wanted:
    """One run a row shows: found in the records (run_id), or only the row's config when none is."""

    row: Row
    seed: int
    cfg: RunConfig
    run_id: str
    replaced: tuple[str, ...] = ()
    """Spec overrides the preset decides instead."""
    overrides: tuple[str, ...] = ()
    """The command line's overrides the run was made with."""
    provisional: str = ""
    kind: str = "train"
    """train, or released: the authors' checkpoint evaluated as the row."""


def _pick(found: Sequence[Found], source: Source) -> Found:
    """Of several records of one row, override set and seed: a finished one, else the newest."""
    views = {f.run_id: source.get(f.run_id) for f in found}
    return sorted(found, key=lambda f: (getattr(views[f.run_id], "state", "") == "done", f.created))[-1]


def find_runs(
    spec: Spec, preset: str, source: Source, seeds: int | None = None, overrides: Sequence[str] | None = None
) -> list[Wanted]:
    """The recorded runs of `spec` under `preset`, found by what their records say they are
    (table, row, preset, overrides, seed): no re-planning. overrides=None takes every override set
    (each its own rows), a list only that set. A row with no record is one Wanted without a run
    id, its config resolved from the spec (for the measured columns). Rows come in spec order,
    then override set (none first), then seed."""
    found = [
        f
        for f in source.find()
        if f.table == spec.name and f.preset == preset and (overrides is None or f.overrides == tuple(overrides))
    ]
    out: list[Wanted] = []
    for row in spec.rows:
        mine = [f for f in found if f.row == row.name]
        trained = [f for f in mine if f.kind != RELEASED]
        sets = sorted({f.overrides for f in trained}, key=lambda s: (len(s) > 0, s)) if spec.kind != "measure" else []
        if not sets:
            sets = [tuple(overrides or ())]
        for chosen in sets:
            cfg, dropped = row_config(spec, row, preset, chosen)
            base = cfg.train.seed
            by_seed: dict[int, list[Found]] = {}
            for f in trained:
                if f.overrides == chosen:
                    by_seed.setdefault(f.seed if f.seed is not None else base, []).append(f)
            wanted_seeds = sorted(by_seed) if seeds is None else list(range(base, base + seeds))
            if not wanted_seeds or spec.kind == "measure":
                out.append(Wanted(row, base, cfg, "", dropped, chosen))
                continue
            for seed in wanted_seeds:
                pick = _pick(by_seed[seed], source) if seed in by_seed else None
                seed_cfg = cfg if seed == base else row_config(spec, row, preset, chosen, seed - base)[0]
                out.append(Wanted(row, seed, seed_cfg, pick.run_id if pick else "", dropped, chosen))
        if spec.kind != "measure":
            out += released_runs(spec, row, preset, [f for f in mine if f.kind == RELEASED], source)
    return out


def released_runs(spec: Spec, row: Row, preset: str, found: Sequence[Found], source: Source) -> list[Wanted]:
    """The row's released-checkpoint evaluations, one per override set (none: no row shown); the
    config is the row's with the model the file holds (the record's params), for the measured
    columns."""
    out = []
    for chosen in sorted({f.overrides for f in found}, key=lambda s: (len(s) > 0, s)):
        pick = _pick([f for f in found if f.overrides == chosen], source)
        cfg, dropped = row_config(spec, row, preset, chosen)
        held = {k: v for k, v in pick.params.items() if k.startswith("model.") or k == "data.input_size"}
        try:
            cfg = apply_overrides(cfg, held)
        except ConfigError:
            pass  # a record of other code's keys: the row's own config measures it
        out.append(Wanted(row, cfg.train.seed, cfg, pick.run_id, dropped, chosen, kind=RELEASED))
    return out


def row_label(wanted: Wanted) -> str:
    """A row's name on the page: the spec's, with the override set when it has one, and what it is
    when it is not the row trained."""
    name = f"{wanted.row.name} [{' '.join(wanted.overrides)}]" if wanted.overrides else wanted.row.name
    return f"{name} ({RELEASED_LABEL})" if wanted.kind == RELEASED else name


# ----------------------------------------------------------------------------- columns and cells


def columns(spec: Spec) -> tuple[ColumnView, ...]:
    out = []
    for c in spec.columns:
        if not c.metric:
            out.append(ColumnView(c.key, c.header, "paper"))
        elif c.metric.startswith("measured:") and c.metric not in COMPARED_MEASURES:
            out.append(ColumnView(c.key, c.header, "measured", c.metric))
        else:
            out.append(ColumnView(c.key, c.header, "compared", c.metric))
    out.append(ColumnView("params", "Trainable params (M)", "measured", "measured:trainable_params"))
    return tuple(out)


def _mean(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _difference(ours: float | None, paper: float | None, places: int) -> float | None:
    """Ours as printed minus the paper's, rounded the same way."""
    return None if ours is None or paper is None else round(round(ours, places) - paper, places)


def compared_value(
    column: ColumnView, paper: object, found: Sequence[float], state: str, spec: Spec, incomparable: str
) -> Value:
    """ours vs the paper for one compared cell; `found` holds the value of each finished seed."""
    places = st.decimals(column.metric)
    ours, spread = _mean(found)
    target = _number(paper)
    diff = _difference(ours, target, places)
    if state != "done":
        status = state
    elif ours is None:
        status = st.missing(column.metric)
    elif diff is None:
        status = st.NO_PAPER
    elif incomparable:
        status = st.NOT_COMPARABLE
    else:
        status = st.verdict(diff, spec.tolerance)
    why = status if status in (st.NOT_VALIDATED, st.NOT_MEASURED) else ""
    return Value(ours, paper if target is None else target, diff, status, spread, len(found), places, why)


def measured_value(column: ColumnView, paper: object, ours: object) -> Value:
    """A measured cell: ours beside the paper's, no verdict."""
    places = 2 if column.key == "params" else st.decimals(column.metric)
    mine, target = _number(ours), _number(paper)
    diff = None if column.metric in NO_DIFFERENCE else _difference(mine, target, places)
    return Value(
        ours if mine is None else mine,
        paper if target is None else target,
        diff,
        n=int(ours is not None),
        places=places,
    )


# ----------------------------------------------------------------------------- provenance


def _protocol(spec: Spec, cfg) -> str:
    metrics = [c.metric for c in spec.columns if c.metric and not c.metric.startswith("measured:")]
    if any(m.startswith("test_") for m in metrics):
        return f"{cfg.data.test_crops}x{cfg.data.test_clips} views, val split"
    return "1 view, val split, best epoch"


def _videos(cfg, run: RunView | None) -> str:
    expected = videos(cfg)
    evaluated = run.metrics.get("test_videos") if run else None
    if evaluated is None:
        return ""
    text = f"{int(evaluated):,}"
    if expected:
        text += f" / {expected[1]:,}" + (" (synthetic)" if cfg.data.dataset == "synthetic" else " official")
    return text


def _git(runs: Sequence[RunView]) -> str:
    shas = []
    for run in runs:
        sha = run.tags.get("git_sha", "")
        if sha:
            shas.append(sha[:10] + ("-dirty" if run.tags.get("git_dirty") == "true" else ""))
    return ", ".join(dict.fromkeys(shas))


def provenance(spec: Spec, preset: str, planned: Sequence[Wanted], runs: Sequence[RunView | None]) -> Provenance:
    done = [r for r in runs if r and r.state == "done"]
    first = done[0] if done else next((r for r in runs if r), None)
    if spec.kind == "measure":  # one measurement per model, whatever the seed
        return Provenance((f"m-{measure_cache.key(planned[0].cfg)}",), (), len(done), preset, "measured, batch 1")
    return Provenance(
        run_ids=tuple(dict.fromkeys(p.run_id for p in planned if p.run_id)),
        seeds=tuple(p.seed for p in planned),
        seeds_done=len(done),
        preset=(first.tags.get("preset") if first else None) or preset,
        protocol=_protocol(spec, planned[0].cfg),
        manifest=(first.tags.get("data_manifest", "") if first else "")[:12],
        videos=_videos(planned[0].cfg, first),
        git=_git([r for r in runs if r]),
        provisional=planned[0].provisional,
        overrides=" ".join(dict.fromkeys(o for p in planned for o in p.overrides)),
        data=(first.fingerprint.get("summary") or "") if first else "",
        differs=any(r.fingerprint.get("differs_from_reference") is True for r in done),
        released=released_text(first) if planned[0].kind == RELEASED else "",
    )


def released_text(run: RunView | None) -> str:
    """'sha256 <hex> (<file name>)' of a released row's checkpoint, from its record's tags."""
    if run is None or not run.tags.get("released_sha256"):
        return ""
    name = Path(run.tags.get("released_file", "")).name
    return f"sha256 {run.tags['released_sha256']}" + (f" ({name})" if name else "")


# ----------------------------------------------------------------------------- files beside the runs


def measurement(runs_dir: Path, planned: Wanted) -> dict | None:
    """Table XII's measurement of a row's model (runs/measurements/<key>.json), or None."""
    path = RunsFolder(runs_dir).measurement(measure_cache.key(planned.cfg))
    try:
        return read_json(path) if path.exists() else None
    except RecordError:
        return None


def maps_folder(runs_dir: Path, spec: Spec, preset: str, runs: Sequence[Wanted]) -> Path:
    """Where experiments.local.activation_maps put Fig. 5's maps for these runs."""
    key = hashlib.sha256(":".join(p.run_id for p in runs).encode()).hexdigest()[:12]
    return RunsFolder(runs_dir).figures(spec.name, preset, key)


def maps_summary(folder: Path) -> dict:
    try:
        return json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


# ----------------------------------------------------------------------------- rows


def _state(runs: Sequence[RunView | None]) -> str:
    states = {r.state for r in runs if r}
    for state in ("done", "running", "stopped", "failed"):
        if state in states:
            return state
    return st.NOT_RUN


def _row(
    spec: Spec,
    preset: str,
    cols: Sequence[ColumnView],
    planned: Sequence[Wanted],
    runs: Sequence[RunView | None],
    measures: Mapping[str, object],
    incomparable: str,
) -> RowView:
    row, state = planned[0].row, _state(runs)
    done = [r for r in runs if r and r.state == "done"]
    values: dict[str, Value] = {}
    for column in cols:
        paper = row.paper.get(column.key)
        if column.kind == "paper":
            values[column.key] = Value(paper=paper)
        elif column.kind == "measured":
            values[column.key] = measured_value(column, paper, measures.get(column.metric.removeprefix("measured:")))
        else:
            key = column.metric.removeprefix("measured:")
            found = (
                ([float(measures[key])] if key in measures else [])
                if column.metric.startswith("measured:")
                else [r.metrics[key] for r in done if key in r.metrics]
            )
            values[column.key] = compared_value(column, paper, found, state, spec, incomparable)
    cells = [values[c.key].status for c in cols if c.kind == "compared"]
    return RowView(
        row_label(planned[0]),
        state,
        st.row_status(state, cells),
        values,
        provenance(spec, preset, planned, runs),
        row.note,
    )


def _measured_rows(
    spec: Spec, runs_dir: Path, firsts: Sequence[Wanted], flops_cache: Path
) -> tuple[list[dict], list[RunView | None], str]:
    """Per row: measured values (FLOPs cache; Table XII's memory and ratio), a run view for the
    measurement (Table XII), and what the memory is (CUDA peak or bytes saved for backward)."""
    values = [dict(m) for m in measure_cache.summaries([p.cfg for p in firsts], flops_cache)]
    for entry, p in zip(values, firsts):
        if "trainable_params" in entry:
            entry["trainable_params"] = entry["trainable_params"] / 1e6
            entry["tflops_x_views"] = (
                f"{tflops(entry['gflops_per_view'])}x{p.cfg.data.test_crops * p.cfg.data.test_clips}"
            )
    views: list[RunView | None] = []
    kinds = []
    if spec.kind == "measure":
        found = [measurement(runs_dir, p) for p in firsts]
        base = found[0]["memory_bytes"] if found and found[0] else None
        for entry, m, p in zip(values, found, firsts):
            if m:
                entry["memory"] = m["memory_bytes"] / 2**30
                if base:
                    entry["memory_ratio"] = m["memory_bytes"] / base
                kinds.append(m.get("memory_kind", ""))
            views.append(RunView(str(m.get("run_id", p.run_id)), "done") if m else None)
    return values, views, "; ".join(dict.fromkeys(kinds))


def tflops(gflops: float) -> str:
    """TFLOPs per view as the paper prints them (0.18), with the digits a tiny smoke model needs (0.00042)."""
    value = gflops / 1000
    return f"{value:.2f}" if value >= 0.01 else f"{value:.2g}"


def build_table(
    spec: Spec,
    preset: str,
    source: Source,
    runs_dir: Path,
    *,
    seeds: int | None = None,
    overrides: Sequence[str] | None = None,
    flops_cache: Path = FLOPS_CACHE,
) -> TableView:
    """The report's view of `spec` under `preset`, from what `source` (and the runs folder) hold."""
    if spec.kind in ("static", "presets"):
        return static_view(spec, preset)
    runs = find_runs(spec, preset, source, seeds, overrides)
    groups: dict[str, list[Wanted]] = {}
    for p in runs:
        groups.setdefault(row_label(p), []).append(p)
    firsts = [ps[0] for ps in groups.values()]
    values, measure_views, memory_kind = _measured_rows(spec, runs_dir, firsts, flops_cache)
    incomparable = st.incomparable(preset)
    if spec.kind == "measure" and memory_kind and "CUDA" not in memory_kind:
        incomparable = (
            incomparable or "memory measured on the CPU (bytes saved for backward), the paper's is GPU inference memory"
        )
    extra: dict[str, object] = {}
    if spec.kind == "maps":
        folder = maps_folder(runs_dir, spec, preset, runs)
        summary = maps_summary(folder)
        extra = {"maps": folder / "maps.npz", "summary": summary}
        for entry, name in zip(values, groups):
            mass = summary.get("rows", {}).get(name, {}).get("box_mass")
            if mass is not None:
                entry["box_mass"] = mass
    cols = columns(spec)
    rows, states = [], []
    for number, (name, planned) in enumerate(groups.items()):
        views = (
            [measure_views[number]]
            if spec.kind == "measure"
            else [source.get(p.run_id) if p.run_id else None for p in planned]
        )
        rows.append(_row(spec, preset, cols, planned, views, values[number], incomparable))
        states += [
            f"{name} (seed {p.seed}): {v.detail or v.error}"
            for p, v in zip(planned, views)
            if v is not None and v.state in ("failed", "stopped", "running") and (v.detail or v.error)
        ]
        states += differing_data(name, views)
    return TableView(
        spec.name,
        spec.title,
        spec.kind,
        preset,
        spec.protocol if spec.kind != "measure" else memory_kind or spec.protocol,
        spec.source,
        cols,
        tuple(rows),
        references_grid(spec),
        None,
        (*notes(spec, preset, runs), *states),
        incomparable,
        tolerance_text(spec),
        source.description,
        extra,
    )


def differing_data(name: str, views: Sequence[RunView | None]) -> list[str]:
    """A note per finished run of the row whose data differs from its reference list."""
    return [
        f"{name}: evaluated on data that differs from its reference: {v.fingerprint.get('summary') or 'see its result.json'}"
        for v in views
        if v is not None and v.state == "done" and v.fingerprint.get("differs_from_reference") is True
    ]


def tolerance_text(spec: Spec) -> str:
    metrics = [
        c.metric
        for c in spec.columns
        if c.metric and (not c.metric.startswith("measured:") or c.metric in COMPARED_MEASURES)
    ]
    parts = sorted({f"±{spec.tolerance:g} {'ratio' if 'ratio' in m else 'points'}" for m in metrics})
    return ", ".join(parts)


def notes(spec: Spec, preset: str, runs: Sequence[Wanted]) -> tuple[str, ...]:
    out = list(spec.notes)
    out += [f"{p.row.name}: {p.row.note}" for p in runs if p.row.note and p.seed == runs[0].seed]
    replaced = replaced_note(preset, [(p.replaced, p.cfg) for p in runs])
    if replaced:
        out.append(replaced)
    out += sorted({f"run ids provisional: {p.provisional}" for p in runs if p.provisional})
    return tuple(dict.fromkeys(out))


# ----------------------------------------------------------------------------- the paper's own rows


def _text(value: object) -> str:
    return "" if value is None else str(value)


def references_grid(spec: Spec) -> Grid | None:
    """Other methods' rows as the paper prints them (group, method, then every key they give)."""
    if not spec.references:
        return None
    keys = list(dict.fromkeys(k for r in spec.references for k in r.values))
    named = {c.key: c.header for c in spec.columns}
    grouped = any(r.group for r in spec.references)
    header = (("Group",) if grouped else ()) + ("Method",) + tuple(named.get(k) or HEADERS.get(k, k) for k in keys)
    rows = tuple(
        (((r.group,) if grouped else ()) + (r.name,) + tuple(_text(r.values.get(k)) for k in keys))
        for r in spec.references
    )
    return header, rows


def static_view(spec: Spec, preset: str) -> TableView:
    """Table X (the paper's prose as a table) and Table XIII (rendered from the paper preset)."""
    if spec.kind == "presets":
        from experiments.presets_table import presets_table

        header, rows = presets_table(spec)
        grid: Grid = (tuple(header), tuple(tuple(r) for r in rows))
        note = ("rendered from the paper preset (tdsclip/presets.py); the last column is the paper's cells",)
        return TableView(spec.name, spec.title, spec.kind, "paper", paper_source=spec.source, static=grid, notes=note)
    return TableView(
        spec.name,
        spec.title,
        spec.kind,
        preset,
        paper_source=spec.source,
        static=references_grid(spec),
        notes=spec.notes,
    )
