"""Real test media made on the spot: encoded videos (H.264 mp4, VP9 webm) and JPEG folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tdsclip.data.synth import Synthetic, load_synthetic, render, write_jpegs, write_video
from tdsclip.data.video import decord, sequential_frames


def motion_video(frames: int = 40, width: int = 64, height: int = 48, seed: int = 0, label: int = 0) -> np.ndarray:
    """(frames, height, width, 3) uint8: the synthetic renderer's moving object, plus a time code
    (two white blocks whose positions count frames) so that no two frames look alike."""
    video, _, _ = render(np.random.default_rng(seed), label, frames, width, height)
    slots = width // 8
    for t in range(frames):
        video[t, :16] = 0
        video[t, :8, 8 * (t % slots) : 8 * (t % slots) + 8] = 255
        video[t, 8:16, 8 * (t // slots % slots) : 8 * (t // slots % slots) + 8] = 255
    return video


def write_media(folder: Path, kind: str, frames: int = 40, keyint: int | None = None, seed: int = 0) -> Path:
    """One sample of `kind` ('mp4', 'webm' or 'jpg'), keyframes every `keyint` frames if given."""
    video = motion_video(frames, seed=seed)
    options = {"g": str(keyint)} if keyint else None
    if kind == "jpg":
        path = folder / f"frames-{seed}"
        write_jpegs(path, video)
    else:
        path = folder / f"video-{seed}-{keyint or 'default'}.{kind}"
        write_video(
            path, video, fps=12 if kind == "webm" else 25, codec="vp9" if kind == "webm" else "h264", options=options
        )
    return path


def sequential_decode(path: Path) -> np.ndarray:
    """Every frame of a video, decoded in order by a fresh reader, no seeks: the reference
    (it stops where the file stops decoding)."""
    reader = decord().VideoReader(str(path), num_threads=1)
    frames = []
    while True:
        try:
            frames.append(reader.next().asnumpy())
        except (StopIteration, decord().DECORDError):
            return np.stack(frames)


def pyav_decode(path: Path) -> np.ndarray:
    """Every frame PyAV decodes in order (the reader's fallback and the extractor's decoder)."""
    return np.stack([frame.to_ndarray(format="rgb24") for frame in sequential_frames(path)])


def copy_dataset(data: Synthetic, destination: Path) -> Synthetic:
    """A private copy of a synthetic dataset, to damage or move."""
    shutil.copytree(Path(data.boxes).parent, destination)
    return load_synthetic(destination)
