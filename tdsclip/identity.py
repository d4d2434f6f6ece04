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

A released checkpoint evaluated as a table's row (experiments.run --released) is a run of its own
kind, "released": its id hashes the kind, the file's sha256 (which decides the model, its input
size included), the class list it follows, the data config (what is evaluated, and how) and the
precision, never the model or training keys of the row it stands for (`released_run_id`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tdsclip.config import RECOMPUTE_KNOBS, ConfigError, RunConfig, flatten

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
    *(f"model.{knob}" for knob in RECOMPUTE_KNOBS),
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


def _hash(payload: dict[str, object]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def run_id(cfg: RunConfig, manifest: str) -> str:
    return _hash({"config": identity(cfg), "manifest": manifest, "recipe_version": RECIPE_VERSION})


RELEASED = "released"
"""The kind of a run that evaluates one of the authors' released checkpoints (tags: kind)."""


def released_identity(cfg: RunConfig, sha256: str, classes_sha256: str = "") -> dict[str, object]:
    """What identifies the evaluation of a released checkpoint: the file and class list by their
    contents, the data config (data.input_size is the file's tower's, so the file decides it) and
    the precision."""
    flat = {k: v for k, v in identity(cfg).items() if k.startswith("data.") and k != "data.input_size"}
    flat["train.precision"] = cfg.train.precision
    flat["released.sha256"] = sha256
    flat["released.classes"] = f"sha256:{classes_sha256}" if classes_sha256 else "alphabetical"
    return flat


def released_run_id(cfg: RunConfig, manifest: str, sha256: str, classes_sha256: str = "") -> str:
    """The run id of a released checkpoint evaluated on `cfg`'s data (the row's config or the
    evaluated one: the same id)."""
    return _hash(
        {
            "kind": RELEASED,
            "config": released_identity(cfg, sha256, classes_sha256),
            "manifest": manifest,
            "recipe_version": RECIPE_VERSION,
        }
    )


def cached_sha256(path: str | os.PathLike, cache_dir: Path | None = None) -> str:
    """file_sha256, remembered in the cache folder (sha256.json) by absolute path, size and
    modification time: a plan re-reads no multi-GB checkpoint it hashed before."""
    from tdsclip.data.manifest import default_cache_dir
    from tdsclip.records import RecordError, read_json, write_json_atomic

    path = Path(path).expanduser().resolve()
    stat = path.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cache = (cache_dir or default_cache_dir()) / "sha256.json"
    try:
        known = read_json(cache) if cache.exists() else {}
    except RecordError:
        known = {}  # a damaged cache is rebuilt
    entry = known.get(str(path))
    if isinstance(entry, dict) and all(entry.get(k) == v for k, v in stamp.items()) and entry.get("sha256"):
        return str(entry["sha256"])
    digest = file_sha256(str(path))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache, {**known, str(path): {**stamp, "sha256": digest}})
    except OSError:
        pass  # a read-only cache costs a re-read next time, nothing else
    return digest
