"""The run's data as the trainer and the planner see it: training subsets and remembered manifests."""

import subprocess
import sys

import pytest

from tdsclip.config import ConfigError, DataConfig, parse_layer_spec
from tdsclip.data.dataset import build_dataset
from tdsclip.data.locate import planned_manifest, run_manifest

SYNTH = dict(dataset="synthetic", synthetic_classes=6, synthetic_videos_per_class=8, num_workers=0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def test_train_fraction_keeps_a_class_balanced_nested_subset(cache):
    full = build_dataset(DataConfig(**SYNTH, cache_dir=cache), "train", 1)
    half = build_dataset(DataConfig(**SYNTH, cache_dir=cache, train_fraction=0.5), "train", 1)
    third = build_dataset(DataConfig(**SYNTH, cache_dir=cache, train_fraction=0.34), "train", 1)
    assert len(full) == 36 and len(half) == 18 and len(third) == 12  # 6 training videos per class
    assert {s.path for s in third.samples} <= {s.path for s in half.samples} <= {s.path for s in full.samples}
    assert sorted(s.label for s in half.samples) == sorted(list(range(6)) * 3)
    assert len({full.info.manifest, half.info.manifest, third.info.manifest}) == 3
    other_seed = build_dataset(DataConfig(**SYNTH, cache_dir=cache, train_fraction=0.5, subset_seed=1), "train", 1)
    assert {s.path for s in other_seed.samples} != {s.path for s in half.samples}


def test_planned_manifest_is_what_the_last_build_computed(cache, tmp_path):
    cfg = DataConfig(**SYNTH, cache_dir=cache, train_fraction=0.5)
    assert planned_manifest(DataConfig(**SYNTH, cache_dir=str(tmp_path))) is None, "data not generated: no manifest"
    train, val = build_dataset(cfg, "train", 1), build_dataset(cfg, "val", 1)
    assert planned_manifest(cfg) == run_manifest(train.info.manifest, val.info.manifest)
    unseen = DataConfig(**SYNTH, cache_dir=cache, train_fraction=0.25)
    assert planned_manifest(unseen) is None, "a subset never built has no remembered digest"


def test_planned_manifest_needs_no_torch(cache):
    code = ("import sys; from tdsclip.config import DataConfig; from tdsclip.data.locate import planned_manifest; "
            f"print(planned_manifest(DataConfig(**{SYNTH!r}, cache_dir={cache!r}))); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_real_dataset_without_locations_has_no_planned_manifest():
    assert planned_manifest(DataConfig(dataset="ssv2")) is None


@pytest.mark.parametrize("layers, expected", [(12, ({0, 1, 2, 3, 4, 5}, {6, 7, 8, 9, 10, 11})), (4, ({0, 1}, {2, 3}))])
def test_table_ix_halves_follow_the_depth(layers, expected):
    assert parse_layer_spec("first-half", layers) == expected[0]
    assert parse_layer_spec("second-half", layers) == expected[1]
    assert parse_layer_spec("1-6", 12) == parse_layer_spec("first-half", 12)


def test_bad_fraction_is_one_line():
    with pytest.raises(ConfigError, match=r"data.train_fraction: expected a fraction in \(0, 1\], got 0"):
        DataConfig(train_fraction=0)


def test_a_subset_built_first_keeps_its_digest_when_the_full_split_is_counted(tmp_path):
    small = DataConfig(**SYNTH, cache_dir=str(tmp_path), train_fraction=0.2)
    sub_train, val = build_dataset(small, "train", 1), build_dataset(small, "val", 1)
    build_dataset(DataConfig(**SYNTH, cache_dir=str(tmp_path)), "train", 1)  # counts the other videos
    assert planned_manifest(small) == run_manifest(sub_train.info.manifest, val.info.manifest)
