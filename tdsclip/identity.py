"""Run identity: run_id = hash(resolved config, data manifest, recipe/model version).

What a run computes decides its id; where files live and how it is babysat do not:
- left out: dataset locations (the data manifest hash identifies the data itself), the cache
  folder, the number of data workers (sampling does not depend on it), logging and checkpoint
  cadence, the stop signal, activation checkpointing and the model's recompute knobs (all exact);
- model.weights is replaced by a fingerprint: file name and size, or the pretrained tag.
RECIPE_VERSION is bumped deliberately when a change to the code changes what a config trains
(new defaults, a fixed bug in the model or the recipe). The git SHA is recorded with each run as a
tag but is not part of its identity, so an unrelated commit does not orphan finished runs.
"""

from __future__ import annotations

import hashlib
import json
import os

from tdsclip.config import RunConfig, flatten

RECIPE_VERSION = 1
NOT_IDENTITY = (
    "data.root", "data.train_root", "data.val_root", "data.train_annotations", "data.val_annotations", "data.labels",
    "data.train_reference", "data.val_reference", "data.reference_labels", "data.cache_dir",
    "data.num_workers", "train.log_every", "train.checkpoint_every", "train.stop_signal", "train.checkpoint_blocks",
    "model.td_recompute", "model.proj_recompute",
)


def weights_fingerprint(weights: str) -> str:
    if weights in ("", "random"):
        return "random"
    path = os.path.expanduser(weights)
    if os.path.isfile(path):
        return f"file:{os.path.basename(path)}:{os.path.getsize(path)}"
    return f"tag:{weights}"


def identity(cfg: RunConfig) -> dict[str, object]:
    """The flat config that identifies a run."""
    flat = {k: v for k, v in flatten(cfg).items() if k not in NOT_IDENTITY}
    flat["model.weights"] = weights_fingerprint(cfg.model.weights)
    return flat


def run_id(cfg: RunConfig, manifest: str) -> str:
    payload = {"config": identity(cfg), "manifest": manifest, "recipe_version": RECIPE_VERSION}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
