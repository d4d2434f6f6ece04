"""Prepare a lighter copy of a video tree, as Kinetics users do (mmaction2's resize_videos.py --dense).

    python -m tdsclip.data resize --root VIDEOS --out VIDEOS_320 [--short-side 320] [--workers N]

Kinetics copies are often 720p or larger, and decoding dominates loading: one clip of a 720p video
costs about as many decoded pixels as five of a 320-pixel copy. Every video under VIDEOS (.mp4 .webm
.mkv .avi .mov, any depth) becomes OUT/<same relative path>.mp4: H.264 (libx264, CRF 23, yuv420p),
its short side scaled to --short-side (aspect ratio kept, the other side rounded to even), one
output frame per source frame (`-fps_mode passthrough`: no frame dropped or duplicated, so frame
counts and sampling stay those of the source), rotation metadata applied, audio dropped.

Re-encoding runs the ffmpeg CLI, one single-threaded process per video and N at a time: the same
tool the mmaction2 and TSM scripts call, which handles what a hand-written PyAV transcoder would
have to reimplement (rotation, edit lists, odd sizes, timestamps, every container), and whose
version is recorded. With `-xerror` a source that cannot be decoded fully stops its ffmpeg: it is
reported with ffmpeg's reason and skipped (no partial file is left). Each output is written under a
temporary name and renamed when complete, so a killed run resumes where it stopped.

OUT/provenance.json records the tool and its version, the settings and the videos; the manifest
hash of data read from OUT covers the settings (frame counts and pixels depend on them), and
resuming with other settings is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tdsclip.data.errors import DataError
from tdsclip.data.files import write_json
from tdsclip.data.manifest import PROVENANCE, videos_to_convert

log = logging.getLogger("tdsclip.data")

CRF, PRESET = 23, "medium"
"""libx264's defaults, as mmaction2's script leaves them."""


@dataclass
class Resized:
    videos: int = 0
    done_before: int = 0
    failed: dict[str, str] = field(default_factory=dict)


@cache
def ffmpeg_version() -> str:
    """`ffmpeg version ...`'s version word; DataError when the CLI is not installed."""
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise DataError(
            "ffmpeg not found on PATH: resize re-encodes with the ffmpeg CLI; install it "
            "(apt-get install ffmpeg, as scripts/install-system.sh does)"
        )
    first = subprocess.run([binary, "-hide_banner", "-version"], capture_output=True, text=True, check=False).stdout
    return first.split()[2] if first.startswith("ffmpeg version") else "unknown"


def settings(short_side: int) -> dict:
    """The provenance header: what decides the copy's pixels and frames."""
    return {
        "resizer": f"ffmpeg {ffmpeg_version()} CLI",
        "short_side": short_side,
        "video": f"libx264 crf {CRF} preset {PRESET} yuv420p, .mp4",
        "frames": "one per source frame (-fps_mode passthrough)",
        "rotation": "applied (ffmpeg autorotate)",
        "audio": "dropped",
    }


def command(source: str, target: str, short_side: int) -> list[str]:
    """The ffmpeg command re-encoding one video (short side scaled, the other even, aspect kept)."""
    scale = f"scale='if(gt(iw,ih),-2,{short_side})':'if(gt(iw,ih),{short_side},-2)'"
    return [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-xerror",
        "-i",
        source,
        "-map",
        "0:v:0",
        "-vf",
        scale,
        "-fps_mode",
        "passthrough",
        "-c:v",
        "libx264",
        "-preset",
        PRESET,
        "-crf",
        str(CRF),
        "-pix_fmt",
        "yuv420p",
        "-an",
        "-threads",
        "1",
        "-filter_threads",
        "1",
        "-f",
        "mp4",
        "-y",
        target,
    ]


def resize(root: str | os.PathLike, out: str | os.PathLike, short_side: int = 320, workers: int = 1) -> Resized:
    """Re-encode every video under `root` into `out`; videos already done are kept as they are."""
    root, out = Path(root), Path(out)
    if short_side < 16 or short_side % 2:
        raise DataError(f"--short-side: expected an even number of pixels >= 16 (H.264 4:2:0), got {short_side}")
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise DataError(f"--out {str(out)!r} is inside --root {str(root)!r}: expected a folder outside it")
    wanted = settings(short_side)
    videos = videos_to_convert(root, out, wanted, "resized")
    targets: dict[Path, Path] = {}
    for video in videos:
        target = video.with_suffix(".mp4")
        if target in targets:
            raise DataError(
                f"{root / targets[target]} and {root / video} would both become {out / target}: expected one video per name"
            )
        targets[target] = video
    todo = [v for v in videos if not (out / v.with_suffix(".mp4")).is_file()]
    result = Resized(len(videos), len(videos) - len(todo))
    log.info("resizing %d of %d videos under %s into %s (short side %d)", len(todo), len(videos), root, out, short_side)
    jobs = [(str(root / v), str(out / v.with_suffix(".mp4")), short_side) for v in todo]
    with ThreadPoolExecutor(max(1, workers)) as pool:  # each job is an ffmpeg process: threads only wait
        outcomes = list(pool.map(_resize_one, jobs))
    result.failed = {str(v): reason for v, reason in zip(todo, outcomes) if reason}
    done = {t.as_posix(): v.as_posix() for t, v in targets.items() if (out / t).is_file()}
    write_json(out / PROVENANCE, {**wanted, "videos": done, "failed": result.failed})
    return result


def _resize_one(job: tuple[str, str, int]) -> str:
    """Write one video; '' on success, else ffmpeg's reason (nothing is left behind)."""
    source, target, short_side = job
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.stem}.partial.mp4")
    done = subprocess.run(command(source, str(partial), short_side), capture_output=True, text=True, check=False)
    if done.returncode == 0 and partial.is_file() and partial.stat().st_size > 0:
        os.replace(partial, final)
        return ""
    partial.unlink(missing_ok=True)
    reason = " ".join(done.stderr.split())[-200:] or f"ffmpeg exited with {done.returncode}"
    log.warning("cannot resize %s: %s", source, reason)
    return reason
