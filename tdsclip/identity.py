"""Run identity: run_id = hash(resolved config, data manifest, recipe/model version).

What a run computes decides its id; where files live and how it is babysat do not:
- left out: dataset locations (the data manifest hash identifies the data itself), the cache
  folder, the number of data workers (sampling does not depend on it), logging and checkpoint
  cadence, the stop signal, activation checkpointing and the model's recompute knobs (all exact);
- model.weights is replaced by a fingerprint: file name and size, or the pretrained tag;
- model.init_from (a checkpoint the run starts from) by the sha256 of its contents.
RECIPE_VERSION is bumped deliberately when a change to the code changes what a config trains
(new defaults, a fixed bug in the model or the recipe). Version 2: the TD-Adapter's 1x1x1
convolutions lost their biases (model.td_bias=false, as in the released code), and
model.td_bias / model.init / model.init_from became keys, so every earlier run id changed.
The git SHA is recorded with each run as a tag but is not part of its identity, so an unrelated
commit does not orphan finished runs.
"""

from __future__ import annotations

import hashlib
import json
import os

from tdsclip.config import ConfigError, RunConfig, flatten

RECIPE_VERSION = 2
NOT_IDENTITY = (
    "data.root",
    "data.train_root",
    "data.val_root",
    "data.train_annotations",
    "data.val_annotations",
    "data.labels",
    "data.train_reference",
    "data.val_reference",
    "data.reference_labels",
    "data.cache_dir",
    "data.num_workers",
    "train.log_every",
    "train.checkpoint_every",
    "train.stop_signal",
    "train.checkpoint_blocks",
    "model.td_recompute",
    "model.proj_recompute",
)


def weights_fingerprint(weights: str) -> str:
    if weights in ("", "random"):
        return "random"
    if weights == "checkpoint":
        return "checkpoint"  # the frozen weights travel with model.init_from, fingerprinted there
    path = os.path.expanduser(weights)
    if os.path.isfile(path):
        return f"file:{os.path.basename(path)}:{os.path.getsize(path)}"
    return f"tag:{weights}"


def file_sha256(path: str) -> str:
    """sha256 of a file's contents, read in chunks (checkpoints are large)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def init_fingerprint(init_from: str) -> str:
    """'' when the run starts from scratch, else 'sha256:<hex>' of the checkpoint it starts from."""
    if not init_from:
        return ""
    path = os.path.expanduser(init_from)
    if not os.path.isfile(path):
        raise ConfigError(
            f"model.init_from={init_from!r}: no such file; expected a project checkpoint "
            "(e.g. one `python -m tdsclip.model.released convert` wrote)"
        )
    return f"sha256:{file_sha256(path)}"


def identity(cfg: RunConfig) -> dict[str, object]:
    """The flat config that identifies a run."""
    flat = {k: v for k, v in flatten(cfg).items() if k not in NOT_IDENTITY}
    flat["model.weights"] = weights_fingerprint(cfg.model.weights)
    flat["model.init_from"] = init_fingerprint(cfg.model.init_from)
    return flat


def run_id(cfg: RunConfig, manifest: str) -> str:
    payload = {"config": identity(cfg), "manifest": manifest, "recipe_version": RECIPE_VERSION}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
