"""The data section of the run config: recipe defaults and one-line errors for bad values."""

import pytest

from tdsclip.config import ConfigError, RunConfig, apply_overrides, from_dict, to_dict


def test_data_defaults_follow_table_xiii_for_something_something():
    data = RunConfig().data
    assert data.num_sample == 2 and data.randaugment == "rand-m7-n4-mstd0.5-inc1"
    assert data.resize == (256, 320) and data.flip == 0.5 and data.grayscale == 0.0
    assert (data.test_clips, data.test_crops) == (2, 3) and data.max_corrupt_fraction == 0.01


def test_kinetics_recipe_is_expressible_as_overrides_and_round_trips():
    cfg = apply_overrides(
        RunConfig(),
        [
            "data.dataset=k400",
            "data.resize=256",
            "data.grayscale=0.2",
            "data.randaugment=",
            "data.test_clips=4",
            "data.root=/data/k400",
            "data.train_annotations=/data/k400/train.csv",
        ],
    )
    assert cfg.data.resize == (256,) and cfg.data.randaugment == "" and cfg.data.test_clips == 4
    assert from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.num_sample=0", "data.num_sample: expected >= 1, got 0"),
        ("data.randaugment=rand-x1", "data.randaugment: expected timm's format like 'rand-m7-n4-mstd0.5-inc1'"),
        ("data.randaugment=augmix-m5", "got 'augmix-m5'"),
        ("data.resize=256,320,3", "data.resize: expected height,width or one short side, in pixels, got (256, 320, 3)"),
        ("data.resize=0", "data.resize: expected height,width or one short side"),
        ("data.flip=1.5", "data.flip: expected a probability in [0, 1], got 1.5"),
        ("data.grayscale=-0.1", "data.grayscale: expected a probability in [0, 1], got -0.1"),
        ("data.test_clips=0", "data.test_clips: expected >= 1, got 0"),
        ("data.test_crops=2", "data.test_crops: expected 1 or 3, got 2"),
        ("data.max_corrupt_fraction=2", "data.max_corrupt_fraction: expected a fraction in [0, 1], got 2.0"),
        ("data.resize=big", "data.resize: expected comma-separated ints, got 'big'"),
    ],
)
def test_bad_data_values_are_one_line_errors(override, message):
    with pytest.raises(ConfigError) as error:
        apply_overrides(RunConfig(), [override])
    assert message in str(error.value) and "\n" not in str(error.value)
