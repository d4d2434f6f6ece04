"""GPU-hours of a planned run, from measured FLOPs and a stated throughput (no torch).

    training MACs per clip = frozen forward + 3 x the trainable part's forward
                             (3 x the whole forward where gradients flow through the backbone)
    training               = clips per epoch (videos x repeated sampling) x epochs x MACs per clip
    evaluation             = validation videos x forward x (epochs / val_every)   single-view
                           + validation videos x views x forward                   multi-view
    hours                  = 2 x MACs / sustained throughput  (one multiply-add is two FLOPs of work)
    released checkpoint    = validation videos x views x forward                   multi-view only

The FLOPs come from the measurement cache (tdsclip/measure_cache.py); the video counts from the
official splits (tdsclip/data/official.py), or the synthetic set's plan. The default sustained A100
throughput is an assumption, shown with every estimate and overridable (--a100-tflops).
"""

from __future__ import annotations

from dataclasses import dataclass

from tdsclip.config import RunConfig
from tdsclip.data.official import video_counts as videos  # noqa: F401 - the planner's name for it

A100_SUSTAINED_TFLOPS = 125.0
"""About 40% of the A100's 312 dense bf16 TFLOP/s, typical of ViT training with data loading."""
CPU_SUSTAINED_TFLOPS = 0.1
"""What the smoke preset's tiny model sustained on 2 CPU cores (the full smoke run: about 4 minutes)."""


@dataclass(frozen=True)
class Cost:
    hours: float
    """Device-hours: GPU-hours summed over the run's GPUs, or CPU hours for a CPU run."""
    device: str
    train_pflop: float
    eval_pflop: float


def estimate(cfg: RunConfig, flops: dict, gpus: int, tflops: float) -> Cost | None:
    """The run's cost, or None when its video counts are unknown (a generic list dataset)."""
    counts = videos(cfg)
    if counts is None:
        return None
    train_videos, val_videos = counts
    forward, frozen = flops["gflops_per_view"] * 1e9, flops["backbone_gflops_per_view"] * 1e9
    per_clip = 3 * forward if flops["backbone_gets_gradients"] else frozen + 3 * (forward - frozen)
    epochs = cfg.train.epochs
    train = train_videos * cfg.data.num_sample * epochs * per_clip
    validations = epochs // cfg.train.val_every if cfg.train.val_every else 0
    views = cfg.data.test_crops * cfg.data.test_clips
    evaluation = val_videos * forward * (validations + views)
    hours = 2 * (train + evaluation) / (tflops * 1e12) / 3600
    return Cost(hours, "GPU" if gpus else "CPU", 2 * train / 1e15, 2 * evaluation / 1e15)


def estimate_evaluation(cfg: RunConfig, flops: dict, gpus: int, tflops: float) -> Cost | None:
    """The cost of the multi-view test alone (a released checkpoint evaluated, nothing trained),
    or None when the video counts are unknown."""
    counts = videos(cfg)
    if counts is None:
        return None
    views = cfg.data.test_crops * cfg.data.test_clips
    evaluation = counts[1] * views * flops["gflops_per_view"] * 1e9
    return Cost(2 * evaluation / (tflops * 1e12) / 3600, "GPU" if gpus else "CPU", 0.0, 2 * evaluation / 1e15)
