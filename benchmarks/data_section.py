"""Data section: benchmarks/data.py's loading speed, ours over the better plain loader per video type;
benchmarks/resize.py's clips/s per core on 720p videos before and after `tdsclip.data resize`."""

from __future__ import annotations

from benchmarks import resize
from benchmarks.data import LABELS, TARGET_TYPES, speeds, table
from benchmarks.sections import Options, Result, Target, register
from tdsclip.data.manifest import default_cache_dir


@register(
    "data",
    "clips/s of our video reader over decord get_batch and a sequential decode (benchmarks/data.py); "
    "720p before/after resize (benchmarks/resize.py)",
)
def data(options: Options) -> Result:
    videos, repeats = options.pick("videos", 6, 12), options.pick("repeats", 5, 9)
    results = speeds(default_cache_dir() / "benchmark-data", videos, repeats)
    keys = {"decode_speedup": min(results[name]["ratio"] for name in TARGET_TYPES)}
    keys.update({f"decode_speedup_{name.replace('-', '_')}": row["ratio"] for name, row in results.items()})
    targets = [
        Target(
            f"decode_speedup_{name}",
            results[name]["ratio"],
            ">=",
            0.95,
            f"ours at least 0.95x the better plain loader on {LABELS[name]}",
        )
        for name in TARGET_TYPES
    ]
    report = ["data: " + line if i == 0 else "  " + line for i, line in enumerate(table(results, videos, repeats))]
    resize_videos, resize_repeats = options.pick("videos", 2, 3), options.pick("repeats", 3, 7)
    resized = resize.speeds(default_cache_dir() / "benchmark-data" / "resize", resize_videos, resize_repeats)
    keys.update(
        {
            "resize_speedup": resized["speedup"],
            "resize_clips_per_s_720p": resized["clips_per_s_720p"],
            "resize_clips_per_s_320": resized["clips_per_s_320"],
        }
    )
    targets.append(
        Target(
            "resize_speedup",
            resized["speedup"],
            ">=",
            5.0,
            "a resize --short-side 320 copy of 720p H.264 reads at least 5x faster per core",
        )
    )
    report += ["  " + line for line in resize.table(resized, resize_videos, resize_repeats)]
    return Result(
        keys=keys,
        targets=targets,
        report=report,
        details={"videos": videos, "repeats": repeats, "clips_per_s": results, "resize": resized},
    )
