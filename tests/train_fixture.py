"""In-memory clips for the trainer's mechanics tests (resume, signals, DDP), and a script entry.

Each video is a fixed random tensor (seeded by its index) plus augmentation noise drawn from the
global RNG, which the trainer seeds per (seed, epoch, index): what a real pipeline does, small.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import torch
from torch.utils.data import Dataset

from tdsclip.config import RunConfig, apply_overrides
from tdsclip.data.dataset import FailureLog, Item, collate
from tdsclip.train import checkpoint as ckpt
from tdsclip.train.loop import Hooks, RunData

TINY = [
    "model.backbone=tdsclip-tiny",
    "data.input_size=64",
    "model.side_width=64",
    "model.td_reduction=4",
    "model.num_classes=4",
    "model.sme_window=3",
    "data.frames=4",
    "data.num_sample=2",
    "data.num_workers=0",
    "train.batch_size=4",
    "train.micro_batch=2",
    "train.epochs=2",
    "train.precision=fp32",
    "optim.warmup_epochs=0.5",
    "train.seed=5",
]


def tiny_config(*overrides: str) -> RunConfig:
    return apply_overrides(RunConfig(), TINY + list(overrides))


class Clips(Dataset):
    def __init__(self, size: int, cfg: RunConfig, samples: int, nan_at: int | None = None) -> None:
        self.size, self.cfg, self.samples, self.nan_at = size, cfg, samples, nan_at

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        d = self.cfg.data
        base = torch.randn(
            3,
            d.frames,
            self.cfg.model.sme_window,
            d.input_size,
            d.input_size,
            generator=torch.Generator().manual_seed(index),
        )
        clips = torch.stack([base + 0.1 * torch.randn_like(base) for _ in range(self.samples)])
        if self.nan_at is not None and index == self.nan_at:
            clips[:] = float("nan")
        label = index % self.cfg.model.num_classes
        return Item(clips, torch.full((self.samples,), label), index, f"video{index}", ())


def build(cfg: RunConfig, env, nan_at: int | None = None) -> RunData:
    views = 2
    return RunData(
        train=Clips(24, cfg, cfg.data.num_sample, nan_at),
        val_single=Clips(8, cfg, 1),
        val_views=Clips(8, cfg, views),
        views=views,
        manifest="in-memory-clips-v1",
        collate=collate,
        failure_log=lambda: FailureLog(24, 0.5),
        protocol={"val": "1 view"},
        info={"listed": 8},
    )


def signal_after_checkpoint(step: int, signum: int, times: int = 1, group: bool = False) -> None:
    """Send this process (its whole process group with `group`, as a terminal's Ctrl-C does, data
    workers included) `signum` once, right after the checkpoint of `step` is on disk.

    A real signal at a known step: polling the checkpoint from outside raced the trainer on a fast
    machine (the run had finished before the kill landed).
    """
    save, sent = ckpt.save_training_state, []

    def save_then_signal(*args, **kwargs):
        path = save(*args, **kwargs)
        if kwargs["step"] >= step and not sent:
            sent.append(signum)
            for _ in range(times):
                os.killpg(os.getpgid(0), signum) if group else os.kill(os.getpid(), signum)
        return path

    ckpt.save_training_state = save_then_signal


def main() -> None:
    """python tests/train_fixture.py RUNS_DIR [key=value ...] [--nan-at N] [--prune-at E] [--signal-at STEP SIG]."""
    torch.set_num_threads(1)
    from tdsclip.train.run import run_config

    p = argparse.ArgumentParser()
    p.add_argument("runs_dir", type=Path)
    p.add_argument("overrides", nargs="*")
    p.add_argument("--nan-at", type=int, help="this training video's clips are NaN")
    p.add_argument("--prune-at", type=int, help="the caller's hook asks to stop after this epoch; it records each call")
    p.add_argument("--signal-at", nargs=2, metavar=("STEP", "SIG"), help="e.g. --signal-at 5 SIGKILL")
    p.add_argument("--twice", action="store_true", help="--signal-at sends its signal twice (a second Ctrl-C)")
    p.add_argument(
        "--to-group",
        action="store_true",
        help="--signal-at signals the process group (start it in a session of its own)",
    )
    p.add_argument("--wait", action="store_true", help="wait for the run's lock instead of refusing")
    p.add_argument("--log", action="store_true", help="log INFO lines to stderr, as python -m tdsclip.train does")
    args = p.parse_intermixed_args()
    if args.log:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.signal_at:
        signal_after_checkpoint(
            int(args.signal_at[0]), signal.Signals[args.signal_at[1]], 2 if args.twice else 1, args.to_group
        )
    runs_dir, overrides, nan_at, prune_at = args.runs_dir, args.overrides, args.nan_at, args.prune_at
    cfg = tiny_config(*overrides)

    def validated(epoch: int, top1: float) -> bool:
        with open(runs_dir / f"hook-calls-rank{os.environ.get('RANK', '0')}.txt", "a") as calls:
            calls.write(f"{epoch} {top1}\n")
        return epoch == prune_at

    hooks = Hooks(validated=validated if prune_at is not None else None)
    from tdsclip.runlock import RunLocked

    try:
        outcome = run_config(
            cfg,
            preset="test",
            runs_dir=runs_dir,
            data_builder=lambda c, e: build(c, e, nan_at),
            hooks=hooks,
            wait=args.wait,
        )
    except RunLocked as error:
        print(f"refused: {error}", file=sys.stderr)
        sys.exit(5)
    print(json.dumps({"status": outcome.status, "path": str(outcome.path)}))
    sys.exit({"stopped": 3, "pruned": 4}.get(outcome.status, 0))


if __name__ == "__main__":
    main()
