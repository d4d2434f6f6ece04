"""Augmentation: one set of random parameters per clip, the label-swapping flip, three test crops,
CLIP normalisation, the resize rules of each dataset."""

import numpy as np
import pytest
import torch
from data_helpers import motion_video

from tdsclip.data.errors import DataError
from tdsclip.data.transforms import MEAN, STD, EvalTransform, TrainTransform, resized_shape

RECIPE = "rand-m7-n4-mstd0.5-inc1"


def _square_moving_right(frames: int = 8, height: int = 96, width: int = 128) -> np.ndarray:
    video = np.zeros((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        x = 24 + 8 * t
        video[t, 32:64, x : x + 32] = 255
    return video


def _centroid_x(clip: torch.Tensor, frame: int) -> float:
    """x centre of the bright pixels in one output frame (clip is (3, F, S, S), normalised)."""
    bright = (clip[:, frame] * STD.view(3, 1, 1) + MEAN.view(3, 1, 1)).mean(0) > 0.5
    return float(bright.nonzero()[:, 1].float().mean()) if bright.any() else float("nan")


def test_every_frame_of_a_clip_gets_the_same_random_parameters():
    frame = motion_video(1, 128, 96)[0]
    still = np.repeat(frame[None], 8, axis=0)
    transform = TrainTransform(64, (80, 100), RECIPE, flip=0.5, grayscale=0.5)
    torch.manual_seed(0)
    outputs = [transform(still, 0)[0] for _ in range(6)]
    for clip in outputs:
        assert clip.shape == (3, 8, 64, 64) and clip.dtype == torch.float32
        assert torch.equal(clip, clip[:, :1].expand_as(clip)), "identical frames stay identical"
    assert len({clip[:, 0].sum().item() for clip in outputs}) == 6, "each clip draws its own parameters"


def test_same_torch_seed_same_augmentation_and_global_generators_untouched():
    video = motion_video(4, 128, 96)
    transform = TrainTransform(64, (80, 100), RECIPE, flip=0.5, grayscale=0.2)
    state = np.random.get_state()[1].copy()
    torch.manual_seed(3)
    first = transform(video, 1)
    torch.manual_seed(3)
    second = transform(video, 1)
    assert torch.equal(first[0], second[0]) and first[1] == second[1]
    assert np.array_equal(np.random.get_state()[1], state), "RandAugment's reseeding is undone"


def test_flip_mirrors_the_motion_and_swaps_left_right_labels():
    video = _square_moving_right()
    pairs = {0: 1, 1: 0}
    checked = 0
    for seed in range(12):
        torch.manual_seed(seed)
        flipped, label = TrainTransform(64, (96, 128), "", flip=1.0, flip_labels=pairs)(video, 0)
        torch.manual_seed(seed)
        plain, same = TrainTransform(64, (96, 128), "", flip=0.0, flip_labels=pairs)(video, 0)
        assert (label, same) == (1, 0)
        assert torch.equal(flipped, plain.flip(-1)), "the same crop, mirrored"
        start, end = _centroid_x(plain, 0), _centroid_x(plain, 7)
        if not np.isnan(start + end):
            assert end > start and _centroid_x(flipped, 7) < _centroid_x(flipped, 0), "now it moves right to left"
            checked += 1
    assert checked >= 3
    torch.manual_seed(0)
    assert TrainTransform(64, (96, 128), "", flip=1.0, flip_labels=pairs)(video, 2)[1] == 2, "unpaired: unchanged"


def test_three_test_crops_are_left_centre_right_of_the_resized_frame():
    gradient = np.tile(np.linspace(0, 255, 320).astype(np.uint8)[None, None, :, None], (4, 256, 1, 3))
    views = EvalTransform(224, (256, 320), crops=3)(gradient)
    assert views.shape == (3, 3, 4, 224, 224)
    means = views.mean(dim=(1, 2, 3, 4))
    assert means[0] < means[1] < means[2]
    centre = EvalTransform(224, (256, 320), crops=1)(gradient)
    assert torch.equal(centre[0], views[1])
    np.testing.assert_allclose(
        views[0, 0, 0, 0, 0].item(), ((0 / 255) - MEAN[0, 0, 0, 0].item()) / STD[0, 0, 0, 0].item(), atol=1e-5
    )
    portrait = np.tile(np.linspace(0, 255, 300).astype(np.uint8)[None, :, None, None], (2, 1, 100, 3))
    down = EvalTransform(64, (64,), crops=3)(portrait).mean(dim=(1, 2, 3, 4))
    assert down[0] < down[1] < down[2], "portrait frames are cropped top, centre, bottom"


def test_normalisation_is_clips_mean_and_std():
    grey = np.full((2, 64, 64, 3), 128, dtype=np.uint8)
    out = EvalTransform(64, (64, 64))(grey)[0]
    expected = (128 / 255 - MEAN.view(3)) / STD.view(3)
    np.testing.assert_allclose(out[:, 0, 0, 0].numpy(), expected.numpy(), rtol=1e-6)


def test_grayscale_gives_equal_channels():
    torch.manual_seed(0)
    out, _ = TrainTransform(64, (80, 100), "", flip=0.0, grayscale=1.0)(motion_video(2, 128, 96), 0)
    raw = out * STD.view(3, 1, 1, 1) + MEAN.view(3, 1, 1, 1)
    assert torch.allclose(raw[0], raw[1], atol=1e-5) and torch.allclose(raw[1], raw[2], atol=1e-5)


def test_resize_rules():
    assert resized_shape(240, 426, (256, 320)) == (256, 320), "Something-Something: fixed 256 x 320"
    assert resized_shape(240, 426, (256,)) == (256, 454), "Kinetics: short side 256"
    assert resized_shape(480, 270, (256,)) == (455, 256)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(DataError, match="smaller than the 224 px crop"):
        EvalTransform(224, (128,))(np.zeros((1, 100, 100, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="expected uint8 \\(frames, height, width, 3\\)"):
        EvalTransform(64, (64,))(np.zeros((1, 100, 100), dtype=np.uint8))
    with pytest.raises(DataError, match="test crops: expected 1 or 3, got 2"):
        EvalTransform(64, (64,), crops=2)
