"""python -m tdsclip.evaluate (--checkpoint PATH | --released FILE) [views=3x2] [key=value ...]

Evaluates a checkpoint with the multi-view protocol on the validation split and prints one JSON
object (top-1, top-5, mean class accuracy, videos, views); --out also writes it to a file and
--scores saves the per-view scores (npz).

--checkpoint: a run's latest.pt / best.pt, or a converted released model; the model and data
config come from the checkpoint, and key=value overrides change them (e.g. data.root=... when the
data moved). --released: one of the authors' released checkpoints, read as they saved it
(tdsclip/model/released.py); the model is inferred from its tensors, the data config is the
released-code preset's with the overrides (data.dataset=ssv2 data.frames=16 ...; dataset locations
as for training). Its classifier rows are mapped onto the dataset's classes by name
(tdsclip/data/classmap.py): --classes gives the authors' `id,name` CSV, else the dataset's names in
alphabetical order are the checkpoint's order. The record holds the file's sha256 and the class
list used. `views=CxK` sets C spatial crops x K temporal clips.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tdsclip.config import ConfigError, RunConfig, apply_overrides, from_dict
from tdsclip.data.errors import DataError


def parse_views(text: str) -> list[str]:
    """'3x2' -> ['data.test_crops=3', 'data.test_clips=2']."""
    crops, sep, clips = text.lower().partition("x")
    if not sep or not crops.isdigit() or not clips.isdigit():
        raise ConfigError(f"views={text!r}: expected CROPSxCLIPS, e.g. views=3x2 (3 crops x 2 clips) or views=1x1")
    return [f"data.test_crops={crops}", f"data.test_clips={clips}"]


def _overrides(texts: list[str]) -> list[str]:
    overrides: list[str] = []
    for text in texts:
        overrides += parse_views(text.split("=", 1)[1]) if text.startswith("views=") else [text]
    return overrides


def evaluate_source(
    *,
    checkpoint: Path | None = None,
    released: Path | None = None,
    overrides: list[str] = (),
    classes: Path | None = None,
    scores: Path | None = None,
) -> dict[str, object]:
    """Evaluate a project checkpoint or a released one (exactly one) with the multi-view protocol;
    returns the record (on every rank; only rank 0 writes `scores`). Raises ConfigError,
    WeightsError, CheckpointError, ReleasedError or DataError, each one line."""
    from tdsclip import locations
    from tdsclip.data.classmap import ALPHABETICAL, checkpoint_order, class_rows, reorder_classifier
    from tdsclip.identity import file_sha256
    from tdsclip.model.build import build_model
    from tdsclip.model.released import load_released, released_run_config
    from tdsclip.train.checkpoint import CheckpointError, load, load_for_evaluation
    from tdsclip.train.data import build_run_data
    from tdsclip.train.distributed import env_from, setup, teardown
    from tdsclip.train.loop import evaluate

    if (checkpoint is None) == (released is None):
        raise ConfigError("evaluate: expected exactly one of a checkpoint and a released checkpoint")
    if classes and not released:
        raise ConfigError("--classes maps a released checkpoint's classes; it needs --released")
    overrides = _overrides(list(overrides))
    record: dict[str, object] = {}
    if released:
        model, model_cfg = load_released(released, [t for t in overrides if t.startswith("model.")])
        cfg: RunConfig = released_run_config(model_cfg, [t for t in overrides if not t.startswith("model.")])
        cfg = locations.fill(cfg, require_weights=False)
        record["released"] = {"file": str(released), "sha256": file_sha256(str(released))}
    else:
        state = load(checkpoint)
        saved = state.get("extra", {}).get("config")
        if not isinstance(saved, dict):
            raise CheckpointError(
                f"checkpoint {checkpoint} does not record its config; was it written by tdsclip.train?"
            )
        cfg = apply_overrides(from_dict(saved), overrides)
        record["checkpoint"] = str(checkpoint)
        if "released" in state["extra"]:
            record["released"] = state["extra"]["released"]
    env = env_from()
    device = setup(env)
    try:
        data = build_run_data(cfg, env)
        if released:
            order = checkpoint_order(data.train.classes, classes)
            reorder_classifier(model.fc, class_rows(data.train.classes, order, model.fc.out_features))
            record["classes"] = {"source": str(classes) if classes else ALPHABETICAL, "order": list(order)}
            model = model.to(device)
        else:
            model = build_model(cfg.model, device)
            load_for_evaluation(model, cfg.model, state["model"], str(checkpoint))
        evaluation = evaluate(model, data.val_views, data.views, cfg, env, device, data.collate, "multi-view test")
    finally:
        teardown()
    result = evaluation.scores.result()
    if scores and env.is_main:
        evaluation.scores.save(scores)
    record.update(
        {
            "top1": result.top1,
            "top5": result.top5,
            "mean_class_accuracy": result.mean_class_accuracy,
            "videos": result.videos,
            "views": result.views,
            "videos_skipped": len(evaluation.skipped),
            "manifest": data.manifest,
            "protocol": data.protocol["test"],
            "frames": cfg.data.frames,
        }
    )
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tdsclip.evaluate", description=__doc__.split("\n\n")[1])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="views=CxK and config overrides")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint", type=Path, help="a latest.pt or best.pt of a run, or a converted released model"
    )
    source.add_argument("--released", type=Path, help="one of the authors' released checkpoints")
    parser.add_argument("--classes", type=Path, help="with --released: the checkpoint's class list, an id,name CSV")
    parser.add_argument("--scores", type=Path, help="save per-video per-view scores here (npz)")
    parser.add_argument("--out", type=Path, help="also write the result record (JSON) here")
    args = parser.parse_args(argv)
    # torch comes in with these, after the arguments are read: --help and a bad argument answer at once.
    # progress off a terminal is logged (tdsclip.train.views.EvalProgress); the record goes to stdout
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from tdsclip.model.released import ReleasedError
    from tdsclip.model.weights import WeightsError
    from tdsclip.train.checkpoint import CheckpointError
    from tdsclip.train.distributed import env_from

    try:
        record = evaluate_source(
            checkpoint=args.checkpoint,
            released=args.released,
            overrides=args.overrides,
            classes=args.classes,
            scores=args.scores,
        )
    except (ConfigError, WeightsError, CheckpointError, ReleasedError, DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if env_from().is_main:
        text = json.dumps(record)
        if args.out:
            from tdsclip.atomic import atomic_write

            atomic_write(args.out, lambda handle: handle.write((text + "\n").encode()))
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
