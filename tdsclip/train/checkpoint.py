"""Checkpoints that survive anything: atomic writes, safe loads, the full training state.

A checkpoint is one torch.save'd dict of tensors, numbers, strings, lists and dicts only, so
`torch.load(weights_only=True)` reads it (no pickled classes). It holds the model's state without
its frozen parameters (those come from the backbone's weights file), the optimiser, scheduler and
grad-scaler states, the position in training (step, epoch, batch within the epoch), the best
metric, and the RNG states (python, numpy, torch, CUDA) converted to tensors.

Writes go to a temporary file in the same directory, are fsynced, then renamed over the target and
the directory fsynced: a crash at any moment leaves either the old or the new file, never a torn one.
Retention: `latest.pt` (every save) and `best.pt` (when the metric improves) in the run directory.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tdsclip.atomic import atomic_write

LATEST, BEST = "latest.pt", "best.pt"


class CheckpointError(RuntimeError):
    """An unreadable or mismatched checkpoint; one line naming the file."""


def atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda handle: torch.save(obj, handle))


def load(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as error:  # torch.load raises many kinds on damaged files
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from None
    if isinstance(state, dict) and "model_state_dict" in state:
        raise CheckpointError(
            f"checkpoint {path} is one of the authors' released checkpoints (epoch, model_state_dict, "
            "optimizer_state_dict), not a tdsclip one: evaluate it with --released, or convert it with "
            "python -m tdsclip.model.released convert SRC DST"
        )
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} holds no training state (no 'model' entry)")
    return state


# ----------------------------------------------------------------------------- model state


def frozen_parameter_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict minus frozen parameters: trainable weights and every buffer
    (BatchNorm running statistics included)."""
    frozen = frozen_parameter_names(model)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k not in frozen}


def load_model_state(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, require_frozen: bool = False
) -> None:
    """Load a checkpoint's model state: every trainable weight and buffer must be there; the frozen
    parameters may be (a converted released checkpoint holds them), all of them or none, and must be
    with `require_frozen` (model.weights=checkpoint: no other source has them)."""
    frozen = frozen_parameter_names(model)
    held = frozen & set(state)
    if (held or require_frozen) and held != frozen:
        absent = sorted(frozen - held)
        raise CheckpointError(
            f"checkpoint {source} holds {len(held)} of the model's {len(frozen)} frozen parameters (e.g. {absent[0]} is "
            f"missing){'; model.weights=checkpoint needs them all' if require_frozen else ''}"
        )
    current = model.state_dict()
    for key, value in state.items():
        if key in current and current[key].shape != value.shape:
            raise CheckpointError(
                f"checkpoint {source} does not fit this model: {key} is {tuple(value.shape)} in the checkpoint, "
                f"{tuple(current[key].shape)} in the model; was it made with another model config?"
            )
    result = model.load_state_dict(state, strict=False)
    missing = set(result.missing_keys) - frozen
    if missing or result.unexpected_keys:
        example = sorted(missing)[:1] or result.unexpected_keys[:1]
        raise CheckpointError(
            f"checkpoint {source} does not fit this model: {len(missing)} missing and "
            f"{len(result.unexpected_keys)} unexpected entries (e.g. {example[0]}); was it made with another model config?"
        )


def init_from(model: nn.Module, path: str, weights: str) -> dict[str, Any]:
    """Start a run from a checkpoint's model state (model.init_from), e.g. a converted released
    model; returns the checkpoint's `extra` (its config, and where a released model came from)."""
    state = load(Path(path).expanduser())
    load_model_state(model, state["model"], path, require_frozen=weights == "checkpoint")
    return state.get("extra", {})


def load_for_evaluation(model: nn.Module, model_cfg: Any, state: dict[str, torch.Tensor], source: str) -> None:
    """A run's checkpoint into a freshly built model: the run's model.init_from first when it has
    one (the frozen weights of a model.weights=checkpoint run live there), then the checkpoint."""
    if model_cfg.init_from:
        init_from(model, model_cfg.init_from, model_cfg.weights)
    load_model_state(model, state, source, require_frozen=model_cfg.weights == "checkpoint" and not model_cfg.init_from)


# ----------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain numbers (weights_only-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python["version"], tuple(int(x) for x in python["internal"].tolist()), python["gauss"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- save / resume


def save_training_state(
    run_dir: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    step: int,
    epoch: int,
    batch_in_epoch: int,
    best_metric: float | None,
    is_best: bool,
    extra: dict[str, Any] | None = None,
) -> Path:
    state = {
        "model": model_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "step": step,
        "epoch": epoch,
        "batch_in_epoch": batch_in_epoch,
        "best_metric": best_metric,
        "rng": rng_state(),
        "extra": extra or {},
    }
    latest = Path(run_dir) / LATEST
    atomic_save(state, latest)
    if is_best:
        atomic_save(state, Path(run_dir) / BEST)
    return latest


def restore_training_state(
    path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any
) -> dict[str, Any]:
    """Load everything back; returns the position fields (step, epoch, batch_in_epoch, best_metric, extra)."""
    state = load(path)
    load_model_state(model, state["model"], str(path))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return {key: state[key] for key in ("step", "epoch", "batch_in_epoch", "best_metric", "extra")}
