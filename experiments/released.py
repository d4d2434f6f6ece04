"""A table's TDS-CLIP rows evaluated from the authors' released checkpoints instead of trained.

    python -m experiments.run table1 --released --dry-run    # the file per row, eval-only GPU-hours
    python -m experiments.run table1 --released              # evaluate the configured rows here

Each row's file comes from $TDSCLIP_RELEASED_<ROW> or the locations file's [released] section
(tdsclip/locations.py); a row without one is listed with what to set while the others run. Every
file is inspected before anything is evaluated: one whose CLIP tower or class count does not fit
its row is refused in one line. Each evaluation is a run of its own kind, "released"
(tdsclip/released_run.py): its own run id (the file's sha256 in it), state, lock, record and
MLflow run, found by the reports through its tags (kind, table, row, preset, overrides) and shown
there as "released checkpoint, evaluated here" beside the paper's numbers. The row's config (the
preset, the spec, the command line's overrides) decides the data and the protocol; the file
decides the model. Only tables whose spec says so (`extra["released"]`: Tables I and II) have
released checkpoints; their rows of other methods are the paper's and never run.
"""

from __future__ import annotations

import difflib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from experiments.cost import A100_SUSTAINED_TFLOPS, CPU_SUSTAINED_TFLOPS, estimate, estimate_evaluation
from experiments.plan import Planned, cost_note, record_tags, run_status
from experiments.render import format_hours, format_summary, grid
from experiments.spec import FLOPS_CACHE, NAMES, Spec, SpecError, load, row_config, select_rows
from tdsclip import locations, measure_cache
from tdsclip.config import ConfigError, parse_override
from tdsclip.data.locate import planned_manifest
from tdsclip.identity import RELEASED, cached_sha256, file_sha256, released_run_id
from tdsclip.presets import GPUS_PER_RUN

log = logging.getLogger("experiments")

NOT_CONFIGURED = "no file configured"
COST_PRESET = {"paper": "released-code", "released-code": "released-code", "smoke": "smoke"}
"""Whose model the FLOPs of a released row are measured on: the released files hold the authors'
code's models (the released-code preset's: the L/14 side network is 512 wide); smoke's tiny
stand-ins are measured as themselves."""


@dataclass(frozen=True)
class ReleasedRow:
    """One row of a table to evaluate from its released checkpoint."""

    planned: Planned
    """The row's config (data, protocol, the model it expects), the released run's id (provisional
    while the data has not been read here; '' without a file), its state and eval-only cost."""
    location: locations.Released
    sha256: str = ""
    classes: str = ""
    """The id,name class list the checkpoint follows ('' for the dataset's names, alphabetical)."""
    trained_hours: float | None = None
    """What training the row instead would cost (experiments/cost.py `estimate`), for comparison."""

    @property
    def configured(self) -> bool:
        return bool(self.location.path)

    @property
    def unconfigured_line(self) -> str:
        return f"{self.planned.row.name}: {NOT_CONFIGURED}: {self.location.how_to_set}"


def tables_with_released() -> tuple[str, ...]:
    return tuple(name for name in NAMES if load(name).extra.get("released"))


def check_request(spec: Spec, overrides: Sequence[str], seeds: int, executor: str, follow: bool) -> None:
    """Refuse, in one line, what --released cannot do."""
    if not spec.extra.get("released"):
        raise SpecError(
            f"--released: {spec.name} has no released checkpoints; expected one of {', '.join(tables_with_released())}"
        )
    if executor != "local" or follow:
        raise SpecError(
            "--released evaluates the checkpoints here, one after another: use --executor local "
            "(Slurm jobs train; --status and --cancel follow them)"
        )
    if seeds != 1:
        raise SpecError(f"--seeds {seeds}: a released checkpoint is evaluated once (no seed changes it); drop --seeds")
    for text in overrides:
        if parse_override(text)[0] == "data.input_size":
            raise SpecError(
                f"{text}: a released checkpoint is evaluated at its CLIP tower's input size; drop the override "
                "(python -m tdsclip.evaluate --released takes one)"
            )
    known = [r.name for name in tables_with_released() for r in load(name).rows]
    for key in locations.released_rows():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise SpecError(
                f'{locations.locations_file()}: [released] "{key}" is not a row with a released checkpoint'
                f"{f'; did you mean {close[0]!r}?' if close else ''} (rows: {', '.join(dict.fromkeys(known))})"
            )


def plan(
    spec: Spec,
    preset: str,
    *,
    rows: str | None = None,
    overrides: Sequence[str] = (),
    runs_dir: Path = Path("runs"),
    tflops: float | None = None,
    flops_cache: Path = FLOPS_CACHE,
) -> list[ReleasedRow]:
    """Each selected row with its file, the released run's id and state, and the eval-only cost
    (no torch: the file is hashed, not loaded)."""
    flops = measure_cache.load(flops_cache)
    gpus = GPUS_PER_RUN[preset]
    throughput = tflops or (A100_SUSTAINED_TFLOPS if gpus else CPU_SUSTAINED_TFLOPS)
    out: list[ReleasedRow] = []
    seen: dict[str, str] = {}
    for row in select_rows(spec, rows):
        cfg, dropped = row_config(spec, row, preset, overrides)
        try:
            cfg, missing = locations.fill(cfg, require_weights=False), ""
        except ConfigError as error:
            missing = str(error)
        entry = flops.get(measure_cache.key(row_config(spec, row, COST_PRESET[preset], overrides)[0]))
        cost = estimate_evaluation(cfg, entry, gpus, throughput) if entry else None
        own = flops.get(measure_cache.key(cfg))
        trained = estimate(cfg, own, gpus, throughput) if own else None
        note = cost_note(entry, cost)
        where = locations.released_checkpoint(row.name)
        if not where.path:
            planned = Planned(row, cfg.train.seed, cfg, "", "", NOT_CONFIGURED, gpus, cost, note, "", dropped)
            out.append(ReleasedRow(planned, where, trained_hours=trained and trained.hours))
            continue
        if not Path(where.path).is_file():
            raise SpecError(
                f"{spec.name} row {row.name!r}: released checkpoint {where.path} does not exist "
                f"(named by {where.variable} or [released] in {where.file})"
            )
        sha = cached_sha256(where.path)
        classes = locations.released_classes(cfg.data.dataset)
        manifest = None if missing else planned_manifest(cfg.data)
        provisional = missing or (
            "" if manifest else f"data of {cfg.data.dataset} not read on this machine yet (the first run reads it)"
        )
        rid = released_run_id(cfg, manifest or "unknown", sha, file_sha256(classes) if classes else "")
        status = "not started" if provisional else run_status(runs_dir / rid)
        shared = seen.get(rid, "")
        seen.setdefault(rid, row.name)
        planned = Planned(row, cfg.train.seed, cfg, rid, provisional, status, gpus, cost, note, shared, dropped)
        out.append(ReleasedRow(planned, where, sha, classes, trained and trained.hours))
    return out


def format_plan(spec: Spec, preset: str, rows: Sequence[ReleasedRow], tflops: float | None) -> str:
    """The dry run: per row its file, run id, state and the cost of its multi-view test alone."""
    gpus = GPUS_PER_RUN[preset]
    unit = "GPU-h" if gpus else "CPU-h"
    table, total, unknown = [], 0.0, 0
    for r in rows:
        p = r.planned
        if p.shared_with:
            cost = f"shared with {p.shared_with!r}"
        elif p.cost and r.configured:
            cost, total = format_hours(p.cost.hours), total + p.cost.hours
        else:
            cost = format_hours(p.cost.hours) if p.cost else "?"
            unknown += not p.cost
        rid = p.run_id + (" (provisional)" if p.provisional else "") if r.configured else "-"
        file = f"{r.location.path} (sha256 {r.sha256[:12]})" if r.configured else f"none: set {r.location.variable}"
        table.append((p.row.name, rid, p.status, cost, file))
    training = sum(r.trained_hours or 0.0 for r in rows if r.configured and not r.planned.shared_with)
    pending = sum(
        r.planned.cost.hours for r in rows if r.configured and r.planned.cost and r.planned.status != "finished"
    )
    throughput = tflops or (A100_SUSTAINED_TFLOPS if gpus else CPU_SUSTAINED_TFLOPS)
    views = f"{rows[0].planned.cfg.data.test_crops}x{rows[0].planned.cfg.data.test_clips}" if rows else ""
    lines = [
        f"{spec.title} -- preset {preset}, released checkpoints evaluated here (nothing trained), "
        f"protocol: {spec.protocol}",
        "",
        grid(("row", "run id", "status", f"{unit} (eval only)", "released checkpoint"), table),
        "",
        f"total {format_hours(total)} {unit} eval only, for the rows with a file ({format_hours(pending)} still to run)"
        + (f"; {unknown} rows without an estimate" if unknown else "")
        + (f"; training those rows instead: {format_hours(training)} {unit}" if training else ""),
        f"assumptions: evaluation only = validation videos x {views} views x one forward of the released model "
        f"(the {COST_PRESET[preset]} preset's at this size), no training and no per-epoch validation; "
        f"2 FLOPs per multiply-add; {throughput:g} TFLOP/s sustained per "
        f"{'GPU (A100, --a100-tflops)' if gpus else 'CPU run'}",
    ]
    notes = [r.unconfigured_line for r in rows if not r.configured]
    notes += sorted({r.planned.provisional for r in rows if r.planned.provisional})
    notes += sorted({r.planned.cost_note for r in rows if r.planned.cost_note})
    notes.append("each file is checked against its row (CLIP tower, classes) when the rows run")
    lines += [f"note: {n}" for n in dict.fromkeys(notes)]
    return "\n".join(lines)


def check_files(spec: Spec, rows: Sequence[ReleasedRow]) -> None:
    """Every configured file is a released checkpoint that fits its row, or the first that is not
    is refused in one line; nothing has been evaluated yet."""
    from tdsclip.released_run import inspect, misfit

    for r in rows:
        if not r.configured:
            continue
        name = f"{spec.name} row {r.planned.row.name!r}"
        try:
            found = inspect(r.location.path)
        except ValueError as error:  # ReleasedError: not such a checkpoint, or keys that do not map
            raise SpecError(f"{name}: {error}") from None
        problem = misfit(r.planned.cfg.model, found)
        if problem:
            raise SpecError(
                f"{name}: released checkpoint {r.location.path} does not fit the row: {problem} "
                f"(check {r.location.variable} or [released] in {r.location.file})"
            )


def tags(spec: Spec, r: ReleasedRow, preset: str, overrides: Sequence[str]) -> dict[str, str]:
    """The record tags of a trained row's run, of kind "released"."""
    return {**record_tags(spec, r.planned, preset, overrides), "kind": RELEASED}


def execute(
    spec: Spec,
    preset: str,
    rows: Sequence[ReleasedRow],
    runs_dir: Path,
    *,
    force: bool,
    overrides: Sequence[str] = (),
    wait: bool = False,
) -> int:
    """Check every file, then evaluate each configured row here; a row that fails is reported and
    the others still run. Prints the table (ours beside the paper's) and the rows without a file."""
    from experiments.local import Outcome, _one_line
    from tdsclip.released_run import run_released

    configured = [r for r in rows if r.configured]
    missing = [r.unconfigured_line for r in rows if not r.configured]
    if not configured:
        print("\n".join(missing))
        raise SpecError(
            f"no row of {spec.name} has a released checkpoint configured; {rows[0].location.how_to_set}"
            + (" (one per row, listed above)" if len(rows) > 1 else "")
        )
    check_files(spec, configured)
    if force:
        for r in configured:
            p = r.planned
            if p.status == "finished" and not p.shared_with and (runs_dir / p.run_id).exists():
                supersede(p.run_id)
                shutil.rmtree(runs_dir / p.run_id)
    done: dict[str, Outcome] = {}
    outcomes: list[Outcome] = []
    for number, r in enumerate(configured, 1):
        p = r.planned
        if p.run_id in done and not p.provisional:
            earlier = done[p.run_id]
            outcomes.append(Outcome(p, earlier.run_id, earlier.result, earlier.path, earlier.error))
            continue
        if p.status == "finished":  # evaluated before: read back, this table's row tagged
            from tdsclip.track import add_tags

            add_tags(runs_dir / p.run_id, tags(spec, r, preset, overrides))
            path = runs_dir / p.run_id / "result.json"
            done[p.run_id] = Outcome(p, p.run_id, json.loads(path.read_text()), path)
            outcomes.append(done[p.run_id])
            continue
        log.info(
            "%s [%d/%d] %s: evaluating the released checkpoint %s",
            spec.name,
            number,
            len(configured),
            p.row.name,
            r.location.path,
        )
        try:
            run = run_released(
                p.cfg,
                r.location.path,
                preset=preset,
                runs_dir=runs_dir,
                tags=tags(spec, r, preset, overrides),
                classes=r.classes,
                wait=wait,
            )
            outcome = Outcome(p, run.path.parent.name, run.result, run.path)
        except Exception as error:  # noqa: BLE001 - one row's failure is reported, the others run
            log.error("%s row %r failed: %s", spec.name, p.row.name, _one_line(error))
            outcome = Outcome(p, p.run_id, error=_one_line(error))
        done[p.run_id] = outcome
        outcomes.append(outcome)
    print("released checkpoints, evaluated here:")
    print(format_summary(spec, preset, outcomes))
    if missing:
        print("\nrows without a released checkpoint (not evaluated):\n" + "\n".join(missing))
    track(spec, preset, outcomes, runs_dir, overrides)
    return 1 if any(o.error for o in outcomes) else 0


def supersede(run_id: str) -> None:
    """Mark the MLflow run of a row evaluated again (--force) superseded, so the new one starts fresh."""
    from tdsclip.mirror import MirrorError
    from tdsclip.track import supersede as mark

    try:
        mark(run_id)
    except (MirrorError, OSError) as error:
        log.warning("MLflow: could not mark run %s superseded (%s); its old MLflow run stays", run_id, error)


def track(spec: Spec, preset: str, outcomes, runs_dir: Path, overrides: Sequence[str]) -> None:
    """The MLflow parent of the released rows (per table, preset and override set, apart from the
    trained rows' parent), through tdsclip.track. A tracking outage is logged, never fatal."""
    from tdsclip.mirror import MirrorError
    from tdsclip.track import track_table

    rows = [(o.planned.row.name, o.run_id) for o in outcomes if o.run_id and not o.error]
    if not rows:
        return
    try:
        track_table(spec.name, preset, list(overrides), rows, runs_dir, kind=RELEASED)
    except (MirrorError, OSError) as error:
        log.warning(
            "MLflow: could not record %s's released parent run (%s); the run records are complete", spec.name, error
        )


def command(args, spec: Spec, runs_dir: Path) -> int:
    """experiments.run NAME --released [--dry-run]: the plan, or the evaluations (the caller then
    builds the report)."""
    check_request(spec, args.overrides, args.seeds, args.executor, args.status or args.cancel)
    rows = plan(spec, args.preset, rows=args.rows, overrides=args.overrides, runs_dir=runs_dir, tflops=args.a100_tflops)
    if args.dry_run:
        print(format_plan(spec, args.preset, rows, args.a100_tflops))
        return 0
    from tdsclip.records import writable_folder

    writable_folder(runs_dir, "runs folder", "--runs-dir or $TDSCLIP_RUNS")
    return execute(spec, args.preset, rows, runs_dir, force=args.force, overrides=args.overrides, wait=args.wait)
