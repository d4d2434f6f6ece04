"""The run's data as the trainer and the planner see it: training subsets and remembered manifests."""

import subprocess
import sys

import pytest

from tdsclip.config import ConfigError, DataConfig, apply_overrides, parse_layer_spec
from tdsclip.data.dataset import build_dataset
from tdsclip.data.errors import DataError
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
    code = (
        "import sys; from tdsclip.config import DataConfig; from tdsclip.data.locate import planned_manifest; "
        f"print(planned_manifest(DataConfig(**{SYNTH!r}, cache_dir={cache!r}))); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
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


# The case: a 6-class Kinetics training CSV, a 3-class validation CSV, no data.labels.
TRAIN_CSV = """label,youtube_id,time_start,time_end,split
abseiling,aaaaaaaaaaa,0.0,10.0,train
"making a cake, or not",bbbbbbbbbbb,0.0,10.0,train
massaging person's head,ccccccccccc,0.0,10.0,train
passing American football (in game),ddddddddddd,0.0,10.0,train
"tying knot (not on a tie)",eeeeeeeeeee,0.0,10.0,train
zumba,fffffffffff,0.0,10.0,train
"""
VAL_CSV = """label,youtube_id,time_start,time_end,split
"tying knot (not on a tie)",ggggggggggg,5.0,15.0,val
abseiling,hhhhhhhhhhh,5.0,15.0,val
zumba,iiiiiiiiiii,5.0,15.0,val
"""


def _kinetics(tmp_path, val_text=VAL_CSV, separate_roots=True):
    """Kinetics in the common videos_train/ + videos_val/ layout (clips as extracted frame folders)."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "train.csv").write_text(TRAIN_CSV)
    (tmp_path / "val.csv").write_text(val_text)
    for split, text in (("train", TRAIN_CSV), ("val", val_text)):
        for line in text.splitlines()[1:]:
            youtube_id, start, end = line.rsplit(",", 4)[1:4]
            folder = (
                tmp_path
                / (f"videos_{split}" if separate_roots else "videos")
                / f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}"
            )
            folder.mkdir(parents=True)
    roots = (
        dict(train_root=str(tmp_path / "videos_train"), val_root=str(tmp_path / "videos_val"))
        if separate_roots
        else dict(root=str(tmp_path / "videos"))
    )
    return DataConfig(
        dataset="k400",
        train_annotations=str(tmp_path / "train.csv"),
        val_annotations=str(tmp_path / "val.csv"),
        cache_dir=str(tmp_path / "cache"),
        num_workers=0,
        **roots,
    )


def test_validation_uses_the_training_class_list_from_per_split_roots(tmp_path):
    from tdsclip.data.locate import found_samples

    cfg = _kinetics(tmp_path)
    train, _, _ = found_samples(cfg, "train")
    val, _, _ = found_samples(cfg, "val")
    assert val.root == str(tmp_path / "videos_val") and len(val.samples) == 3 and not val.missing
    assert val.split.classes == train.split.classes
    names = {s.id: train.split.classes[s.label] for s in val.samples}
    assert names == {
        "ggggggggggg_000005_000015": "tying knot (not on a tie)",
        "hhhhhhhhhhh_000005_000015": "abseiling",
        "iiiiiiiiiii_000005_000015": "zumba",
    }
    same_root = _kinetics(tmp_path / "one", separate_roots=False)
    assert found_samples(same_root, "val")[0].split.classes == train.split.classes


def test_a_validation_class_training_lacks_stops_the_run_naming_it(tmp_path):
    from tdsclip.data.locate import found_samples

    cfg = _kinetics(tmp_path, VAL_CSV + "juggling fire,jjjjjjjjjjj,1.0,11.0,val\n")
    with pytest.raises(
        DataError,
        match=r"val.csv: class 'juggling fire' is not among the 6 classes of the training "
        r"split .*train.csv: expected every class of this split there$",
    ):
        found_samples(cfg, "val")
    with pytest.raises(
        DataError, match=r"data.root is empty: set data.root \(or data.val_root\) to the folder holding the validation"
    ):
        found_samples(
            DataConfig(dataset="k400", train_root="/t", train_annotations="/t.csv", val_annotations="/v.csv"), "val"
        )


def test_per_split_roots_come_from_the_locations_file_or_environment(tmp_path):
    from tdsclip import locations
    from tdsclip.config import RunConfig
    from tdsclip.identity import run_id

    cfg = apply_overrides(RunConfig(), ["data.dataset=k400", "model.weights=random"])
    file = tmp_path / "locations.toml"
    file.write_text(
        '[datasets.k400]\ntrain_root = "/k/videos_train"\nval_root = "/k/videos_val"\n'
        'train = "/k/train.csv"\nval = "/k/val.csv"\nval_reference = "/lists/val.txt"\n'
    )
    env = {"TDSCLIP_LOCATIONS": str(file)}
    filled = locations.fill(cfg, require_weights=True, environ=env)
    assert (filled.data.root, filled.data.train_root, filled.data.val_root) == ("", "/k/videos_train", "/k/videos_val")
    assert filled.data.val_reference == "/lists/val.txt"
    moved = locations.fill(cfg, require_weights=True, environ={**env, "TDSCLIP_K400_VAL_ROOT": "/fast/val"})
    assert moved.data.val_root == "/fast/val" and run_id(moved, "m") == run_id(filled, "m"), (
        "locations are not identity"
    )
    file.write_text('[datasets.k400]\ntrain_root = "/k/videos_train"\ntrain = "/k/train.csv"\nval = "/k/val.csv"\n')
    with pytest.raises(
        ConfigError,
        match=r"data.root for k400: set TDSCLIP_K400_ROOT or \[datasets.k400\] root "
        r"\(or train_root and val_root for splits in separate folders\) -- .*locations.toml",
    ):
        locations.fill(cfg, require_weights=True, environ=env)
    file.write_text('[datasets.k400]\nroot = "/k"\ntrain = "/k/train.csv"\nval = "/k/val.csv"\nval_rot = "/k/v"\n')
    with pytest.raises(ConfigError, match=r"\[datasets.k400\] has unknown key 'val_rot'; did you mean 'val_root'\?"):
        locations.fill(cfg, require_weights=True, environ=env)
