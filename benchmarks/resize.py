"""Clips per second per core on a 720p Kinetics-like video before and after `tdsclip.data resize`.

    python -m benchmarks.resize [--videos 3] [--repeats 7] [--dir DIR] [--json]

Sources (made once with the ffmpeg CLI, cached under --dir, default $TDSCLIP_CACHE/benchmark-data/resize):
1280x720, 25 fps, 10 s H.264 at 2.5 Mbit/s (a YouTube 720p rate; x264 veryfast, its default keyframe
interval), a moving test pattern under temporal noise so that every frame costs what camera footage
costs. The prepared copy is `resize --short-side 320` of them (568x320, CRF 23). One worker, one
decoding thread (per core), reads a T=8 x m=5 training clip (40 frames) with our reader
(`tdsclip.data.video.read_frames`) from each video in turn, the 720p and 320 copies alternating
video by video; a warm-up pass goes first. Printed: the median clips/s of each and their ratio
(target: the prepared copy at least 5x faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from tdsclip.data.manifest import default_cache_dir
from tdsclip.data.resize import ffmpeg_version, resize
from tdsclip.data.sampling import train_indices
from tdsclip.data.video import read_frames

SEGMENTS, WINDOW, SHORT_SIDE = 8, 5, 320
SOURCE = "1280x720, 25 fps, 10 s H.264 2.5 Mbit/s"


def make_sources(folder: Path, count: int) -> list[Path]:
    """`count` 720p videos, generated on first use (each with its own noise seed)."""
    ffmpeg_version()  # a one-line error when the CLI is missing
    paths = []
    for k in range(count):
        path = folder / "720p" / f"{k:03d}.mp4"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.partial.mp4")
            subprocess.run(
                [
                    "ffmpeg",
                    "-nostdin",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    f"testsrc2=size=1280x720:rate=25:duration=10,noise=alls=10:allf=t+u:all_seed={k + 1}",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-b:v",
                    "2500k",
                    "-pix_fmt",
                    "yuv420p",
                    "-f",
                    "mp4",
                    str(partial),
                ],
                check=True,
            )
            os.replace(partial, path)
        paths.append(path)
    return paths


def measure(pairs: list[tuple[Path, Path]], repeats: int) -> dict[str, float]:
    """Median clips/s of the sources and of their prepared copies, read in alternation."""
    times: dict[str, list[float]] = {"720p": [], "320": []}
    for repeat in range(-1, repeats):  # repeat -1 warms up and is not counted
        spent = dict.fromkeys(times, 0.0)
        for k, pair in enumerate(pairs):
            order = list(zip(times, pair))
            for name, path in order if (repeat + k) % 2 else order[::-1]:
                rng = np.random.default_rng([max(repeat, 0), k])
                start = time.perf_counter()
                read_frames(path, False, lambda n: train_indices(n, SEGMENTS, WINDOW, rng))  # noqa: B023 - called within this iteration
                spent[name] += time.perf_counter() - start
        if repeat >= 0:
            for name in times:
                times[name].append(spent[name])
    return {name: len(pairs) / statistics.median(t) for name, t in times.items()}


def speeds(folder: Path, videos: int, repeats: int) -> dict[str, float]:
    """clips/s before and after resizing, and the ratio ('speedup')."""
    sources = make_sources(folder, videos)
    resized = folder / f"short{SHORT_SIDE}"
    result = resize(folder / "720p", resized, SHORT_SIDE, workers=os.cpu_count() or 1)
    if result.failed:
        raise RuntimeError(f"resize failed on {result.failed}")
    clips = measure([(p, resized / p.relative_to(folder / "720p")) for p in sources], repeats)
    return {
        "clips_per_s_720p": round(clips["720p"], 3),
        "clips_per_s_320": round(clips["320"], 3),
        "speedup": round(clips["320"] / clips["720p"], 2),
    }


def table(result: dict[str, float], videos: int, repeats: int) -> list[str]:
    return [
        f"clips/s per core, T={SEGMENTS} x m={WINDOW} training clip, median of {repeats} repeats over {videos} videos",
        f"{SOURCE:<44}{result['clips_per_s_720p']:>8.2f}",
        f"{'after resize --short-side 320 (568x320)':<44}{result['clips_per_s_320']:>8.2f}",
        f"{'prepared / original':<44}{result['speedup']:>7.2f}x  (target >= 5x)",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.resize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=3, help="videos (default 3)")
    parser.add_argument("--repeats", type=int, default=7, help="timed passes, at least 3 (default 7)")
    parser.add_argument("--dir", type=Path, default=default_cache_dir() / "benchmark-data" / "resize")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.repeats < 3 or args.videos < 1:
        parser.error("expected --repeats >= 3 and --videos >= 1")
    result = speeds(args.dir, args.videos, args.repeats)
    print(json.dumps(result) if args.json else "\n".join(table(result, args.videos, args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
