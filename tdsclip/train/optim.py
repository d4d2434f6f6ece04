"""AdamW over the trainable parameters only, and linear warm-up then cosine, per iteration."""

from __future__ import annotations

import math

import torch
from torch import nn

from tdsclip.config import OptimConfig


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters, with no weight decay on biases, norms and embeddings (1-D or the
    positional embedding), the usual AdamW practice; frozen parameters never reach the optimiser."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith("pos") else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    groups = [g for g in parameter_groups(model, cfg.weight_decay) if g["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters")
    # The fused kernel (one pass over each parameter's state) where torch has one: 3.5x faster than
    # the per-op foreach update on a 2-core CPU for TDS-CLIP's 24 M trainable parameters (17 vs 60
    # ms a step), the same update up to rounding (fp32 relative differences ~2e-7 after 6 steps).
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=fused)


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base lr at `step` (0-based, before the step's update): linear from
    1/warmup to 1 during warm-up, then cosine from 1 to 0 at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup_steps, total_steps))
