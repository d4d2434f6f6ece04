"""Clips per second for one worker reading a T=8, m=5 training clip (40 frames), our loader beside
two plain ones, on generated videos of realistic size and keyframe spacing.

    python -m benchmarks.data [--videos 12] [--repeats 9] [--dir DIR] [--json]

Video types (made once, cached under --dir, default $TDSCLIP_CACHE/benchmark-data):
- ssv2: 426x240, 12 fps, 4 s (48 frames), VP9 with the encoder's default keyframe spacing;
- k400: 340x256, 25 fps, 10 s (250 frames), H.264 with the encoder's default keyframe interval;
- jpeg: the ssv2 videos extracted to JPEG folders (quality 95), the form SSv1 and the released
  SSv2 recipe read;
- k400-gop25: the k400 type with a keyframe every second (streaming encodes), where walking
  through short GOPs beats seeking (shown for the per-video choice; not one of the targets).
Loaders: ours (`tdsclip.data.video.read_frames`); decord `get_batch` of the 40 indices (for JPEG
folders: PIL opening the 40 files); a full sequential decode of every frame (decord; for JPEG
folders: every file), indexed afterwards. Each repeat reads every video of a type once with each
loader, on the same indices (TSN training sampling), the loaders taking turns video by video in
rotating order; a warm-up pass goes first. Printed: the median over repeats, and ours / the better plain loader
(target: at least 0.95x on every type).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tdsclip.data.extract import extract, settings
from tdsclip.data.manifest import default_cache_dir
from tdsclip.data.sampling import train_indices
from tdsclip.data.synth import render, write_video
from tdsclip.data.video import decord, frame_names, read_frames

SEGMENTS, WINDOW = 8, 5
TYPES = {
    "ssv2": dict(
        width=426,
        height=240,
        fps=12,
        seconds=4,
        codec="vp9",
        options={"deadline": "good", "cpu-used": "4"},
        label="SSv2-like 426x240 12 fps 4 s VP9",
    ),
    "k400": dict(
        width=340, height=256, fps=25, seconds=10, codec="h264", options={}, label="K400-like 340x256 25 fps 10 s H.264"
    ),
    "k400-gop25": dict(
        width=340,
        height=256,
        fps=25,
        seconds=10,
        codec="h264",
        options={"g": "25"},
        label="same, a keyframe every second",
    ),
}
Loader = Callable[[Path, np.ndarray], np.ndarray]


def make_videos(folder: Path, count: int) -> dict[str, list[Path]]:
    """`count` videos of each type (and their JPEG folders), generated on first use."""
    made: dict[str, list[Path]] = {}
    for name, spec in TYPES.items():
        made[name] = []
        for k in range(count):
            path = folder / name / f"{k:03d}.{'webm' if spec['codec'] == 'vp9' else 'mp4'}"
            if not path.exists():
                write_video(
                    path,
                    _content(k, spec),
                    spec["fps"],
                    spec["codec"],
                    {"crf": "32", "b": "0"} | spec["options"] if spec["codec"] == "vp9" else spec["options"],
                )
            made[name].append(path)
    # one folder per extraction settings: a cache extracted by another version is not resumable
    frames = folder / f"jpeg-{hashlib.sha256(json.dumps(settings(95), sort_keys=True).encode()).hexdigest()[:8]}"
    extract(folder / "ssv2", frames, workers=os.cpu_count() or 1)
    made["jpeg"] = [frames / p.stem for p in made["ssv2"]]
    return {name: made[name] for name in ("ssv2", "k400", "jpeg", "k400-gop25")}


def _content(seed: int, spec: dict) -> np.ndarray:
    """The synthetic renderer's moving object over a slowly panning textured background."""
    frames = spec["fps"] * spec["seconds"]
    video, _, _ = render(np.random.default_rng(seed), seed % 8, frames, spec["width"], spec["height"])
    for t in range(frames):
        video[t] = np.roll(video[t], t, axis=1)
    return video


# ----------------------------------------------------------------------------- loaders


def ours(path: Path, indices: np.ndarray) -> np.ndarray:
    return read_frames(path, path.is_dir(), lambda n: indices)


def get_batch(path: Path, indices: np.ndarray) -> np.ndarray:
    if path.is_dir():
        names = frame_names(path)
        return np.stack([np.asarray(Image.open(path / names[i]).convert("RGB")) for i in indices.ravel()])
    reader = decord().VideoReader(str(path), num_threads=1)
    return reader.get_batch(indices.ravel().tolist()).asnumpy()


def sequential(path: Path, indices: np.ndarray) -> np.ndarray:
    if path.is_dir():
        frames = np.stack([np.asarray(Image.open(path / name).convert("RGB")) for name in frame_names(path)])
    else:
        reader = decord().VideoReader(str(path), num_threads=1)
        frames = reader.get_batch(list(range(len(reader)))).asnumpy()
    return frames[indices.ravel()]


LOADERS: dict[str, Loader] = {"ours": ours, "get_batch": get_batch, "sequential": sequential}


def frame_count(path: Path) -> int:
    return len(frame_names(path)) if path.is_dir() else len(decord().VideoReader(str(path), num_threads=1))


def measure(paths: list[Path], repeats: int) -> dict[str, float]:
    """Median clips per second of each loader over `repeats` passes over `paths`. The loaders take
    turns video by video (in rotating order), so a slow spell of the machine hits them alike."""
    counts = [frame_count(p) for p in paths]
    names = list(LOADERS)
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(-1, repeats):  # repeat -1 warms up and is not counted
        spent = dict.fromkeys(names, 0.0)
        for k, (path, count) in enumerate(zip(paths, counts)):
            indices = train_indices(count, SEGMENTS, WINDOW, np.random.default_rng([max(repeat, 0), k]))
            shift = (repeat + k) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                LOADERS[name](path, indices)
                spent[name] += time.perf_counter() - start
        if repeat >= 0:
            for name in names:
                times[name].append(spent[name])
    return {name: len(paths) / statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=12, help="videos per type (default 12)")
    parser.add_argument("--repeats", type=int, default=9, help="timed passes, at least 5 (default 9)")
    parser.add_argument("--dir", type=Path, default=default_cache_dir() / "benchmark-data")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.repeats < 5 or args.videos < 1:
        parser.error("expected --repeats >= 5 and --videos >= 1")
    results = speeds(args.dir, args.videos, args.repeats)
    if args.json:
        print(json.dumps(results))
        return 0
    print("\n".join(table(results, args.videos, args.repeats)))
    return 0


LABELS = {**{k: v["label"] for k, v in TYPES.items()}, "jpeg": "JPEG folders 426x240, 48 frames"}
TARGET_TYPES = ("ssv2", "k400", "jpeg")
"""The types the 0.95x target covers (k400-gop25 is shown for the per-video choice only)."""


def speeds(folder: Path, videos: int, repeats: int) -> dict[str, dict[str, float]]:
    """Per video type: clips/s of each loader and ours / the better plain loader ('ratio')."""
    results = {}
    for name, paths in make_videos(folder, videos).items():
        clips_per_s = measure(paths, repeats)
        results[name] = {
            **{k: round(v, 1) for k, v in clips_per_s.items()},
            "ratio": round(clips_per_s["ours"] / max(clips_per_s["get_batch"], clips_per_s["sequential"]), 3),
        }
    return results


def table(results: dict[str, dict[str, float]], videos: int, repeats: int) -> list[str]:
    lines = [
        f"clips/s, one worker, T={SEGMENTS} x m={WINDOW} = {SEGMENTS * WINDOW} frames a clip, median of "
        f"{repeats} repeats over {videos} videos; {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        f"{'video type':<38}{'ours':>8}{'get_batch':>11}{'sequential':>12}{'ours/best':>11}",
    ]
    for name, row in results.items():
        lines.append(
            f"{LABELS[name]:<38}{row['ours']:>8.1f}{row['get_batch']:>11.1f}{row['sequential']:>12.1f}{row['ratio']:>10.2f}x"
        )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
