"""Which samples a run's splits hold and the run's data manifest, without torch.

The trainer (through `build_dataset`) and the experiment planner share this: the planner must say
which run id a row will have in well under a second, so it reads the manifest digest the last
real build remembered in the data cache (`remembered_digest`) instead of listing the dataset.

Each split has its root (`data.train_root`, `data.val_root`, both defaulting to `data.root`), and
every split indexes the training split's classes (`data.labels` when given, else the training
file's own list), so a validation file lacking some classes cannot shift the others' indices.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

from tdsclip.config import DataConfig
from tdsclip.data.annotations import Found, find_samples, read_split
from tdsclip.data.errors import DataError
from tdsclip.data.manifest import Manifest, default_cache_dir, manifest, remembered_digest

Split = Literal["train", "val", "test"]


def cache_dir(cfg: DataConfig) -> Path:
    return Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()


def locate(cfg: DataConfig, split: Split, generate: bool = True) -> tuple[str, str, str, str] | None:
    """(format, root, annotation file, labels file) of a split. The synthetic set is made on first
    use; with generate=False a synthetic set not made yet gives None."""
    if cfg.dataset == "synthetic":
        from tdsclip.data.synth import SynthSpec, ensure_synthetic, synthetic_folder

        spec = SynthSpec(cfg.synthetic_format, cfg.synthetic_classes, cfg.synthetic_videos_per_class)
        if not generate and not (synthetic_folder(cache_dir(cfg), spec) / "synthetic.json").exists():
            return None
        data = ensure_synthetic(cache_dir(cfg), spec)
        return data.format, data.root, data.train if split == "train" else data.val, data.labels
    key = "train_annotations" if split == "train" else "val_annotations"
    annotations = getattr(cfg, key)
    root_key = "train_root" if split == "train" else "val_root"
    root = getattr(cfg, root_key) or cfg.root
    if not root:
        raise DataError(
            f"data.root is empty: set data.root (or data.{root_key}) to the folder holding the "
            f"{'training' if split == 'train' else 'validation'} videos or frame folders"
        )
    if not annotations:
        raise DataError(
            f"data.{key} is empty: set it to the {'training' if split == 'train' else 'validation'} split file"
        )
    return cfg.dataset, os.path.expanduser(root), os.path.expanduser(annotations), os.path.expanduser(cfg.labels)


def variant(cfg: DataConfig, split: Split) -> str:
    """The part of the split a run uses: '' for all of it, 'fraction=0.05,seed=0' for a subset."""
    if split == "train" and cfg.train_fraction < 1:
        return f"fraction={cfg.train_fraction:g},seed={cfg.subset_seed}"
    return ""


def found_samples(cfg: DataConfig, split: Split, workers: int | None = None) -> tuple[Found, Manifest, int]:
    """The samples of `split` the run uses (a train_fraction subset applied), their manifest, and
    how many entries the annotation file lists."""
    from tdsclip.data.subsets import choose

    fmt, root, annotations, labels = locate(cfg, split)  # type: ignore[misc] - generate=True never gives None
    if split == "train" or labels:
        listed = read_split(fmt, annotations, labels)
    else:  # no labels file: the training split's class list is the one index every split shares
        _, _, train_annotations, _ = locate(cfg, "train")
        classes = read_split(fmt, train_annotations).classes
        listed = read_split(fmt, annotations, classes=classes, classes_from=f"the training split {train_annotations}")
    found = find_samples(listed, root)
    if variant(cfg, split):
        found = Found(
            found.split, found.root, tuple(choose(found.samples, cfg.train_fraction, cfg.subset_seed)), found.missing
        )
    digest = manifest(found, cache_dir(cfg), cfg.num_workers if workers is None else workers, variant(cfg, split))
    return found, digest, len(listed.entries)


def reference_comparison(cfg: DataConfig, split: Split, found: Found, digest: Manifest) -> dict | None:
    """The split compared with its reference list (data.train_reference / data.val_reference; the
    test views use the validation one), or None when none is set."""
    from tdsclip.data.reference import compare, read_reference

    path = cfg.train_reference if split == "train" else cfg.val_reference
    if not path:
        return None
    labels = os.path.expanduser(cfg.reference_labels) if cfg.reference_labels else ""
    return compare(found, digest.frames, read_reference(os.path.expanduser(path), labels))


FINGERPRINT_KEYS = ("listed", "found", "missing", "classes", "manifest")


def fingerprint(manifest: str, train: dict, val: dict) -> dict:
    """What a run records to identify its copy of the data: counts per split, the manifest hashes and,
    where a reference list was given, the comparison's summary. `differs_from_reference` is None
    without any reference, else whether some split differs from its list (a report flags the row)."""
    splits = {"train": train, "val": val}
    references = {name: info["reference"] for name, info in splits.items() if info.get("reference")}
    differs = None if not references else any(not r["matches"] for r in references.values())
    counts = "; ".join(f"{name} {info['found']} of {info['listed']} listed videos" for name, info in splits.items())
    notes = "; ".join(f"{name} {r['summary']}" for name, r in references.items())
    return {
        "manifest": manifest,
        "splits": {name: {key: info[key] for key in FINGERPRINT_KEYS} for name, info in splits.items()},
        "reference": {
            name: {
                k: r[k]
                for k in (
                    "reference",
                    "reference_sha256",
                    "listed",
                    "found",
                    "missing",
                    "extra",
                    "frames",
                    "labels",
                    "matches",
                    "summary",
                )
            }
            for name, r in references.items()
        },
        "differs_from_reference": differs,
        "summary": f"{counts}{'; ' + notes if notes else ''}",
    }


def run_manifest(train_digest: str, val_digest: str) -> str:
    """One hash for the data a run trains and validates on."""
    return hashlib.sha256(f"{train_digest}:{val_digest}".encode()).hexdigest()[:24]


def planned_manifest(cfg: DataConfig) -> str | None:
    """The run manifest as the last real build of these splits computed it, or None when the data
    is not there or has not been read yet (then a planner can only give a provisional run id)."""
    digests = []
    for split in ("train", "val"):
        try:
            where = locate(cfg, split, generate=False)
        except DataError:
            return None
        if where is None:
            return None
        fmt, root, annotations, _ = where
        digest = remembered_digest(fmt, annotations, root, cache_dir(cfg), variant(cfg, split))
        if digest is None:
            return None
        digests.append(digest)
    return run_manifest(*digests)
