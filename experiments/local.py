"""Run a plan on this machine: train rows (one after another, or several at once: pool.py),
measure rows, compute Fig. 5's maps, and tag the runs in MLflow with the tables they belong to."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from experiments.plan import Planned, record_tags
from experiments.spec import Spec
from tdsclip.atomic import atomic_write
from tdsclip.records import write_json_atomic
from tdsclip.runstate import RunsFolder

log = logging.getLogger("experiments")


@dataclass
class Outcome:
    """What became of one planned row."""

    planned: Planned
    run_id: str
    result: dict = field(default_factory=dict)
    path: Path | None = None
    error: str = ""
    stopped: bool = False


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def train_rows(
    spec: Spec,
    preset: str,
    runs: list[Planned],
    runs_dir: Path,
    overrides: Sequence[str] = (),
    wait: bool = False,
    jobs: int = 1,
    gpus: str | None = None,
) -> list[Outcome]:
    """Train each pending run once (shared rows reuse it), finished ones are read back. A row that
    fails is reported and the others still run; a stop request (signal) ends the loop. With several
    jobs, or a row that trains on several GPUs, each row is a process of its own (experiments/pool.py)."""
    from experiments import pool

    devices = pool.visible_gpus() if gpus is None else pool.parse_gpus(gpus, pool.visible_gpus())
    if gpus is not None and not devices:
        raise ValueError(f"--gpus {gpus}: no GPU given")
    pending = {p.run_id: p for p in runs if p.status != "finished" and not p.shared_with}
    if not pending:
        return _in_process(spec, preset, runs, runs_dir, overrides, wait)
    need = max(p.gpus for p in pending.values())
    slots = pool.layout(jobs, len(pending), devices, need, pool.cores(), lambda k: _fits(pending.values(), k))
    if jobs == 1 and gpus is None and len(slots) == 1 and slots[0].processes == 1:
        return _in_process(spec, preset, runs, runs_dir, overrides, wait)
    return _parallel(spec, preset, runs, runs_dir, overrides, wait, slots)


def _fits(runs, processes: int) -> bool:
    return all(p.cfg.train.batch_size % (p.cfg.train.micro_batch * processes) == 0 for p in runs)


def _read_back(spec: Spec, preset: str, planned: Planned, runs_dir: Path, overrides: Sequence[str]) -> Outcome:
    """A finished run: this table's row is added to its record's tags, its result read."""
    from tdsclip.track import add_tags

    add_tags(runs_dir / planned.run_id, record_tags(spec, planned, preset, overrides))  # this table's row too
    path = runs_dir / planned.run_id / "result.json"
    return Outcome(planned, planned.run_id, json.loads(path.read_text()), path)


def _copy(planned: Planned, earlier: Outcome) -> Outcome:
    return Outcome(planned, earlier.run_id, earlier.result, earlier.path, earlier.error, earlier.stopped)


def _in_process(
    spec: Spec, preset: str, runs: list[Planned], runs_dir: Path, overrides: Sequence[str], wait: bool
) -> list[Outcome]:
    """One row after another, in this process."""
    from tdsclip.train.run import run_config

    done: dict[str, Outcome] = {}
    outcomes: list[Outcome] = []
    for number, planned in enumerate(runs, 1):
        if planned.run_id in done:
            outcomes.append(_copy(planned, done[planned.run_id]))
            continue
        if planned.status == "finished":
            done[planned.run_id] = _read_back(spec, preset, planned, runs_dir, overrides)
            outcomes.append(done[planned.run_id])
            continue
        log.info("%s [%d/%d] %s (seed %d): training", spec.name, number, len(runs), planned.row.name, planned.seed)
        try:
            outcome = run_config(
                planned.cfg,
                preset=preset,
                runs_dir=runs_dir,
                wait=wait,
                tags=record_tags(spec, planned, preset, overrides),
            )
            result = outcome.result if outcome.status == "finished" else {}
            done[planned.run_id] = Outcome(
                planned, outcome.path.parent.name, result, outcome.path, stopped=outcome.status != "finished"
            )
        except Exception as error:  # noqa: BLE001 - one row's failure is reported, the others run
            log.error("%s row %r failed: %s", spec.name, planned.row.name, _one_line(error))
            done[planned.run_id] = Outcome(planned, planned.run_id, error=_one_line(error))
        outcomes.append(done[planned.run_id])
        if done[planned.run_id].stopped:
            log.warning(
                "stop requested: %s saved its checkpoint; run the same command again to resume", planned.row.name
            )
            break
    return outcomes


def _parallel(
    spec: Spec,
    preset: str,
    runs: list[Planned],
    runs_dir: Path,
    overrides: Sequence[str],
    wait: bool,
    slots: list,
) -> list[Outcome]:
    """The pending rows as processes, len(slots) at a time. Their data is read here first (the
    synthetic set made once, not by every process at once), which also makes their run ids final."""
    from experiments import plan as planning
    from experiments import pool

    unreadable: dict[str, str] = {}
    for planned in runs:
        if planned.status != "finished" and planned.provisional.startswith("data of"):
            try:
                planning.read_data([planned])
            except Exception as error:  # noqa: BLE001 - that row fails, the others run
                unreadable[planned.run_id] = _one_line(error)
    final = planning.with_final_ids(runs, runs_dir)
    pending = {}
    for before, planned in zip(runs, final):
        if planned.status != "finished" and planned.run_id not in pending and before.run_id not in unreadable:
            pending[planned.run_id] = (planned, record_tags(spec, planned, preset, overrides))
    threads = {slot.threads for slot in slots}
    log.info(
        "%s: %d row(s) to train, %d at a time, %s thread(s) each; each row's output in runs/<run id>/train.log",
        spec.name,
        len(pending),
        len(slots),
        ",".join(map(str, sorted(threads))),
    )
    ended = pool.run_rows(spec.name, preset, list(pending.values()), runs_dir, slots, wait)
    done: dict[str, Outcome] = {}
    outcomes: list[Outcome] = []
    for before, planned in zip(runs, final):
        if planned.run_id in done:
            outcomes.append(_copy(planned, done[planned.run_id]))
        elif before.run_id in unreadable:
            log.error("%s row %r failed: %s", spec.name, planned.row.name, unreadable[before.run_id])
            done[planned.run_id] = Outcome(planned, planned.run_id, error=unreadable[before.run_id])
            outcomes.append(done[planned.run_id])
        elif planned.status == "finished" and planned.run_id not in pending:
            done[planned.run_id] = _read_back(spec, preset, planned, runs_dir, overrides)
            outcomes.append(done[planned.run_id])
        elif planned.run_id in ended:
            row = ended[planned.run_id]
            if row.status == "finished":
                result = json.loads(row.path.read_text())
                done[planned.run_id] = Outcome(planned, row.run_id, result, row.path)
            else:
                done[planned.run_id] = Outcome(
                    planned, row.run_id, path=row.path, error=row.error, stopped=row.status == "stopped"
                )
            outcomes.append(done[planned.run_id])
    if any(o.stopped for o in outcomes):
        log.warning("stop requested: the rows saved their checkpoints; run the same command again to resume")
    return outcomes


def measure_rows(spec: Spec, runs: list[Planned], runs_dir: Path) -> list[Outcome]:
    """Measure each row's model (Table XII): peak CUDA memory of inference on a GPU, otherwise the
    bytes saved for backward in one training forward, labelled. Written to runs/measurements/."""
    from tdsclip import measure_cache
    from tdsclip.measure import measure

    outcomes = []
    for planned in runs:
        key = measure_cache.key(planned.cfg)
        try:
            m = measure(planned.cfg, batch=1)
        except Exception as error:  # noqa: BLE001 - reported per row
            outcomes.append(Outcome(planned, f"m-{key}", error=_one_line(error)))
            continue
        cuda = m["cuda_peak_inference_bytes"] is not None
        result = {
            "run_id": f"m-{key}",
            "kind": "measurement",
            "row": planned.row.name,
            "memory_bytes": m["cuda_peak_inference_bytes"] if cuda else m["saved_activation_bytes"],
            "memory_kind": (
                f"CUDA peak of one inference forward ({m['cuda_device']}, batch 1, {planned.cfg.train.precision})"
                if cuda
                else "bytes saved for backward in one training forward (CPU; batch 1, fp32)"
            ),
            "measurement": m,
        }
        path = RunsFolder(runs_dir).measurement(key)
        write_json_atomic(path, result)
        outcomes.append(Outcome(planned, f"m-{key}", result, path))
    base = outcomes[0].result.get("memory_bytes") if outcomes and not outcomes[0].error else None
    for outcome in outcomes:
        if base and outcome.result:
            outcome.result["memory_ratio"] = outcome.result["memory_bytes"] / base
    return outcomes


def activation_maps(
    spec: Spec, preset: str, runs: list[Planned], trained: list[Outcome], runs_dir: Path
) -> list[Outcome]:
    """Fig. 5: maps of each trained row's side network on the same clips, saved with the clips'
    frames and (synthetic data) the object's boxes; each row's result gains its box mass."""
    import numpy as np
    import torch

    from tdsclip import maps
    from tdsclip.model.build import build_model
    from tdsclip.train import checkpoint as ckpt

    if any(o.error or o.stopped for o in trained):
        return trained
    cfg = max((o.planned.cfg for o in trained), key=lambda c: c.model.sme_window)  # the widest window serves all
    count = int(spec.extra.get("clips", 8))
    if cfg.data.dataset == "synthetic":  # freshly rendered clips whose object boxes are known
        clips, frames, boxes, labels = maps.synthetic_clips(cfg, count)
    else:
        clips, frames, boxes, labels = maps.dataset_clips(cfg, count)
    arrays: dict[str, np.ndarray] = {"frames": frames, "boxes": boxes, "labels": np.asarray(labels)}
    summary: dict[str, object] = {"method": maps.METHOD, "rows": {}}
    for number, outcome in enumerate(trained):
        row_cfg = outcome.planned.cfg
        torch.manual_seed(row_cfg.train.seed)  # the run's initial weights: its random frozen backbone, if any
        model = build_model(row_cfg.model)
        ckpt.load_model_state(model, ckpt.load(outcome.path.parent / ckpt.LATEST)["model"], outcome.run_id)
        window = (
            clips if row_cfg.model.sme_window == cfg.model.sme_window else _rewindow(clips, row_cfg.model.sme_window)
        )
        row_maps = maps.side_activation_maps(model, window).numpy()
        arrays[f"maps_{number}"] = row_maps
        mass = maps.box_mass(row_maps, boxes)
        outcome.result = {**outcome.result, "box_mass": mass}
        summary["rows"][outcome.planned.row.name] = {
            "run_id": outcome.run_id,
            "box_mass": mass,
            "array": f"maps_{number}",
        }
    key = hashlib.sha256(":".join(o.run_id for o in trained).encode()).hexdigest()[:12]
    folder = RunsFolder(runs_dir).figures(spec.name, preset, key)
    atomic_write(folder / "maps.npz", lambda handle: np.savez_compressed(handle, **arrays))
    write_json_atomic(folder / "summary.json", summary)
    for outcome in trained:
        outcome.result["maps"] = str(folder / "maps.npz")
    return trained


def _rewindow(clips, m: int):
    """Clips of another SME window: the centre m of the local frames (m=1: the sparse frame alone)."""
    centre, half = clips.shape[3] // 2, m // 2
    return clips[:, :, :, centre - half : centre + half + 1]


def track_table(
    spec: Spec, preset: str, outcomes: list[Outcome], runs_dir: Path, overrides: Sequence[str] = ()
) -> None:
    """The table's parent run in MLflow (per preset and override set), through tdsclip.track, the
    one writer of MLflow. A tracking outage is logged, never fatal."""
    from tdsclip.mirror import MirrorError, mlflow_installed, not_installed
    from tdsclip.track import track_table as track

    rows = [(o.planned.row.name, o.run_id) for o in outcomes if o.result.get("kind") != "measurement" and o.run_id]
    if not rows or spec.kind == "measure":
        return
    if not mlflow_installed():  # said here too: under --jobs the runs' own warnings are in their logs
        log.warning("%s", not_installed(runs_dir))
        return
    try:
        track(spec.name, preset, list(overrides), rows, runs_dir)
    except (MirrorError, OSError) as error:
        log.warning("MLflow: could not record %s's parent run (%s); the run records are complete", spec.name, error)
