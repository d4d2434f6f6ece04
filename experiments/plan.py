"""Expand a spec into the runs it needs: config, run id, status and cost per row and seed (no torch).

    spec rows x seeds --(preset + spec base + row overrides + command line)--> RunConfig
          --(identity + the data manifest remembered in the data cache)--> run_id

Rows whose resolved configs are equal share a run id and are trained and counted once. Without the
data (or with it never read on this machine) the id is provisional: the config part is exact, the
manifest part unknown, and the plan names what to set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from experiments.cost import A100_SUSTAINED_TFLOPS, CPU_SUSTAINED_TFLOPS, Cost, estimate
from experiments.spec import FLOPS_CACHE, Row, Spec, SpecError, row_config, select_rows, spec_overrides  # noqa: F401 - re-exported
from tdsclip import locations, measure_cache
from tdsclip.config import RunConfig, check_clips_per_forward
from tdsclip.data.locate import planned_manifest
from tdsclip.identity import run_id
from tdsclip.presets import GPUS_PER_RUN, PRESETS
from tdsclip.runstate import RunsFolder, read_state


@dataclass(frozen=True)
class Planned:
    """One run a table needs."""

    row: Row
    seed: int
    cfg: RunConfig
    run_id: str
    provisional: str
    """Why the run id is not final yet ('' when it is): the data or weights location to set."""
    status: str
    """A tdsclip.runstate state: not started, running, finished, failed, stopped, pruned."""
    gpus: int
    cost: Cost | None
    cost_note: str
    shared_with: str = ""
    """The earlier row of this plan with the same run (trained and counted once)."""
    replaced: tuple[str, ...] = ()
    """Spec overrides the preset decides instead (smoke: dataset, backbone, ...)."""
    missing: tuple[locations.Missing, ...] = ()
    """Data and weight locations the run needs and nothing gives yet (its id is provisional)."""


def cost_note(entry: object, cost: object) -> str:
    """Why a plan row has no cost estimate ('' when it has one)."""
    if cost:
        return ""
    if not entry:
        return "no FLOPs measured for this model config: run python -m experiments.flops"
    return "video count unknown before the data is read"


def run_status(run_dir: Path) -> str:
    """The run's state, in tdsclip.runstate's words (what --status, reports and sweeps say too)."""
    return read_state(run_dir).state


def record_tags(spec: Spec, planned: Planned, preset: str, overrides: Sequence[str]) -> dict[str, str]:
    """What a run's record says it is, so a report finds it without re-planning: its kind, table,
    row, preset and the command line's overrides (JSON list); and what the table compares of its
    result (compared.<table>: "top1=val_top1_best", column key = result metric), which the MLflow
    mirror logs under the column's key so the runs list reads like the table."""
    compared = " ".join(
        f"{c.key}={c.metric}" for c in spec.columns if c.metric and not c.metric.startswith("measured:")
    )
    return {
        "kind": "train",
        "table": spec.name,
        "row": planned.row.name,
        f"table.{spec.name}": planned.row.name,
        "preset": preset,
        "overrides": json.dumps(list(overrides)),
        "seed": str(planned.seed),
        **({f"compared.{spec.name}": compared} if compared else {}),
    }


def require_locations(runs: Sequence[Planned]) -> None:
    """Raise one LocationsError naming every location the plan's runs still need (before any run
    starts, so a user sets them in one go instead of meeting them row by row)."""
    missing = [m for p in runs for m in p.missing]
    if missing:
        raise locations.LocationsError(missing, locations.locations_file())


def _measurement(row: Row, cfg: RunConfig, runs_dir: Path, flops: dict) -> Planned:
    """A measuring row (Table XII): a model measured, no training, no data and no weights; its id is
    the measurement's (tdsclip.measure_cache.key), finished when runs/measurements/ holds it."""
    key = measure_cache.key(cfg)
    done = RunsFolder(runs_dir).measurement(key).exists()
    note = "" if key in flops else "no FLOPs measured for this model config: run python -m experiments.flops"
    return Planned(row, cfg.train.seed, cfg, f"m-{key}", "", "finished" if done else "not started", 0, None, note)


def plan(
    spec: Spec,
    preset: str,
    *,
    rows: str | None = None,
    seeds: int = 1,
    overrides: Sequence[str] = (),
    runs_dir: Path = Path("runs"),
    tflops: float | None = None,
    flops_cache: Path = FLOPS_CACHE,
) -> list[Planned]:
    """Every run `spec` needs under `preset`, in row order then seed order."""
    if preset not in PRESETS:
        raise SpecError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    if seeds < 1:
        raise SpecError(f"--seeds: expected >= 1, got {seeds}")
    if spec.kind in ("static", "presets"):
        return []
    flops = measure_cache.load(flops_cache)
    gpus = GPUS_PER_RUN[preset]
    throughput = tflops or (A100_SUSTAINED_TFLOPS if gpus else CPU_SUSTAINED_TFLOPS)
    planned: list[Planned] = []
    seen: dict[str, str] = {}
    for row in select_rows(spec, rows):
        for offset in range(seeds):
            cfg, dropped = row_config(spec, row, preset, overrides, offset)
            if spec.kind == "measure":
                planned.append(replace(_measurement(row, cfg, runs_dir, flops), replaced=dropped))
                continue
            check_clips_per_forward(cfg, cfg.train.sync_bn and gpus > 1)
            cfg, missing = locations.locate(cfg, require_weights=preset != "smoke")
            manifest = None if missing else planned_manifest(cfg.data)
            provisional = (
                "locations not set: " + ", ".join(f"{m.config_key} for {m.owner}" for m in missing)
                if missing
                else ""
                if manifest
                else f"data of {cfg.data.dataset} not read on this machine yet (the first run reads it)"
            )
            rid = run_id(cfg, manifest or "unknown")
            entry = flops.get(measure_cache.key(cfg))
            cost = estimate(cfg, entry, gpus, throughput) if entry else None
            note = cost_note(entry, cost)
            status = "not started" if provisional else run_status(runs_dir / rid)
            shared = seen.get(rid, "")
            seen.setdefault(rid, row.name if seeds == 1 else f"{row.name} (seed {cfg.train.seed})")
            planned.append(
                Planned(row, cfg.train.seed, cfg, rid, provisional, status, gpus, cost, note, shared, dropped, missing)
            )
    return planned


def measured(runs: Sequence[Planned], flops_cache: Path = FLOPS_CACHE) -> list[dict[str, object]]:
    """Per run, what the FLOPs cache says of its model (tdsclip.measure_cache.summaries)."""
    return measure_cache.summaries([p.cfg for p in runs], flops_cache)


def read_data(runs: Sequence[Planned]) -> int:
    """Read the data of runs whose id is provisional only because their data has not been read on
    this machine (list the splits, count frames, make the synthetic set), so a re-plan gives final
    ids: what a submitter needs before jobs elsewhere compute them. Returns how many splits it read."""
    from tdsclip.data.locate import found_samples

    done: set[str] = set()
    for p in runs:
        if not p.provisional.startswith("data of"):
            continue
        key = repr(p.cfg.data)
        if key not in done:
            for split in ("train", "val"):
                found_samples(p.cfg.data, split)
            done.add(key)
    return 2 * len(done)


def with_status(runs: Sequence[Planned], runs_dir: Path) -> list[Planned]:
    """The same plan with each run's status read again (after some of them ran)."""
    return [replace(p, status=run_status(runs_dir / p.run_id)) for p in runs]


def with_final_ids(runs: Sequence[Planned], runs_dir: Path) -> list[Planned]:
    """The same plan after read_data: a run whose id waited only for its data read gets its final
    id and that run's status (equal configs still share one id)."""
    final = []
    for p in runs:
        manifest = planned_manifest(p.cfg.data) if p.provisional.startswith("data of") else None
        if manifest:
            rid = run_id(p.cfg, manifest)
            p = replace(p, run_id=rid, provisional="", status=run_status(runs_dir / rid))
        final.append(p)
    return final
