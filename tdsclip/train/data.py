"""The data a run reads, built from its config: the three datasets, the manifest, the protocol."""

from __future__ import annotations

from tdsclip.config import ConfigError, RunConfig
from tdsclip.data.dataset import FailureLog, build_dataset, collate
from tdsclip.data.locate import fingerprint, run_manifest
from tdsclip.train.distributed import DistEnv
from tdsclip.train.loop import RunData


def build_run_data(cfg: RunConfig, env: DistEnv) -> RunData:
    """Training (augmented, num_sample clips), validation (one centre view) and test views
    (test_crops x test_clips on the validation split). The manifest covers both splits."""
    m = cfg.model.sme_window
    train = build_dataset(cfg.data, "train", m)
    if len(train.classes) != cfg.model.num_classes:
        raise ConfigError(
            f"model.num_classes={cfg.model.num_classes} but {cfg.data.train_annotations or cfg.data.dataset} "
            f"has {len(train.classes)} classes; set model.num_classes={len(train.classes)}"
        )
    val = build_dataset(cfg.data, "val", m)
    test = build_dataset(cfg.data, "test", m)
    manifest = run_manifest(train.info.manifest, val.info.manifest)
    crops = {1: "centre crop", 3: "left/centre/right crops"}[cfg.data.test_crops]
    return RunData(
        train=train,
        val_single=val,
        val_views=test,
        views=test.views,
        manifest=manifest,
        collate=collate,
        failure_log=lambda: FailureLog(len(train), cfg.data.max_corrupt_fraction),
        protocol={
            "val": "1 view per video: centre clip, centre crop (single-view validation)",
            "test": f"{cfg.data.test_crops} {crops} x {cfg.data.test_clips} clips = {test.views} views per video",
        },
        info={
            "train": train.info.as_dict(),
            "val": val.info.as_dict(),
            "fingerprint": fingerprint(manifest, train.info.as_dict(), val.info.as_dict()),
        },
    )
