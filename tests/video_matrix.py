"""The containers and codecs real datasets come in, made small with the ffmpeg command-line tool
(Debian's `ffmpeg`, scripts/install-system.sh), and the reference every reader must match: a
sequential PyAV decode converted to rgb24 by PyAV, with the stream's rotation applied.

Each entry is (name, file name, how it is made, expected): expected is "exact" (every frame asked
for equals the reference) or a regular expression the UnreadableError reason must match.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tdsclip.data.video import sequential_frames

FRAMES, SIZE, FPS = 40, "160x120", 25
"""160x120: big enough that the reader seeks (video.walk_limit: about 6.6 frames) between keyframes 12 apart."""
SOURCE = ("-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate={FPS}:duration={{seconds}}")
X264 = ["-c:v", "libx264", "-preset", "ultrafast"]
BFRAMES_12 = ["-bf", "3", "-g", "12"]
AV1 = ("-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-g", "12", "-crf", "40")


@dataclass(frozen=True)
class Media:
    name: str
    file: str
    args: tuple[str, ...]  # ffmpeg arguments after the source, before the output file
    expected: str = "exact"
    frames: int = FRAMES
    source: tuple[str, ...] = SOURCE  # {seconds}: the length of `frames` frames
    then: str = ""  # a step after encoding: "editlist", "rotate=<degrees>", "half" (cut in half) or "damage"


def _x264(*extra: str) -> tuple[str, ...]:
    return (*X264, "-x264-params", "bframes=3:keyint=12:min-keyint=12:scenecut=0", *extra)


MATRIX: list[Media] = [
    Media("H.264 mp4 closed GOP, B-frames", "h264-closed.mp4", _x264()),
    Media("H.264 mov", "h264.mov", _x264()),
    Media(
        "H.264 mp4 open GOP",
        "h264-open.mp4",
        (*X264, "-x264-params", "bframes=3:keyint=12:min-keyint=12:scenecut=0:open-gop=1"),
    ),
    Media(
        "H.264 mkv open GOP",
        "h264-open.mkv",
        (*X264, "-x264-params", "bframes=3:keyint=12:min-keyint=12:scenecut=0:open-gop=1"),
    ),
    Media("H.264 mkv closed GOP", "h264-closed.mkv", _x264()),
    Media("H.264 avi B-frames", "h264.avi", _x264()),
    Media(
        "HEVC mp4 B-frames",
        "hevc.mp4",
        (
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-tag:v",
            "hvc1",
            "-x265-params",
            "bframes=3:keyint=12:min-keyint=12:log-level=none",
        ),
    ),
    Media("MPEG-4 part 2 mp4 B-frames", "mpeg4.mp4", ("-c:v", "mpeg4", "-q:v", "4", *BFRAMES_12)),
    Media("MPEG-4 part 2 avi B-frames", "mpeg4.avi", ("-c:v", "mpeg4", "-q:v", "4", *BFRAMES_12)),
    Media("Xvid avi B-frames", "xvid.avi", ("-c:v", "libxvid", "-q:v", "4", *BFRAMES_12)),
    Media("MPEG-2 mpg", "mpeg2.mpg", ("-c:v", "mpeg2video", "-q:v", "4", "-bf", "2", "-g", "12")),
    Media("MPEG-2 ts", "mpeg2.ts", ("-c:v", "mpeg2video", "-q:v", "4", "-bf", "2", "-g", "12")),
    Media("H.264 mp4 trimmed with an edit list (-ss 1.3 -c copy)", "editlist.mp4", _x264(), frames=80, then="editlist"),
    Media("AV1 mp4", "av1.mp4", AV1, frames=24),  # the slowest encoder: fewer frames
    Media("AV1 webm", "av1.webm", AV1, frames=24),
    Media(
        "VP8 webm alt-ref frames",
        "vp8.webm",
        (
            "-c:v",
            "libvpx",
            "-auto-alt-ref",
            "1",
            "-lag-in-frames",
            "16",
            "-g",
            "12",
            "-b:v",
            "300k",
            "-deadline",
            "realtime",
        ),
    ),
    Media(
        "VP9 webm alt-ref frames",
        "vp9.webm",
        (
            "-c:v",
            "libvpx-vp9",
            "-auto-alt-ref",
            "1",
            "-lag-in-frames",
            "16",
            "-g",
            "12",
            "-b:v",
            "300k",
            "-cpu-used",
            "8",
        ),
    ),
    Media(
        "VP9 webm variable frame rate",
        "vfr.webm",
        (
            "-vf",
            "settb=1/1000,setpts='(N*40+20*mod(N\\,3))/1000/TB'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libvpx-vp9",
            "-cpu-used",
            "8",
            "-g",
            "12",
        ),
    ),
    Media(
        "H.264 mp4 variable frame rate",
        "vfr.mp4",
        ("-vf", "settb=1/1000,setpts='(N*40+20*mod(N\\,3))/1000/TB'", "-fps_mode", "vfr", *_x264()),
    ),
    Media("H.264 mp4 rotated 90 degrees (display matrix)", "rotated.mp4", _x264(), then="rotate=90"),
    Media("H.264 mp4 rotated 270 degrees", "rotated270.mp4", _x264(), then="rotate=270"),
    Media(
        "HEVC mp4 rotated 180 degrees",
        "rotated180-hevc.mp4",
        ("-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1", "-x265-params", "keyint=12:log-level=none"),
        then="rotate=180",
    ),
    Media("H.264 mp4 yuv444p", "yuv444.mp4", (*_x264(), "-pix_fmt", "yuv444p")),
    Media("H.264 mp4 10-bit", "h264-10bit.mp4", (*_x264(), "-pix_fmt", "yuv420p10le")),
    Media(
        "HEVC mp4 10-bit",
        "hevc-10bit.mp4",
        (
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p10le",
            "-x265-params",
            "keyint=12:log-level=none",
        ),
    ),
    Media(
        "VP9 webm 10-bit 4:4:4",
        "vp9-444-10bit.webm",
        ("-c:v", "libvpx-vp9", "-pix_fmt", "yuv444p10le", "-cpu-used", "8", "-g", "12", "-b:v", "300k"),
    ),
    Media(
        "H.264 mkv, audio starts 0.5 s before the video",
        "audio-first.mkv",
        ("-map", "1:a", "-map", "0:v", *_x264(), "-c:a", "libopus"),
        source=("-itsoffset", "0.5", *SOURCE, "-f", "lavfi", "-i", "sine=frequency=440:duration=2.1"),
    ),
    Media("H.264 mp4, 1 frame", "one.mp4", _x264(), frames=1),
    Media("H.264 mp4, 3 frames", "three.mp4", _x264(), frames=3),
    Media("VP9 webm, 3 frames", "three.webm", ("-c:v", "libvpx-vp9", "-cpu-used", "8"), frames=3),
    Media(
        "VP9 webm cut in half",
        "half.webm",
        ("-c:v", "libvpx-vp9", "-cpu-used", "8", "-g", "12"),
        expected="truncated or damaged",
        then="half",
    ),
    Media(
        "H.264 mp4 (index first) cut in half",
        "half.mp4",
        (*_x264(), "-movflags", "faststart"),
        expected="truncated or damaged",
        then="half",
    ),
    Media("H.264 mp4 with its index cut off", "no-moov.mp4", _x264(), expected="cannot open", then="half"),
    Media(
        "H.264 mp4 (index first) with a damaged middle",
        "damaged.mp4",
        (*_x264(), "-movflags", "faststart"),
        expected="truncated or damaged",
        then="damage",
    ),
]


def make(media: Media, folder: Path) -> Path:
    """Encode one entry with the ffmpeg CLI into `folder`."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "the ffmpeg command-line tool is missing: run scripts/install-system.sh"
    path = folder / media.file
    frames = ["-frames:v", str(media.frames)]
    encoded = path if not media.then else folder / f"source-{media.file}"
    source = [arg.format(seconds=media.frames / FPS) for arg in media.source]
    _run([ffmpeg, *source, *media.args, *frames, str(encoded)])
    if media.then == "editlist":  # a stream copy from 1.3 s: the kept packets start at the keyframe before
        _run([ffmpeg, "-ss", "1.3", "-i", str(encoded), "-c", "copy", str(path)])
    elif media.then.startswith("rotate="):  # ffmpeg 5.1 writes a display matrix from this tag on a stream copy only
        _run([ffmpeg, "-i", str(encoded), "-c", "copy", "-metadata:s:v:0", media.then, str(path)])
    elif media.then == "half":
        data = encoded.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif media.then == "damage":
        data = bytearray(encoded.read_bytes())
        middle = len(data) // 2
        data[middle : middle + len(data) // 8] = bytes(len(data) // 8)
        path.write_bytes(bytes(data))
    return path


def _run(command: list[str]) -> None:
    result = subprocess.run([command[0], "-y", "-v", "error", "-nostdin", *command[1:]], capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr.strip()}"


def reference(path: Path) -> np.ndarray:
    """Every frame, in order, as PyAV converts it to rgb24, turned upright as the stream says."""
    # frame.rotation is the display matrix's counter-clockwise angle (-90 for a `rotate=90` tag,
    # which players show turned 90 degrees clockwise); np.rot90 turns counter-clockwise
    return np.stack(
        [
            np.rot90(frame.to_ndarray(format="rgb24"), round(frame.rotation / 90) % 4)
            for frame in sequential_frames(path)
        ]
    )
