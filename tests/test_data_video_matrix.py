"""Every container and codec real datasets come in (tests/video_matrix.py, made with the ffmpeg CLI):
the frames the training and evaluation samplers ask for equal a sequential PyAV decode of the same
indices (rgb24, rotation applied), or the file is reported unreadable with a one-line reason, by
the reader and the preflight alike."""

import io
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from video_matrix import MATRIX, Media, make, reference

from tdsclip.data import video
from tdsclip.data.errors import UnreadableError
from tdsclip.data.extract import extract
from tdsclip.data.sampling import eval_indices, train_indices
from tdsclip.data.video import frame_count, frame_names, read_frames, video_info, video_problem


@pytest.fixture(scope="session")
def matrix(tmp_path_factory):
    folder = tmp_path_factory.mktemp("matrix")
    return {media.file: make(media, folder) for media in MATRIX}


def _index_sets(frames: int) -> list[np.ndarray]:
    rng = np.random.default_rng(frames)
    # T=8, m=5 reads most of a 40-frame video; T=4 or 3 with m=1 or 3 leave gaps that the reader
    # crosses by seeking to a keyframe (see video.walk_limit), where decord's seeks went wrong
    return [
        train_indices(frames, 8, 5, rng),
        eval_indices(frames, 8, 5, clips=2),
        train_indices(frames, 4, 1, rng),
        train_indices(frames, 3, 3, rng),
        eval_indices(frames, 4, 1, clips=3),
        np.arange(frames)[::-1],
    ]


@pytest.mark.parametrize("media", MATRIX, ids=[m.file for m in MATRIX])
def test_frames_equal_a_sequential_pyav_decode_or_the_file_is_refused(matrix, media: Media):
    path = matrix[media.file]
    if media.expected != "exact":
        with pytest.raises(UnreadableError, match=media.expected) as error:
            read_frames(path, False, lambda n: np.arange(n))
        assert "\n" not in str(error.value)
        assert video_problem(path).startswith(media.expected)
        return
    expected = reference(path)
    frames = len(expected)
    assert len({f.tobytes() for f in expected}) == frames, "no two frames alike, so an off-by-one shows"
    assert frame_count(path, is_folder=False) == frames
    assert video_problem(path) == "", "the preflight passes what the reader reads"
    for indices in _index_sets(frames):
        counts = []
        clip = read_frames(path, False, lambda n: counts.append(n) or indices)  # noqa: B023 - called within this iteration
        assert counts == [frames]
        np.testing.assert_array_equal(clip, expected[indices], err_msg=f"{media.name} via {video_info(path).plan}")


DECORD_PLANS = {"h264-closed.mp4", "h264.mov", "vfr.mp4", "three.mp4", "one.mp4", "rotated.mp4", "rotated270.mp4"}


def test_decord_reads_only_what_it_reads_right_and_pyav_gives_the_same_frames(matrix):
    """The fast decord plans are kept where they are exact; on those files the PyAV path (the
    fallback after a decord error) returns the same bytes."""
    plans = {file: video_info(path).plan for file, path in matrix.items() if video_problem(path) == ""}
    assert {f for f, p in plans.items() if p == "seek"} == DECORD_PLANS
    for file in DECORD_PLANS:
        indices = np.arange(frame_count(matrix[file], False))
        np.testing.assert_array_equal(
            video._read_pyav(matrix[file], lambda n: indices, len(indices), video.sequential_frames(matrix[file])),  # noqa: B023 - called within this iteration
            read_frames(matrix[file], False, lambda n: indices),  # noqa: B023 - called within this iteration
            err_msg=file,
        )


def test_rotation_is_applied_as_ffmpeg_displays_it(matrix):
    path = matrix["rotated.mp4"]
    shown = subprocess.run(
        [shutil.which("ffmpeg"), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    frames = read_frames(path, False, lambda n: np.arange(n))
    assert frames.shape[1:] == (160, 120, 3), "120 wide, 160 high: turned upright"
    cli = np.frombuffer(shown, np.uint8).reshape(frames.shape)
    assert np.abs(cli.astype(int) - frames).mean() < 2, "ffmpeg's own autorotate, up to its rgb conversion"


@pytest.mark.parametrize(
    "files", [("rotated.mp4", "h264-10bit.mp4", "vp9-444-10bit.webm", "editlist.mp4", "mpeg4.avi", "av1.webm")]
)
def test_extract_writes_the_frames_the_reader_reads(matrix, tmp_path, files):
    root = tmp_path / "videos"
    root.mkdir()
    for file in files:
        shutil.copy(matrix[file], root / file)
    result = extract(root, tmp_path / "frames")
    assert not result.failed
    for file in files:
        folder = tmp_path / "frames" / file.rsplit(".", 1)[0]
        expected = read_frames(matrix[file], False, lambda n: np.arange(n))
        names = frame_names(folder)
        assert len(names) == len(expected)
        for name, frame in zip(names, expected):
            again = io.BytesIO()
            Image.fromarray(frame).save(again, format="jpeg", quality=95)
            np.testing.assert_array_equal(
                np.asarray(Image.open(folder / name)), np.asarray(Image.open(again)), err_msg=file
            )
