"""What a video file's container and stream say, read by demuxing its packets (no decoding), and
the decoding plan that gets every frame right on it.

    info = probe("clip.mp4"); info.plan  # "seek", "walk" or "pyav"; info.problem: '' or why unreadable

Plans (tdsclip.data.video carries them out):
- "seek": decord with keyframe seeks. Only H.264 in mp4/mov with closed GOPs, no frames dropped by
  an edit list, 8-bit 4:2:0, no rotation: the files on which decord's seeks were checked frame-exact.
  Its seeks land wrong on open GOPs (leading pictures of a GOP reference the previous one), on
  B-frames in HEVC, MPEG-4 part 2 and AVI, on MPEG-2 and on edit lists.
- "walk": decord without a seek (it reads on from the start): VP8/VP9 and H.264 (closed GOP) in
  Matroska/WebM, 8-bit 4:2:0, no rotation. VP9 seeks can land on wrong frames; a sequential read
  is exact.
- "pyav": everything else: one sequential PyAV decode (AV1, which decord cannot open; HEVC;
  MPEG-2, whose frames decord gets wrong even sequentially; MPEG-4 part 2; AVI; open GOPs; edit
  lists that drop frames; rotation; 10-bit and 4:4:4; VFR H.264).

Frames come out as players display them (rotation applied) and converted to 8-bit RGB by PyAV
(`VideoFrame.to_ndarray(format="rgb24")`, libswscale) on the PyAV plan; decord's conversion on
the decord plans gives the same bytes there (8-bit 4:2:0 only; checked in tests/test_data_video_matrix.py).

Truncation is told from the stream itself, not the container: the video packets must span the
video track's own duration (Matroska's per-track DURATION tag, else the stream duration, else the
container's end as measured from the video's first timestamp) and reach the frame count the
index promises, within OVER_REPORT frames or 5%. Audio that starts first or a variable frame rate
therefore does not look truncated; a WebM cut in half does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av

OVER_REPORT = 3
"""A container may claim up to max(this, 5%) more frames than it holds before it counts as truncated."""
MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
MATROSKA = "matroska,webm"
EIGHT_BIT_420 = ("yuv420p", "yuvj420p")


@dataclass(frozen=True)
class Probe:
    container: str  # libavformat's name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str
    pix_fmt: str
    rotation: int | None  # counter-clockwise degrees (PyAV's frame.rotation); None: not looked at
    packets: int  # video packets that are shown (not dropped by an edit list): the frame count
    dropped: int  # packets an edit list drops
    open_gop: bool  # a packet after a keyframe (in decode order) is shown before it
    promised: int | None  # frames the index promises (mp4 sample count), if it says
    end: float  # seconds: where the last shown packet ends
    promised_end: float | None  # seconds: where the header says the video track ends
    frame_seconds: float  # the shortest step between frames, seconds

    @property
    def plan(self) -> str:
        """"seek", "walk" or "pyav" (module doc)."""
        if _decord_candidate(self.container, self.codec, self.pix_fmt) and self.rotation == 0 \
                and not self.open_gop and not self.dropped:
            return "seek" if self.container == MP4 else "walk"
        return "pyav"

    @property
    def problem(self) -> str:
        """Why the file cannot be used whole ('' when it can): fewer frames than its header promises."""
        if self.packets == 0:
            return "no video frames"
        held = self.packets + self.dropped
        if self.promised and held < self.promised - allowance(self.promised):
            return f"truncated or damaged: {self.promised} frames in the index, {held} in the file"
        if self.promised_end and (self.promised_end - self.end) / self.frame_seconds > allowance(self.packets):
            return (f"truncated or damaged: the header says the video ends at {self.promised_end:.2f} s, "
                    f"the file's ends at {self.end:.2f} s")
        return ""


def _decord_candidate(container: str, codec: str, pix_fmt: str) -> bool:
    return pix_fmt in EIGHT_BIT_420 and (container, codec) in DECORD_TRUSTED


DECORD_TRUSTED = {(MP4, "h264"), (MATROSKA, "h264"), (MATROSKA, "vp8"), (MATROSKA, "vp9")}
"""(container, codec) pairs decord decodes right: with seeks (mp4) or reading on (Matroska/WebM)."""


def allowance(frames: int) -> int:
    """How many of its promised frames a video may lack and still count as whole."""
    return max(OVER_REPORT, int(0.05 * frames))


def probe(path: str | os.PathLike) -> Probe:
    """Demux every video packet of `path` (decoding only the first frame, for its rotation, when
    decord might read the file); av.FFmpegError, IndexError or OSError if it cannot be opened."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        context.thread_type = "NONE"
        pix_fmt = context.format.name if context.format else ""
        rotation = None if _decord_candidate(container.format.name, context.name, pix_fmt) else 0
        looked = rotation is not None
        shown: list[tuple[int, int]] = []  # (pts, duration) of each shown packet
        dropped, open_gop, key_pts = 0, False, None
        for packet in container.demux(stream):
            if not looked and packet.size:
                for frame in context.decode(packet):
                    rotation, looked = frame.rotation, True
            if packet.size == 0 or packet.is_discard:
                dropped += packet.size > 0
                continue
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                continue
            if packet.is_keyframe:
                key_pts = pts
            elif key_pts is not None and pts < key_pts:
                open_gop = True
            shown.append((pts, packet.duration or 0))
        base = stream.time_base or Fraction(1, 1000)
        times = sorted(pts for pts, _ in shown)
        steps = [b - a for a, b in zip(times, times[1:]) if b > a]
        step = min(steps) if steps else None
        frame_seconds = float(step * base) if step else 1 / float(stream.average_rate or 25)
        end = float(max(pts + (duration or step or 0) for pts, duration in shown) * base) if shown else 0.0
        return Probe(container.format.name, context.name, pix_fmt, rotation, len(shown), dropped, open_gop,
                     int(stream.frames) if stream.frames and container.format.name == MP4 else None,
                     end, _promised_end(container, stream), max(frame_seconds, 1e-3))


def _promised_end(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Where the header says the video track ends, in seconds on the stream's clock: Matroska's
    per-track DURATION tag (an end time), else the stream's start plus its duration, else the
    container's end (which audio may extend: the last resort)."""
    tag = stream.metadata.get("DURATION")
    if tag and tag.count(":") == 2:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if stream.duration and stream.time_base:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    if container.duration:
        return ((container.start_time or 0) + container.duration) / av.time_base
    return None
