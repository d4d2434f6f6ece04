"""The dataset a run reads: items of every format, repeated sampling, seeded workers, distinct test
views, unreadable samples replaced and counted in training and skipped in evaluation, missing
samples recorded, and the manifest hash with its cache."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from data_helpers import copy_dataset

import tdsclip.data.manifest as manifest_module
from tdsclip.config import DataConfig, RunConfig, apply_overrides
from tdsclip.data.dataset import FailureLog, build_dataset, guarded, make_loader
from tdsclip.data.errors import DataError
from tdsclip.data.synth import SynthSpec, load_synthetic, write_synthetic

SPEC = dict(classes=6, videos_per_class=3, frames=16, width=64, height=48)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    return {fmt: write_synthetic(SynthSpec(format=fmt, **SPEC), folder / fmt) for fmt in ("ssv1", "ssv2", "k400")}


def _config(data, tmp_path: Path, **overrides) -> DataConfig:
    values = {
        "data.dataset": data.format,
        "data.root": data.root,
        "data.train_annotations": data.train,
        "data.val_annotations": data.val,
        "data.labels": data.labels,
        "data.input_size": 32,
        "data.resize": "40,48",
        "data.frames": 4,
        "data.cache_dir": str(tmp_path / "cache"),
        "data.num_workers": 0,
        **{f"data.{k}": v for k, v in overrides.items()},
    }
    return apply_overrides(RunConfig(), values).data


@pytest.mark.parametrize("fmt", ["ssv1", "ssv2", "k400"])
def test_training_items_hold_num_sample_augmented_clips_of_windows(datasets, tmp_path, fmt):
    train = build_dataset(_config(datasets[fmt], tmp_path), "train", local_frames=3)
    assert len(train) == 12 and train.views == 2
    assert (train.info.listed, train.info.found, train.info.missing, train.info.classes) == (12, 12, 0, 6)
    torch.manual_seed(0)
    item = train[0]
    assert item.clips.shape == (2, 3, 4, 3, 32, 32) and item.labels.shape == (2,)
    assert not torch.equal(item.clips[0], item.clips[1]), "two independently augmented clips"
    assert item.video_id == train.samples[0].id and item.failed == ()


def test_seeded_loader_gives_the_same_batches_in_worker_processes(datasets, tmp_path):
    train = build_dataset(_config(datasets["ssv2"], tmp_path), "train", local_frames=3)

    def first_batch(seed):
        return next(iter(make_loader(train, batch_size=3, shuffle=True, num_workers=2, seed=seed)))

    a, b, c = first_batch(7), first_batch(7), first_batch(8)
    assert a.clips.shape == (6, 3, 4, 3, 32, 32) and a.index.tolist()[::2] == a.index.tolist()[1::2]
    assert torch.equal(a.clips, b.clips) and torch.equal(a.labels, b.labels) and a.video_ids == b.video_ids
    assert not torch.equal(a.clips, c.clips)


def test_test_views_are_k_clips_by_three_crops_all_distinct(datasets, tmp_path):
    test = build_dataset(_config(datasets["ssv2"], tmp_path, test_clips=2, test_crops=3), "test", local_frames=5)
    assert test.views == 6
    for index in range(len(test)):
        item = test[index]
        assert item.clips.shape == (6, 3, 4, 5, 32, 32) and (item.labels == test.samples[index].label).all()
        flat = item.clips.flatten(1)
        assert all(not torch.equal(flat[i], flat[j]) for i in range(6) for j in range(i + 1, 6))
        centre_of_clip_1, centre_of_clip_2 = item.clips[1], item.clips[4]
        assert not torch.equal(centre_of_clip_1[:, :, 2], centre_of_clip_2[:, :, 2]), "the two clips differ in time"
    batch = next(iter(make_loader(test, batch_size=2, shuffle=False)))
    assert batch.index.tolist() == [0] * 6 + [1] * 6, "views carry their video's index for the ensemble"


def test_unreadable_training_samples_are_replaced_counted_and_stop_the_run_past_the_fraction(datasets, tmp_path):
    data = copy_dataset(datasets["ssv2"], tmp_path / "copy")
    train = build_dataset(_config(data, tmp_path), "train", local_frames=3)
    bad = [Path(data.root) / train.samples[i].path for i in (1, 6)]
    bad[0].write_bytes(b"not a video at all" * 10)
    bad[1].write_bytes(bad[1].read_bytes()[:300])  # truncated
    bad_ids = {p.stem for p in bad}
    tolerant = FailureLog(len(train), max_fraction=0.5)
    batches = list(guarded(make_loader(train, batch_size=4, shuffle=False, num_workers=2, seed=0), tolerant))
    assert sum(len(b.clips) for b in batches) == 2 * len(train), "every item still brings num_sample clips"
    assert set(tolerant.times) == bad_ids
    strict = FailureLog(len(train), max_fraction=0.1)
    with pytest.raises(DataError) as error:
        for batch in batches:
            strict.add(batch.failed)
    message = str(error.value)
    assert "\n" not in message and "2 of 12 training videos (16.7%) are unreadable" in message
    assert "data.max_corrupt_fraction=0.1" in message and all(i in message for i in bad_ids)


def test_evaluation_skips_and_counts_unreadable_samples(datasets, tmp_path):
    data = copy_dataset(datasets["k400"], tmp_path / "copy")
    val = build_dataset(_config(data, tmp_path), "val", local_frames=1)
    victim = val.samples[2]
    (Path(data.root) / victim.path).write_bytes(b"\x00" * 100)
    failures = FailureLog(len(val))
    views = sum(len(batch.clips) for batch in guarded(make_loader(val, batch_size=4, shuffle=False), failures))
    assert views == len(val) - 1 and failures.summary() == {"unreadable": 1, "unreadable_ids": [victim.id]}


def test_missing_samples_are_left_out_and_recorded(datasets, tmp_path):
    data = copy_dataset(datasets["ssv1"], tmp_path / "copy")
    val = build_dataset(_config(data, tmp_path), "val", local_frames=1)
    shutil.rmtree(Path(data.root) / val.samples[0].path)
    again = build_dataset(_config(data, tmp_path), "val", local_frames=1)
    assert (again.info.listed, again.info.found, again.info.missing) == (6, 5, 1)
    assert again.info.missing_ids == (val.samples[0].id,) and again.info.manifest != val.info.manifest


def test_manifest_is_cached_and_changes_with_what_the_run_would_see(datasets, tmp_path, monkeypatch):
    data = copy_dataset(datasets["ssv2"], tmp_path / "copy")
    cfg = _config(data, tmp_path)
    counted = []
    real = manifest_module.frame_count
    monkeypatch.setattr(manifest_module, "frame_count", lambda *a: counted.append(a) or real(*a))
    first = build_dataset(cfg, "val", local_frames=1).info.manifest
    assert len(counted) == 6 and list((tmp_path / "cache" / "manifests").glob("*.json"))
    assert build_dataset(cfg, "val", local_frames=1).info.manifest == first and len(counted) == 6, "cached"
    shutil.move(str(tmp_path / "copy"), tmp_path / "moved")
    relocated = _config(load_synthetic(tmp_path / "moved"), tmp_path)
    assert build_dataset(relocated, "val", local_frames=1).info.manifest == first, "same data elsewhere, same hash"
    records = json.loads(Path(relocated.val_annotations).read_text())
    records[0]["template"], records[1]["template"] = records[1]["template"], records[0]["template"]
    Path(relocated.val_annotations).write_text(json.dumps(records))
    relabelled = build_dataset(relocated, "val", local_frames=1).info.manifest
    assert relabelled != first
    (Path(relocated.root) / "provenance.json").write_text(json.dumps({"decoder": "other", "videos": {}}))
    assert build_dataset(relocated, "val", local_frames=1).info.manifest != relabelled


def test_missing_settings_are_one_line_errors(datasets, tmp_path):
    with pytest.raises(DataError, match="data.root is empty: set data.root"):
        build_dataset(_config(datasets["ssv2"], tmp_path, root=""), "train", local_frames=5)
    with pytest.raises(DataError, match="data.val_annotations is empty"):
        build_dataset(_config(datasets["ssv2"], tmp_path, val_annotations=""), "val", local_frames=5)
    with pytest.raises(DataError, match=r"expected an odd number >= 1 \(1, 3 or 5\), got 4"):
        build_dataset(_config(datasets["ssv2"], tmp_path), "val", local_frames=4)
