"""Turn videos into JPEG frame folders, the form the released code trained SSv2 on.

    python -m tdsclip.data extract --root VIDEOS --out FRAMES [--workers N] [--quality 95]

Every video under VIDEOS (.mp4 .webm .mkv .avi .mov, any depth) becomes FRAMES/<same relative
path without extension>/00001.jpg, 00002.jpg, ... (1-based, presentation order), so
`<id>.webm` becomes the `<id>/` folder the SSv2 loader looks for and Kinetics class folders keep
their layout. Decoding is one sequential PyAV pass converted by `tdsclip.data.video.upright`
(rgb24, turned as the stream's display matrix says): the frames and pixels `read_frames` returns. Each folder is written under a temporary name and renamed when complete, so a killed run
leaves no half folder and a rerun resumes where it stopped, in parallel over N processes.

FRAMES/provenance.json records the decoder and its version, the naming, the JPEG quality and each
video's frame count; the manifest hash covers its settings, because frame counts and pixels differ
between extractors and move accuracy. Resuming with other settings is refused.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
from PIL import Image

from tdsclip.data.errors import DataError, UnreadableError
from tdsclip.data.files import new_folder, write_json
from tdsclip.data.manifest import PROVENANCE, videos_to_convert
from tdsclip.data.video import frame_names, sequential_frames, upright

log = logging.getLogger("tdsclip.data")

NAMING = "%05d.jpg, 1-based, presentation order"


@dataclass
class Extracted:
    videos: int = 0
    done_before: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def settings(quality: int) -> dict:
    """The provenance header: what decides the frames' pixels and numbering."""
    return {
        "decoder": f"PyAV {av.__version__} (libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))})",
        "pixel_format": "rgb24",
        "orientation": "display matrix applied",
        "frame_naming": NAMING,
        "jpeg_quality": quality,
    }


def extract(root: str | os.PathLike, out: str | os.PathLike, workers: int = 1, quality: int = 95) -> Extracted:
    """Extract every video under `root` into `out`; videos already extracted are kept as they are."""
    root, out = Path(root), Path(out)
    if not 1 <= quality <= 100:
        raise DataError(f"JPEG quality: expected 1 to 100, got {quality}")
    wanted = settings(quality)
    videos = videos_to_convert(root, out, wanted, "extracted")
    todo = [v for v in videos if not (out / v.with_suffix("")).is_dir()]
    result = Extracted(len(videos), len(videos) - len(todo))
    jobs = [(str(root / v), str(out / v.with_suffix("")), quality) for v in todo]
    log.info("extracting %d of %d videos under %s into %s", len(todo), len(videos), root, out)
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            outcomes = list(pool.map(_extract_one, jobs, chunksize=1))
    else:
        outcomes = [_extract_one(job) for job in jobs]
    result.failed = {str(v): reason for v, reason in zip(todo, outcomes) if reason}
    counts = {
        v.with_suffix("").as_posix(): len(frame_names(out / v.with_suffix("")))
        for v in videos
        if (out / v.with_suffix("")).is_dir()
    }
    write_json(out / PROVENANCE, {**wanted, "videos": counts})
    return result


def _extract_one(job: tuple[str, str, int]) -> str:
    """Write one video's frames; '' on success, else why not (nothing is left behind)."""
    video, folder, quality = job
    try:
        with new_folder(folder) as tmp:
            count = 0
            for count, frame in enumerate(sequential_frames(video, strict=True), 1):
                Image.fromarray(upright(frame)).save(tmp / f"{count:05d}.jpg", quality=quality)
            if count == 0:
                raise UnreadableError(video, "no video frames")
        return ""
    except (UnreadableError, DataError) as error:
        reason = error.reason if isinstance(error, UnreadableError) else str(error)
        log.warning("cannot extract %s: %s", video, reason)
        return reason
