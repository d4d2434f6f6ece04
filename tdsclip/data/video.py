"""Decode exactly the frames a clip needs, from a video (decord or PyAV) or a JPEG frame folder (PIL).

    frames = read_frames(path, is_folder, lambda n: train_indices(n, 8, 5, rng))  # (8, 5, H, W, 3) uint8

The caller passes a function from the frame count to the indices, because a video's frame count is
only known once it is open (and containers over-report it; see below).

Videos are examined first (tdsclip.data.probe: the mp4 index, or the packets demuxed, not
decoded), which picks the plan: decord with seeks, or one sequential PyAV pass over the packets
already demuxed (one read of the file), stopped after the last frame asked for; the clip's frames
are written straight into one array. Frames come out upright (the stream's rotation applied) in
8-bit RGB, the same bytes whichever plan (`upright`). A file shorter than its header promises is
unreadable before anything is decoded.

On the decord plan decord decodes random frames by seeking to the previous keyframe and decoding
forward, so a clip of T*m frames can cost far more than it reads. One reader per clip, one decoding
thread (VP9 fails with more), dropped after the clip (readers leak). Reading plan, per video:
- indices are decoded once each, in increasing order;
- inside one GOP decord skips forward without converting the skipped frames to RGB: cheap;
- to reach a frame in a later GOP there are two ways: seek to its keyframe (decord's get_batch
  does this; a seek costs about SEEK_FRAMES decoded-and-converted frames plus a fixed overhead),
  or walk on through the frames before that keyframe with next(). The plan walks when the walk is
  the cheaper, which makes short videos and short GOPs one sequential pass.
A reader that fails is never reused (its errors depend on its seek history, and its threaded
decoder reports a damaged packet a few frames late, at random). The clip is read again in one
strictly sequential PyAV pass, which gives the same pixels (checked bit for bit) and stops exactly
at the damage. If fewer frames decode than the probe counted, by at most allowance() frames, the
indices are drawn again from the frames that decode; beyond that the file is truncated or damaged:
unreadable. The preflight (`video_problem`) applies the same rules after decoding every frame;
training finds damage when a clip reaches it.

Frame folders: JPEG files in natural order (00001.jpg, img_00002.jpg, frame10.jpg ...), only the
needed ones opened.

Every failure to decode raises UnreadableError (decord's DECORDError is not a RuntimeError).
"""

from __future__ import annotations

import bisect
import ctypes
import functools
import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from tdsclip.data.errors import UnreadableError
from tdsclip.data.probe import Probe, allowance, examine, probe

SEEK_FRAMES = 4.0
"""A seek costs about this many frames decoded and converted (measured 3-8 from 64x48 to 640x360)."""
SEEK_FIXED_PIXELS = 50_000
"""...plus a fixed cost (~0.2 ms) worth converting this many pixels: tiny frames favour walking."""
TYPICAL_PIXELS = 340 * 256
"""Frame size assumed for a decision taken before any frame of the video is decoded."""

Pick = Callable[[int], np.ndarray]


@functools.cache
def decord() -> Any:
    """The decord module, loaded with RTLD_LOCAL.

    decord loads its bundled FFmpeg into the global symbol namespace; PyAV's libvpx then binds to
    decord's older libvpx and every VP9 encode fails ("avcodec_open2 ... returned 22"). Loading it
    locally keeps the two FFmpeg builds apart in one process.
    """
    mode = ctypes.RTLD_GLOBAL
    ctypes.RTLD_GLOBAL = ctypes.RTLD_LOCAL
    try:
        import decord as module
    finally:
        ctypes.RTLD_GLOBAL = mode
    return module


def decode_errors() -> tuple[type[BaseException], ...]:
    """What decord raises on a bad file: RuntimeError (open), DECORDError (a damaged GOP, a frame
    past the real end), IndexError (an index past the reported end), StopIteration (next() at
    the end)."""
    return (RuntimeError, decord().DECORDError, IndexError, StopIteration)


def frame_names(folder: str | os.PathLike) -> list[str]:
    """The JPEG files of a frame folder in natural order (frame2.jpg before frame10.jpg)."""
    try:
        names = [n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg"))]
    except OSError as error:
        raise UnreadableError(str(folder), f"cannot list frames: {error.strerror}") from None
    return sorted(names, key=_natural)


def _natural(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def frame_count(path: str | os.PathLike, is_folder: bool) -> int:
    """Frames of a sample as a run sees them: JPEGs in the folder, or the video's shown packets."""
    return len(frame_names(path)) if is_folder else video_info(path).packets


def video_info(path: str | os.PathLike) -> Probe:
    """The file's probe (tdsclip.data.probe); UnreadableError if it cannot be opened or has no frames."""
    try:
        info = probe(path)
    except (av.FFmpegError, IndexError, OSError, ValueError) as error:
        raise UnreadableError(str(path), f"cannot open: {error}") from None
    if info.packets < 1:
        raise UnreadableError(str(path), "no video frames")
    return info


def video_problem(path: str | os.PathLike) -> str:
    """Why training would not use this video ('' when it would): the preflight's verdict, by the
    same rules the reader applies, after decoding every frame."""
    try:
        info = video_info(path)
    except UnreadableError as error:
        return error.reason
    if info.problem:
        return info.problem
    decodable = sum(1 for _ in sequential_frames(path))
    return _short(info.packets, decodable)


def _short(reported: int, decodable: int) -> str:
    if decodable < reported - allowance(reported) or decodable == 0:
        return f"truncated or damaged: {reported} frames in the file, {decodable} decodable"
    return ""


def upright(frame: Any, reformatter: VideoReformatter | None = None) -> np.ndarray:
    """A PyAV frame as 8-bit RGB the way players show it: PyAV's `to_ndarray(format="rgb24")`
    (libswscale, from any pixel format: 10-bit and 4:4:4 included), then turned by the stream's
    rotation (the display matrix's counter-clockwise angle). Pass one `reformatter` for the frames
    of a clip: it keeps its libswscale context (same bytes, a third faster)."""
    rgb = (reformatter or VideoReformatter()).reformat(frame, format="rgb24").to_ndarray()
    turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def read_frames(path: str | os.PathLike, is_folder: bool, pick: Pick) -> np.ndarray:
    """Frames `pick(num_frames)` of a sample, shaped indices.shape + (H, W, 3), uint8 RGB.

    The array may be read-only: when the frames come out of the decoder in the requested order,
    decord's buffer is handed over as it is, saving a copy of the clip."""
    return (_read_folder if is_folder else _read_video)(Path(path), pick)


# ----------------------------------------------------------------------------- frame folders


def _read_folder(folder: Path, pick: Pick) -> np.ndarray:
    names = frame_names(folder)
    if not names:
        raise UnreadableError(str(folder), "no JPEG frames in the folder")
    indices = np.asarray(pick(len(names)))
    unique, inverse = np.unique(indices, return_inverse=True)
    frames = []
    for i in unique:
        try:
            with Image.open(folder / names[i]) as image:
                frames.append(np.asarray(image if image.mode == "RGB" else image.convert("RGB")))
        except (OSError, ValueError, SyntaxError) as error:
            raise UnreadableError(str(folder / names[i]), f"cannot decode: {error}") from None
    if len({f.shape for f in frames}) > 1:
        raise UnreadableError(str(folder), f"frames differ in size: {sorted({f.shape for f in frames})}")
    return _gather(frames, inverse, indices.shape)


def _gather(frames: list[np.ndarray] | np.ndarray, inverse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The decoded distinct frames put in the requested order (no copy when it already is)."""
    stacked = np.stack(frames) if isinstance(frames, list) else frames
    if len(stacked) != inverse.size or np.any(inverse.ravel() != np.arange(inverse.size)):
        stacked = stacked[inverse.ravel()]
    return stacked.reshape(shape + stacked.shape[1:])


# ----------------------------------------------------------------------------- videos


def _read_video(path: Path, pick: Pick) -> np.ndarray:
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as error:
        raise UnreadableError(str(path), f"cannot open: {error}") from None
    with container:
        info, packets = _examined(path, container)
        if info.plan == "pyav" or info.keyframes == 1:  # one GOP: decord would read on from the start too
            if info.keyframes is not None:  # an mp4 judged from its index: demux on where examine stopped
                packets = itertools.chain(packets, container.demux(container.streams.video[0]))
            return _read_pyav(path, pick, info.packets, _decoded(container, packets))
    frames = _read_decord(path, pick, info)
    return frames if frames is not None else _read_pyav(path, pick, info.packets, sequential_frames(path))


def _examined(path: Path, container: Any) -> tuple[Probe, list]:
    try:
        info, packets = examine(container, os.path.getsize(path))
    except (av.FFmpegError, IndexError, OSError, ValueError) as error:
        raise UnreadableError(str(path), f"cannot open: {error}") from None
    if info.problem:
        raise UnreadableError(str(path), info.problem)
    return info, packets


def _decoded(container: Any, packets: Iterable[Any]) -> Iterator[Any]:
    """Frames of the packets `examine` demuxed, decoded as `sequential_frames` decodes the file."""
    container.streams.video[0].codec_context.thread_type = "NONE"
    try:
        for packet in packets:
            yield from packet.decode()
    except (av.FFmpegError, IndexError, OSError):
        return


def _read_decord(path: Path, pick: Pick, info: Probe) -> np.ndarray | None:
    """The clip through decord, or None when decord cannot open the file or counts its frames
    differently from the container (then it is not trusted with the file)."""
    try:
        reader = decord().VideoReader(str(path), num_threads=1)
    except decode_errors():
        return None
    try:
        if len(reader) != info.packets:
            return None
        indices = np.asarray(pick(info.packets))
        return _decode(reader, indices)
    except decode_errors():
        pass  # the reader's state is now unknown: start over sequentially, below
    finally:
        del reader
    return _read_video_sequentially(path, pick, info.packets)


def _read_pyav(path: Path, pick: Pick, reported: int, decoded: Iterator[Any]) -> np.ndarray:
    """The frames asked for out of `decoded` (one sequential PyAV pass, stopped after the last
    frame asked for), converted once each and written straight into the clip."""
    indices = np.asarray(pick(reported))
    where: dict[int, list[int]] = {}  # frame index -> its places in the clip
    for place, index in enumerate(indices.ravel().tolist()):
        where.setdefault(index, []).append(place)
    clip, filled, decodable, reformatter = None, 0, 0, VideoReformatter()
    for decodable, frame in enumerate(decoded, 1):
        if (places := where.get(decodable - 1)) is not None:
            rgb = upright(frame, reformatter)
            if clip is None:  # written in place: no stacking and regathering copies
                clip = np.empty((indices.size,) + rgb.shape, np.uint8)
            if rgb.shape != clip.shape[1:]:
                raise UnreadableError(
                    str(path), f"frame size changes from {clip.shape[1:3]} to {rgb.shape[:2]} at frame {decodable - 1}"
                )
            clip[places] = rgb
            filled += 1
            if filled == len(where):
                return clip.reshape(indices.shape + clip.shape[1:])
    if problem := _short(reported, decodable):  # the decode stopped before the last frame asked for
        raise UnreadableError(str(path), problem)
    return _read_video_sequentially(path, pick, reported, decodable)  # over-reported by a few frames


def _read_video_sequentially(path: Path, pick: Pick, reported: int, decodable: int | None = None) -> np.ndarray:
    """The fallback after a decord error: PyAV, in order, no seeks (same pixels as decord, and its
    errors surface at the packet that caused them, not later on another thread as decord's do)."""
    if decodable is None:
        decodable = sum(1 for _ in sequential_frames(path))
    if problem := _short(reported, decodable):
        raise UnreadableError(str(path), problem)
    indices = np.asarray(pick(decodable))
    unique, inverse = np.unique(indices, return_inverse=True)
    wanted, last = set(unique.tolist()), int(unique[-1])
    frames = [upright(frame) for i, frame in enumerate(sequential_frames(path, last + 1)) if i in wanted]
    if len(frames) != len(unique):
        raise UnreadableError(str(path), f"decodes differently on a second pass: {len(frames)} of {len(unique)} frames")
    return _gather(frames, inverse, indices.shape)


def sequential_frames(path: str | os.PathLike, limit: int | None = None, strict: bool = False) -> Iterator[Any]:
    """PyAV frames in presentation order, one decoding thread, at most `limit`; convert only those
    you need (`upright(frame)`). At the first decoding error the frames stop, or with `strict`
    UnreadableError names it."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "NONE"
            for count, frame in enumerate(container.decode(stream)):
                if limit is not None and count >= limit:
                    return
                yield frame
    except (av.FFmpegError, IndexError, OSError) as error:
        if strict:
            raise UnreadableError(str(path), f"{type(error).__name__}: {error}") from None


def _decode(reader: Any, indices: np.ndarray) -> np.ndarray:
    """Decode the distinct indices in increasing order following the cheapest plan (module doc)."""
    unique, inverse = np.unique(indices, return_inverse=True)
    keys = reader.get_key_indices() or [0]
    pieces: list[np.ndarray] = []
    run: list[int] = []
    position, pixels = 0, TYPICAL_PIXELS  # next frame the reader would decode; frame size seen

    def flush() -> None:
        nonlocal pixels
        if run:
            pieces.append(np.from_dlpack(_Shared(reader.get_batch(run))))
            pixels = pieces[-1].shape[1] * pieces[-1].shape[2]
            run.clear()

    for index in unique.tolist():
        before = bisect.bisect_right(keys, index)
        keyframe = keys[before - 1] if before else 0
        if keyframe > position and keyframe - position <= walk_limit(pixels):
            flush()
            for _ in range(keyframe - position):
                reader.next()
        run.append(index)
        position = index + 1
    flush()
    return _gather(pieces[0] if len(pieces) == 1 else np.concatenate(pieces), inverse, indices.shape)


class _Shared:
    """Hands decord's frame buffer to NumPy without a copy (DLPack); the array is read-only."""

    def __init__(self, array: Any) -> None:
        self.array = array

    def __dlpack__(self, stream: Any = None, **_: Any) -> Any:
        return self.array.to_dlpack()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU


def walk_limit(pixels: int) -> float:
    """How many frames walking through (decode + convert each) costs no more than one seek."""
    return SEEK_FRAMES + SEEK_FIXED_PIXELS / max(pixels, 1)
