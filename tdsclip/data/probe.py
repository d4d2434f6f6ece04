"""What a video file's container and stream say, read from its index or its packets (no
decoding), and the decoding plan that gets every frame right on it.

    info = probe("clip.mp4"); info.plan  # "seek" or "pyav"; info.problem: '' or why unreadable

Plans (tdsclip.data.video carries them out):
- "seek": decord with keyframe seeks. Only H.264 in mp4/mov with closed GOPs, no frames dropped by
  an edit list, 8-bit 4:2:0: the files on which decord's seeks were checked frame-exact. Its seeks
  land wrong on open GOPs (leading pictures of a GOP reference the previous one), on B-frames in
  HEVC, MPEG-4 part 2 and AVI, on MPEG-2 and on edit lists; VP9 seeks can land on wrong frames.
- "pyav": everything else: one sequential PyAV decode (AV1, which decord cannot open; VP8/VP9 and
  anything in Matroska/WebM, where PyAV decodes the packets the probe already demuxed, faster than
  a second reader; HEVC; MPEG-2, whose frames decord gets wrong even sequentially; MPEG-4 part 2;
  AVI; open GOPs; edit lists that drop frames; 10-bit and 4:4:4, which decord converts to other
  pixels; a file decord cannot open or counts differently). tdsclip.data.video also reads a
  "seek" mp4 with a single keyframe this way (decord would read it on from the start too).

Frames come out as players display them (rotation applied: decord does it itself, exactly as the
PyAV plan does with frame.rotation) and converted to 8-bit RGB by PyAV
(`VideoFrame.to_ndarray(format="rgb24")`, libswscale) on the PyAV plan; decord's conversion on
the decord plan gives the same bytes (8-bit 4:2:0 only; checked in tests/test_data_video_matrix.py).

Truncation is told from the video track itself, not the container: its packets must reach where
the header says the track ends (Matroska's per-track DURATION tag, else the stream's start plus
duration, else, as a last resort, the container's end) and the frame count the mp4 index promises,
within allowance() frames. Audio that starts first or a variable frame rate therefore does not
look truncated; a WebM cut in half does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av

OVER_REPORT = 3
"""A container may claim up to max(this, 5%) more frames than it holds before it counts as truncated."""
MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
EIGHT_BIT_420 = ("yuv420p", "yuvj420p")


@dataclass(frozen=True)
class Probe:
    container: str  # libavformat's name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str
    pix_fmt: str
    packets: int  # video packets in the file that are shown (not dropped by an edit list): the frame count
    dropped: int  # packets an edit list drops
    open_gop: bool  # a packet after a keyframe (in decode order) is shown before it
    keyframes: int | None = None  # keyframes the mp4 index lists
    promised: int | None = None  # packets the mp4 index lists
    end: float | None = None  # seconds: where the last shown packet ends (when the packets were read)
    promised_end: float | None = None  # seconds: where the header says the video track ends
    frame_seconds: float = 0.04  # the shortest step between frames, seconds

    @property
    def plan(self) -> str:
        """ "seek" or "pyav" (module doc)."""
        if _decord_candidate(self.container, self.codec, self.pix_fmt) and not self.open_gop and not self.dropped:
            return "seek"
        return "pyav"

    @property
    def problem(self) -> str:
        """Why the file cannot be used whole ('' when it can): fewer frames than its header promises."""
        if self.packets == 0:
            return "no video frames"
        held = self.packets + self.dropped
        if self.promised and held < self.promised - allowance(self.promised):
            return f"truncated or damaged: {self.promised} frames in the index, {held} in the file"
        if (
            self.promised_end
            and self.end is not None
            and (self.promised_end - self.end) / self.frame_seconds > allowance(self.packets)
        ):
            return (
                f"truncated or damaged: the header says the video ends at {self.promised_end:.2f} s, "
                f"its packets end at {self.end:.2f} s"
            )
        return ""


def _decord_candidate(container: str, codec: str, pix_fmt: str) -> bool:
    return pix_fmt in EIGHT_BIT_420 and (container, codec) in DECORD_TRUSTED


DECORD_TRUSTED = {(MP4, "h264")}
"""(container, codec) pairs decord's seeks get right (given closed GOPs and no edit-list drops)."""


def allowance(frames: int) -> int:
    """How many of its promised frames a video may lack and still count as whole."""
    return max(OVER_REPORT, int(0.05 * frames))


def probe(path: str | os.PathLike) -> Probe:
    """The file's Probe; av.FFmpegError, IndexError or OSError if it cannot be opened."""
    with av.open(str(path)) as container:
        return examine(container, os.path.getsize(path))[0]


def examine(container: av.container.InputContainer, size: int) -> tuple[Probe, list[av.Packet]]:
    """The Probe of an open file of `size` bytes, and the video packets demuxed to make it, in
    order: all of them, the final empty one included (what `container.decode` feeds the decoder),
    or, for an mp4 (`keyframes` set), the first few or none; demuxing on continues from there.

    An mp4 is judged from its index (libavformat reads the whole sample table on opening): each
    sample's keyframe and edit-list flags, and whether its bytes lie inside the file. Its packets
    are read only to look for leading pictures after the second keyframe (an encoder's open-GOP
    setting holds for the whole stream), and only where decord might read it. Other containers
    have no such index: every video packet is demuxed."""
    stream = container.streams.video[0]
    context = stream.codec_context
    kind = (container.format.name, context.name, context.format.name if context.format else "")
    entries = stream.index_entries if kind[0] == MP4 else None
    if entries is not None and len(entries):
        inside = [e for e in entries if e.pos + e.size <= size]
        dropped = sum(e.is_discard for e in inside)
        keys = [i for i, e in enumerate(entries) if e.is_keyframe and not e.is_discard]
        packets = _demux(container, stream, keys[1] + 16) if len(keys) > 1 and _decord_candidate(*kind) else []
        open_gop = _leading_pictures(packets)[1]
        return Probe(*kind, len(inside) - dropped, dropped, open_gop, len(keys), promised=len(entries)), packets
    packets = _demux(container, stream)
    shown, open_gop, dropped = _leading_pictures(packets)
    base = stream.time_base or Fraction(1, 1000)
    times = sorted(pts for pts, _ in shown)
    steps = [b - a for a, b in zip(times, times[1:]) if b > a]
    step = min(steps) if steps else None
    frame_seconds = float(step * base) if step else 1 / float(stream.average_rate or 25)
    end = float(max(pts + (duration or step or 0) for pts, duration in shown) * base) if shown else 0.0
    return Probe(
        *kind,
        len(shown),
        dropped,
        open_gop,
        None,
        None,
        end,
        _promised_end(container, stream),
        max(frame_seconds, 1e-3),
    ), packets


def _demux(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, limit: int | None = None
) -> list[av.Packet]:
    """The video packets in file order (at most `limit`); a demuxing error ends them, as it ends
    a decode."""
    packets = []
    try:
        for packet in container.demux(stream):
            packets.append(packet)
            if limit is not None and len(packets) >= limit:
                break  # demuxing on from here yields the next packet
    except (av.FFmpegError, OSError):
        pass
    return packets


def _leading_pictures(packets: list[av.Packet]) -> tuple[list[tuple[int, int]], bool, int]:
    """(pts, duration) of the shown packets, whether a packet is shown before the keyframe it
    follows in decode order (an open GOP), and how many packets an edit list drops."""
    shown: list[tuple[int, int]] = []
    dropped, open_gop, key_pts = 0, False, None
    for packet in packets:
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
    return shown, open_gop, dropped


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
