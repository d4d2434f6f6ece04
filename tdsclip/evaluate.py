"""python -m tdsclip.evaluate --checkpoint PATH [views=3x2] [key=value ...] [--scores FILE]

Evaluates any checkpoint with the multi-view protocol on the validation split: the model and data
config come from the checkpoint, `views=CxK` sets C spatial crops x K temporal clips, and any
other key=value overrides (e.g. data.root=... when the data moved). Prints one JSON object with
top-1, top-5, mean class accuracy, videos and views; --scores saves the per-view scores (npz).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tdsclip.config import ConfigError, apply_overrides, from_dict
from tdsclip.model.weights import WeightsError
from tdsclip.train.checkpoint import CheckpointError, load, load_model_state


def parse_views(text: str) -> list[str]:
    """'3x2' -> ['data.test_crops=3', 'data.test_clips=2']."""
    crops, sep, clips = text.lower().partition("x")
    if not sep or not crops.isdigit() or not clips.isdigit():
        raise ConfigError(f"views={text!r}: expected CROPSxCLIPS, e.g. views=3x2 (3 crops x 2 clips) or views=1x1")
    return [f"data.test_crops={crops}", f"data.test_clips={clips}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tdsclip.evaluate", description=__doc__.split("\n\n")[1])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="views=CxK and config overrides")
    parser.add_argument("--checkpoint", required=True, type=Path, help="a latest.pt or best.pt of a run")
    parser.add_argument("--scores", type=Path, help="save per-video per-view scores here (npz)")
    args = parser.parse_args(argv)
    from tdsclip.model.build import build_model
    from tdsclip.train.data import build_run_data
    from tdsclip.train.distributed import env_from, setup, teardown
    from tdsclip.train.loop import evaluate

    try:
        state = load(args.checkpoint)
        saved = state.get("extra", {}).get("config")
        if not isinstance(saved, dict):
            raise CheckpointError(f"checkpoint {args.checkpoint} does not record its config; was it written by tdsclip.train?")
        overrides: list[str] = []
        for text in args.overrides:
            overrides += parse_views(text.split("=", 1)[1]) if text.startswith("views=") else [text]
        cfg = apply_overrides(from_dict(saved), overrides)
        env = env_from()
        device = setup(env)
        try:
            model = build_model(cfg.model, device)
            load_model_state(model, state["model"], str(args.checkpoint))
            data = build_run_data(cfg, env)
            evaluation = evaluate(model, data.val_views, data.views, cfg, env, device, data.collate)
        finally:
            teardown()
    except (ConfigError, WeightsError, CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = evaluation.scores.result()
    if args.scores and env.is_main:
        evaluation.scores.save(args.scores)
    if env.is_main:
        print(json.dumps({"checkpoint": str(args.checkpoint), "top1": result.top1, "top5": result.top5,
                          "mean_class_accuracy": result.mean_class_accuracy, "videos": result.videos,
                          "views": result.views, "videos_skipped": len(evaluation.skipped),
                          "manifest": data.manifest}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
