"""`python -m tdsclip.data resize` on videos the tests encode: the short side scaled with the aspect
kept (landscape and portrait), every source frame kept, the layout kept (class folders, webm -> mp4),
a damaged source reported and skipped, resumable, provenance covered by the manifest, bad input."""

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from data_helpers import pyav_decode, write_media

from tdsclip.data.__main__ import main
from tdsclip.data.annotations import find_samples, read_split
from tdsclip.data.manifest import manifest
from tdsclip.data.resize import ffmpeg_version
from tdsclip.data.synth import SynthSpec, render, write_synthetic, write_video


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.width, stream.codec_context.height


def test_resize_keeps_every_frame_and_the_layout_skips_damage_and_resumes(tmp_path, capsys):
    source = tmp_path / "videos"
    landscape = write_media(source / "class x", "mp4", frames=30, seed=1)  # 64x48
    portrait = source / "tall.mp4"
    video, _, _ = render(np.random.default_rng(2), 0, 20, 48, 72)
    write_video(portrait, video, fps=25, codec="h264")
    webm = write_media(source, "webm", frames=14, seed=3)
    damaged = source / "zz-damaged.mp4"
    data = bytearray(landscape.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 400] = bytes(400)  # zeros in the middle of the picture data
    damaged.write_bytes(bytes(data))
    out = tmp_path / "videos_32"
    code, printed, err = _run(
        ["resize", "--root", source, "--out", out, "--short-side", "32", "--workers", "2"], capsys
    )
    assert code == 1 and "videos 4, resized before 0, now 3, failed (skipped) 1" in printed
    assert "zz-damaged.mp4: " in printed and not (out / "zz-damaged.mp4").exists()
    assert not list(out.rglob(".*partial*")), "no partial file is left behind"
    expected = {landscape: (42, 32), portrait: (32, 48), webm: (42, 32)}  # 64x48 -> 42.7 -> even 42
    for original, size in expected.items():
        copy = out / original.relative_to(source).with_suffix(".mp4")
        assert _size(copy) == size
        assert len(pyav_decode(copy)) == len(pyav_decode(original)), f"{original.name}: one frame per source frame"
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["short_side"] == 32 and provenance["resizer"] == f"ffmpeg {ffmpeg_version()} CLI"
    assert provenance["videos"]["class x/" + landscape.stem + ".mp4"] == "class x/" + landscape.name
    assert list(provenance["failed"]) == ["zz-damaged.mp4"]

    (out / "tall.mp4").unlink()
    damaged.unlink()
    code, printed, _ = _run(["resize", "--root", source, "--out", out, "--short-side", "32", "--workers", "1"], capsys)
    assert code == 0 and "videos 3, resized before 2, now 1, failed (skipped) 0" in printed
    code, _, err = _run(["resize", "--root", source, "--out", out, "--short-side", "64"], capsys)
    assert code == 1 and "'short_side': 64" in err and "use a new --out" in err and err.count("\n") == 1


def test_a_resized_kinetics_copy_is_found_by_the_annotations_and_has_its_own_manifest(tmp_path, capsys):
    data = write_synthetic(SynthSpec("k400", 6, 2, 12, 64, 48), tmp_path / "k400")
    split = read_split("k400", data.val, data.train)
    digests = {}
    for side in (32, 40):
        out = tmp_path / f"k400_{side}"
        assert (
            _run(["resize", "--root", data.root, "--out", out, "--short-side", side, "--workers", "2"], capsys)[0] == 0
        )
        found = find_samples(split, out)
        assert len(found.samples) == len(split.entries) and not found.missing
        digests[side] = manifest(found, tmp_path / "cache")
    original = manifest(find_samples(split, data.root), tmp_path / "cache")
    assert digests[32].frames == digests[40].frames == original.frames, "frame counts are the source's"
    assert len({digests[32].digest, digests[40].digest, original.digest}) == 3, "the manifest covers the settings"


def test_bad_resize_input_is_one_line(tmp_path, capsys, monkeypatch):
    write_media(tmp_path / "videos", "mp4", frames=5)
    for argv, message in (
        (["--root", tmp_path / "nope", "--out", tmp_path / "o"], "video root '"),
        (
            ["--root", tmp_path / "videos", "--out", tmp_path / "o", "--short-side", "321"],
            "--short-side: expected an even number of pixels >= 16",
        ),
        (["--root", tmp_path / "videos", "--out", tmp_path / "videos" / "small"], "is inside --root"),
    ):
        code, _, err = _run(["resize", *argv], capsys)
        assert code in (1, 2) and message in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as usage:
        main(["resize", "--root", str(tmp_path), "--out", str(tmp_path / "o"), "--short-side", "x"])
    assert usage.value.code == 2 and "invalid int value: 'x'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert "no videos (.mp4" in _run(["resize", "--root", tmp_path / "empty", "--out", tmp_path / "o"], capsys)[2]
    (tmp_path / "twice").mkdir()
    shutil.copy(next((tmp_path / "videos").glob("*.mp4")), tmp_path / "twice" / "a.mp4")
    shutil.copy(next((tmp_path / "videos").glob("*.mp4")), tmp_path / "twice" / "a.mkv")
    assert "would both become" in _run(["resize", "--root", tmp_path / "twice", "--out", tmp_path / "o"], capsys)[2]
    ffmpeg_version.cache_clear()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    try:
        code, _, err = _run(["resize", "--root", tmp_path / "videos", "--out", tmp_path / "o"], capsys)
    finally:
        ffmpeg_version.cache_clear()
    assert code == 1 and err.startswith("error: ffmpeg not found on PATH") and err.count("\n") == 1
