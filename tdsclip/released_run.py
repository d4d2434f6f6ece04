"""A released checkpoint evaluated as a run of its own kind ("released"), beside the trained runs.

    model_cfg = inspect(path)                                   # mapped, not read: shapes only
    problem = misfit(row_cfg.model, model_cfg)                  # '' when the file fits the row
    outcome = run_released(row_cfg, path, preset="paper", runs_dir=Path("runs"), tags={...})

The row's config says what is evaluated and how (dataset, frames, views, precision); the file says
the model (tdsclip/model/released.py infers it from the tensors), its input size included. The run
id hashes the kind, the file's sha256, the class list, the data config and the precision
(tdsclip/identity.py `released_run_id`); the run has a folder, a lock, a state and a record like
a trained one (tdsclip/runstate.py, tdsclip/runlock.py, tdsclip/track.py), its result holds the
multi-view test metrics under the names a trained run's result uses (test_top1, ...), the file's
sha256 and the class list used.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import open_clip

from tdsclip import runstate
from tdsclip.config import ModelConfig, RunConfig, flatten, to_dict
from tdsclip.identity import RELEASED, cached_sha256, file_sha256, released_identity, released_run_id
from tdsclip.records import RESULT_FILE, writable_folder

log = logging.getLogger(__name__)


def inspect(path: str | Path) -> ModelConfig:
    """The model config a released checkpoint holds, read off its tensors without reading their
    values (the file is mapped); a one-line ReleasedError when it is not such a checkpoint."""
    from tdsclip.model.released import infer_config, read_released

    released = read_released(path, mmap=True)
    return infer_config(released.state, (), released.source)


def misfit(expected: ModelConfig, found: ModelConfig) -> str:
    """Why a released model cannot stand for a row whose model is `expected` ('' when it can):
    another CLIP tower (B/16 for L/14 ...) or another number of classes. The side network's
    width and knobs are the file's to decide (the released code's L/14 is 512 wide)."""
    problems = []
    if found.backbone != expected.backbone:
        problems.append(f"its CLIP tower is {found.backbone} where the row expects {expected.backbone}")
    if found.num_classes != expected.num_classes:
        problems.append(f"it has {found.num_classes} classes where the row expects {expected.num_classes}")
    return "; ".join(problems)


def evaluation_config(row_cfg: RunConfig, model_cfg: ModelConfig) -> RunConfig:
    """The row's config with the released model in it, at its tower's input size."""
    size = open_clip.get_model_config(model_cfg.backbone)["vision_cfg"]["image_size"]
    return replace(row_cfg, model=model_cfg, data=replace(row_cfg.data, input_size=size))


def released_params(cfg: RunConfig, sha256: str, classes_sha256: str = "") -> dict[str, object]:
    """The record's params: the identity, and the model the file holds with its input size (what a
    report measures for the row, and what MLflow shows)."""
    model = {
        k: v
        for k, v in flatten(cfg).items()
        if k.startswith("model.") and k not in ("model.weights", "model.init_from")
    }
    return {**released_identity(cfg, sha256, classes_sha256), **model, "data.input_size": cfg.data.input_size}


def run_released(
    row_cfg: RunConfig,
    checkpoint: str | Path,
    *,
    preset: str,
    runs_dir: Path,
    tags: dict[str, str] | None = None,
    classes: str = "",
    wait: bool | float = False,
):
    """Evaluate a released checkpoint on `row_cfg`'s data with the multi-view protocol, as a run
    in runs_dir/<run_id>; a finished run returns its result at once (with `tags` added). Returns
    tdsclip.train.loop.Outcome. `classes`: the checkpoint's id,name class list ('' for the
    dataset's names in alphabetical order, the authors' lists' order)."""
    import torch.distributed as dist

    from tdsclip.data.classmap import ALPHABETICAL, checkpoint_order, class_rows, reorder_classifier
    from tdsclip.model.released import infer_config, model_of, read_released
    from tdsclip.track import Tracker
    from tdsclip.train.data import build_run_data
    from tdsclip.train.distributed import env_from, setup, teardown
    from tdsclip.train.loop import Outcome, evaluate, multi_view_record
    from tdsclip.train.run import claim_run

    writable_folder(Path(runs_dir), "runs folder", "--runs-dir or $TDSCLIP_RUNS")
    sha = cached_sha256(checkpoint)
    classes_sha = file_sha256(classes) if classes else ""
    released = read_released(checkpoint, mmap=True)
    cfg = evaluation_config(row_cfg, infer_config(released.state, (), released.source))
    env = env_from()
    owns_group = not dist.is_initialized()
    device = setup(env)
    lock = None
    try:
        data = build_run_data(cfg, env)
        rid = released_run_id(cfg, data.manifest, sha, classes_sha)
        run_dir = Path(runs_dir) / rid
        finished, lock = claim_run(run_dir, Path(runs_dir), env, device, wait, tags)
        if finished is not None:
            return finished
        about = {"file": str(checkpoint), "sha256": sha, "epoch": released.epoch}
        tracker = Tracker(
            run_dir,
            rid,
            params=released_params(cfg, sha, classes_sha),
            tags={
                "run_id": rid,
                "preset": preset,
                "data_manifest": data.manifest,
                "world_size": str(env.world_size),
                **(tags or {}),
                "kind": RELEASED,
                "released_file": str(checkpoint),
                "released_sha256": sha,
            },
            enabled=env.is_main,
        )
        if env.is_main:
            runstate.mark_running(run_dir)
        with tracker:
            try:
                model, _ = model_of(released)
                order = checkpoint_order(data.train.classes, classes or None)
                reorder_classifier(model.fc, class_rows(data.train.classes, order, model.fc.out_features))
                model = model.to(device)
                if env.is_main:
                    log.info(
                        "released %s (sha256 %s): %d videos x %d views",
                        checkpoint,
                        sha[:12],
                        len(data.val_views),
                        data.views,
                    )
                evaluation = evaluate(model, data.val_views, data.views, cfg, env, device, data.collate)
            except Exception as error:
                if env.is_main:
                    log.error("run %s %s", rid, runstate.mark_failed(run_dir, error).describe())
                raise
            except KeyboardInterrupt:
                if env.is_main:
                    runstate.mark_stopped(
                        run_dir, "SIGINT", reason="evaluation interrupted; the same command runs it again"
                    )
                raise
            test = evaluation.scores.result()
            result = {
                "run_id": rid,
                "kind": RELEASED,
                "preset": preset,
                "released": about,
                "classes": {"source": classes or ALPHABETICAL, "order": list(order)},
                "metrics": test.metrics("test_"),
                **multi_view_record(data, evaluation),
                "world_size": env.world_size,
                "config": to_dict(cfg),
            }
            if not env.is_main:
                return Outcome("finished", run_dir / RESULT_FILE, result)
            tracker.log_artifact(evaluation.scores.save(run_dir / "views.npz"))
            path = tracker.finish(result)
        runstate.clear(run_dir)
        return Outcome("finished", Path(path), result)
    finally:
        if lock is not None:
            lock.release()
        if owns_group:
            teardown()
