"""Decoding: the frames a clip reads equal a plain sequential decode, on H.264 mp4, VP9 webm and
JPEG folders, whatever the keyframe spacing; broken files are UnreadableError, not crashes."""

from pathlib import Path

import av
import numpy as np
import pytest
from data_helpers import motion_video, pyav_decode, sequential_decode, write_media
from PIL import Image

from tdsclip.data.errors import UnreadableError
from tdsclip.data.sampling import eval_indices, train_indices
from tdsclip.data.video import frame_count, frame_names, read_frames, sequential_frames


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    return {
        (kind, keyint): write_media(folder, kind, frames=60, keyint=keyint)
        for kind, keyint in [("mp4", None), ("mp4", 5), ("mp4", 12), ("webm", None), ("webm", 6)]
    }


def _index_sets(frames: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        *(train_indices(frames, 8, 5, rng) for _ in range(4)),
        eval_indices(frames, 8, 5, clips=2),  # two interleaved clips: not in increasing order
        eval_indices(frames, 8, 1),
        np.array([frames - 1, 0, frames - 1, 3]),  # backwards, repeated, both ends
        np.arange(frames),
    ]


@pytest.mark.parametrize("kind, keyint", [("mp4", None), ("mp4", 5), ("mp4", 12), ("webm", None), ("webm", 6)])
def test_decoded_frames_equal_a_sequential_decode(media, kind, keyint):
    path = media[(kind, keyint)]
    reference = sequential_decode(path)
    assert len(reference) == 60 and frame_count(path, is_folder=False) == 60
    for indices in _index_sets(60):
        frames = read_frames(path, False, lambda n: indices)  # noqa: B023 - called within this iteration
        assert frames.shape == indices.shape + reference.shape[1:]
        np.testing.assert_array_equal(frames, reference[indices])
    assert len({frame.tobytes() for frame in reference}) == 60, "no two frames alike, so an off-by-one shows"


def test_frame_folders_read_in_natural_order(tmp_path):
    video = motion_video(12)
    folder = tmp_path / "clip"
    folder.mkdir()
    for number, frame in enumerate(video, 1):
        Image.fromarray(frame).save(folder / f"frame{number}.jpg", quality=95)
    (folder / "notes.txt").write_text("not a frame")
    assert frame_names(folder)[:3] == ["frame1.jpg", "frame2.jpg", "frame3.jpg"]
    assert frame_names(folder)[-1] == "frame12.jpg" and frame_count(folder, is_folder=True) == 12
    indices = eval_indices(12, 4, 3)
    frames = read_frames(folder, True, lambda n: indices)
    expected = np.stack([np.asarray(Image.open(folder / f"frame{i + 1}.jpg").convert("RGB")) for i in indices.ravel()])
    np.testing.assert_array_equal(frames.reshape(expected.shape), expected)
    assert np.abs(frames.reshape(expected.shape).astype(int) - video[indices.ravel()]).mean() < 6, "JPEG of the frames"


def test_unopenable_and_empty_samples_are_unreadable(tmp_path):
    (tmp_path / "garbage.mp4").write_bytes(b"\x00not a video" * 100)
    (tmp_path / "empty.webm").write_bytes(b"")
    (tmp_path / "no-frames").mkdir()
    (tmp_path / "bad-jpeg").mkdir()
    (tmp_path / "bad-jpeg" / "00001.jpg").write_bytes(b"\xff\xd8 broken")
    for path, is_folder in [
        ("garbage.mp4", False),
        ("empty.webm", False),
        ("missing.mp4", False),
        ("no-frames", True),
        ("bad-jpeg", True),
    ]:
        with pytest.raises(UnreadableError) as error:
            read_frames(tmp_path / path, is_folder, lambda n: np.arange(min(n, 4)))
        assert path in str(error.value) and "\n" not in str(error.value)


def _faststart_mp4(path: Path, frames: int = 60, empty_packets: int = 0) -> bytes:
    """An mp4 with its index first (as streaming sites serve them), optionally followed by packets
    that hold no picture (an access-unit delimiter each), which decord counts as frames."""
    video = motion_video(frames)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as output:
        stream = output.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        stream.options = {"bf": "0"}
        last = None
        for frame in video:
            packets = stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24"))
            output.mux(packets)
            last = packets[-1] if packets else last
        for packet in stream.encode():
            output.mux(packet)
            last = packet
        for extra in range(1, empty_packets + 1):
            packet = av.Packet(b"\x00\x00\x00\x02\x09\xf0")
            packet.stream, packet.time_base = stream, last.time_base
            step = int(1 / (25 * last.time_base))  # one frame at 25 fps
            packet.pts = packet.dts = last.pts + extra * step
            packet.duration = step
            output.mux(packet)
    return path.read_bytes()


def _decodable(path: Path) -> int:
    return sum(1 for _ in sequential_frames(path))


def test_over_reported_frame_count_is_redrawn_from_the_frames_that_decode(tmp_path):
    path = tmp_path / "padded.mp4"
    _faststart_mp4(path, empty_packets=2)
    assert frame_count(path, is_folder=False) == 62 and _decodable(path) == 60, "the index lists the empty packets"
    counts = []
    frames = read_frames(path, False, lambda n: counts.append(n) or np.array([0, n - 1]))
    assert counts == [62, 60], "drawn from the reported count, then again from the frames that decode"
    np.testing.assert_array_equal(frames, pyav_decode(path)[[0, 59]])


def test_damaged_tail_is_unreadable_beyond_a_few_frames(tmp_path):
    data = _faststart_mp4(tmp_path / "source.mp4")
    reference = sequential_decode(tmp_path / "source.mp4")

    def damage(keep: float) -> tuple[Path, int]:
        broken = bytearray(data)
        broken[int(len(data) * keep) :] = bytes(len(data) - int(len(data) * keep))  # the last frames zeroed
        path = tmp_path / f"damaged-{keep:.4f}.mp4"
        path.write_bytes(bytes(broken))
        return path, _decodable(path)

    heavy, decodable = damage(0.97)
    assert decodable < 57
    with pytest.raises(UnreadableError, match=rf"truncated or damaged: 60 frames in the file, {decodable} decodable"):
        read_frames(heavy, False, lambda n: np.arange(n))
    light = next(found for keep in np.linspace(0.999, 0.98, 40) if 57 <= (found := damage(keep))[1] < 60)
    frames = read_frames(light[0], False, lambda n: np.array([n - 1, 0]))
    np.testing.assert_array_equal(frames, reference[[light[1] - 1, 0]])
