"""Which frames a clip reads: T sparse frames, each with its SME window of m local frames.

- training: TSN segment sampling, one random frame in each of T equal segments;
- validation: the centre of each segment;
- test: K clips at evenly spread offsets inside the segments (clip j of K at fraction
  (j + 1/2) / K of each segment), so the K clips differ whenever the video has T*K frames or more.

Each sparse frame s brings s - m//2 .. s + m//2, clamped to the first and last frame (the released
decord path wrapped negative indices to the end of the video; clamping is the intent).
Indices come back as an int64 array (..., T, m).
"""

from __future__ import annotations

import numpy as np

from tdsclip.data.errors import DataError


def check_window(local_frames: int) -> None:
    """SME windows are centred on their sparse frame, so m must be odd (1, 3, 5, ...)."""
    if local_frames < 1 or local_frames % 2 == 0:
        raise DataError(f"local frames per window: expected an odd number >= 1 (1, 3 or 5), got {local_frames}")


def windows(sparse: np.ndarray, local_frames: int, num_frames: int) -> np.ndarray:
    """Each sparse index's window of `local_frames` consecutive frames, clamped to the video."""
    check_window(local_frames)
    offsets = np.arange(local_frames) - local_frames // 2
    return np.clip(np.asarray(sparse, dtype=np.int64)[..., None] + offsets, 0, num_frames - 1)


def train_indices(num_frames: int, segments: int, local_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T, m): a random frame in each of T equal segments, with its window."""
    _check_counts(num_frames, segments)
    length = num_frames / segments
    sparse = np.floor((np.arange(segments) + rng.random(segments)) * length).astype(np.int64)
    return windows(np.minimum(sparse, num_frames - 1), local_frames, num_frames)


def eval_indices(num_frames: int, segments: int, local_frames: int, clips: int = 1) -> np.ndarray:
    """(K, T, m): K clips at evenly spread offsets in each segment; K = 1 gives the segment centres."""
    _check_counts(num_frames, segments)
    if clips < 1:
        raise DataError(f"test clips: expected >= 1, got {clips}")
    length = num_frames / segments
    offsets = (np.arange(clips) + 0.5) / clips
    sparse = np.floor((np.arange(segments)[None, :] + offsets[:, None]) * length).astype(np.int64)
    return windows(np.minimum(sparse, num_frames - 1), local_frames, num_frames)


def _check_counts(num_frames: int, segments: int) -> None:
    if num_frames < 1:
        raise DataError(f"video length: expected at least 1 frame, got {num_frames}")
    if segments < 1:
        raise DataError(f"segments per clip: expected >= 1, got {segments}")
