"""TSN segments, segment centres, K distinct test clips, and SME windows clamped at the ends."""

import numpy as np
import pytest

from tdsclip.data.errors import DataError
from tdsclip.data.sampling import eval_indices, train_indices, windows


def test_training_draws_one_frame_per_segment_with_its_window():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        clip = train_indices(48, 8, 5, rng)
        assert clip.shape == (8, 5)
        centres = clip[:, 2]
        assert all(6 * k <= c < 6 * (k + 1) for k, c in enumerate(centres)), centres
        inner = clip[(centres >= 2) & (centres <= 45)]
        assert (np.diff(inner, axis=1) == 1).all(), "a window is m consecutive frames"
        seen.update(centres.tolist())
    assert seen == set(range(48)), "every frame of every segment can be drawn"


def test_validation_takes_segment_centres():
    clip = eval_indices(80, 8, 3)
    assert clip.shape == (1, 8, 3)
    assert clip[0, :, 1].tolist() == [5, 15, 25, 35, 45, 55, 65, 75]


@pytest.mark.parametrize("frames, clips", [(48, 2), (250, 4), (16, 2), (37, 3)])
def test_test_clips_are_evenly_spread_and_all_differ(frames, clips):
    views = eval_indices(frames, 8, 5, clips)
    assert views.shape == (clips, 8, 5)
    centres = views[:, :, 2]
    for a in range(clips):
        for b in range(a + 1, clips):
            assert (centres[a] != centres[b]).all(), f"clips {a} and {b} share a sparse frame: {centres}"
    assert (np.diff(centres, axis=0) > 0).all(), "clip j+1 sits later in every segment than clip j"


def test_windows_clamp_at_both_ends_and_never_wrap():
    clip = windows(np.array([0, 1, 28, 29]), 5, 30)
    assert clip.tolist() == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [26, 27, 28, 29, 29], [27, 28, 29, 29, 29]]
    short = train_indices(3, 8, 5, np.random.default_rng(1))
    assert short.min() >= 0 and short.max() <= 2, "a 3-frame video still gives a full (8, 5) clip"
    assert short.shape == (8, 5)


@pytest.mark.parametrize("m", [0, 2, 4, -1])
def test_even_or_empty_windows_are_rejected(m):
    with pytest.raises(DataError, match=rf"expected an odd number >= 1 \(1, 3 or 5\), got {m}"):
        windows(np.array([3]), m, 10)


def test_single_frame_windows_are_the_sparse_frames():
    clip = eval_indices(40, 8, 1)
    assert clip.shape == (1, 8, 1) and clip[0, :, 0].tolist() == [2, 7, 12, 17, 22, 27, 32, 37]
