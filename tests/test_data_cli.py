"""The data CLI on files the tests generate: synth -> check for each format, check finding missing
and unreadable samples, resumable extraction with provenance, deterministic subsets, errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from data_helpers import copy_dataset, pyav_decode, write_media
from helpers import REPO

from tdsclip.data.__main__ import main
from tdsclip.data.annotations import find_samples, flip_pairs, read_split
from tdsclip.data.synth import SynthSpec, load_synthetic, write_synthetic
from tdsclip.data.video import read_frames

SMALL = ["--classes", "6", "--videos-per-class", "3", "--frames", "12", "--size", "64x48"]


def _check_args(data, part="train", *extra):
    return [
        "check",
        "--format",
        data.format,
        "--root",
        data.root,
        "--annotations",
        getattr(data, part),
        *(["--labels", data.labels] if data.labels else []),
        "--workers",
        "0",
        *extra,
    ]


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def ssv2(tmp_path_factory):
    return write_synthetic(SynthSpec("ssv2", 6, 3, 12, 64, 48), tmp_path_factory.mktemp("cli") / "ssv2")


def test_python_m_runs_synth_then_check_for_every_format(tmp_path, monkeypatch):
    monkeypatch.setenv("TDSCLIP_CACHE", str(tmp_path / "cache"))
    for fmt in ("ssv1", "ssv2", "k400"):
        command = [sys.executable, "-m", "tdsclip.data"]
        made = subprocess.run(
            [*command, "synth", "--format", fmt, "--out", str(tmp_path / fmt), *SMALL],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        data = load_synthetic(tmp_path / fmt)
        assert json.loads(made.stdout)["root"] == data.root
        argv = _check_args(data, "val", "--json")
        checked = subprocess.run([*command, *argv], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert checked.returncode == 0, checked.stderr
        report = json.loads(checked.stdout)
        assert {k: report[k] for k in ("listed", "found", "missing", "unreadable", "classes")} == {
            "listed": 6,
            "found": 6,
            "missing": 0,
            "unreadable": 0,
            "classes": 6,
        }
        assert all(isinstance(report[k], int) for k in ("listed", "found", "missing", "unreadable", "classes"))
        assert len(report["manifest"]) == 64 and 9 <= report["frames"]["min"] <= report["frames"]["max"] <= 15


def test_check_names_missing_and_unreadable_samples_and_judges_usability(tmp_path, ssv2, capsys):
    data = copy_dataset(ssv2, tmp_path / "copy")
    entries = read_split("ssv2", data.train, data.labels).entries
    root = Path(data.root)
    (root / f"{entries[0].id}.webm").unlink()
    (root / f"{entries[1].id}.webm").write_bytes(b"\x1a\x45\xdf\xa3 not really webm")
    video = root / f"{entries[2].id}.webm"
    damaged = bytearray(video.read_bytes())
    damaged[len(damaged) // 3 :] = bytes(len(damaged) - len(damaged) // 3)  # decodes, but only its first frames
    video.write_bytes(bytes(damaged))
    code, out, _ = _run(_check_args(data, "train", "--json", "--cache-dir", tmp_path / "c"), capsys)
    report = json.loads(out)
    assert code == 1 and not report["usable"]
    assert (report["listed"], report["found"], report["missing"], report["unreadable"]) == (12, 11, 1, 2)
    assert report["missing_ids"] == [entries[0].id]
    assert set(report["unreadable_ids"]) == {entries[1].id, entries[2].id}
    assert "truncated or damaged" in report["unreadable_ids"][entries[2].id]
    code, out, _ = _run(_check_args(data, "train", "--max-unreadable", "0.5", "--cache-dir", tmp_path / "c"), capsys)
    assert code == 0 and "unreadable  2 (first: " in out and "missing     1" in out and out.strip().endswith("usable")


def test_extract_is_resumable_and_records_provenance(tmp_path, capsys):
    source = tmp_path / "videos"
    videos = [
        write_media(source, "webm", frames=20, seed=1),
        write_media(source, "webm", frames=14, seed=2),
        write_media(source / "class x", "mp4", frames=30, seed=3),
    ]
    out = tmp_path / "frames"
    code, printed, _ = _run(["extract", "--root", source, "--out", out, "--workers", "2"], capsys)
    assert code == 0 and "videos 3, extracted before 0, now 3, failed 0" in printed
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["decoder"].startswith("PyAV ") and provenance["jpeg_quality"] == 95
    for video in videos:
        folder = out / video.relative_to(source).with_suffix("")
        decoded = pyav_decode(video).astype(int)
        assert (
            provenance["videos"][folder.relative_to(out).as_posix()] == len(decoded) == len(list(folder.glob("*.jpg")))
        )
        frames = read_frames(folder, True, lambda n: np.arange(n)).astype(int)
        distance = np.abs(frames[:, None] - decoded[None]).mean(axis=(2, 3, 4))
        assert (distance.argmin(1) == np.arange(len(decoded))).all(), "JPEG i is decoded frame i"
    shutil.rmtree(out / videos[0].stem)
    (out / f".{videos[1].stem}.abc.tmp").mkdir()  # what a killed run leaves
    (source / "zz-broken.webm").write_bytes(b"garbage")
    code, printed, _ = _run(["extract", "--root", source, "--out", out, "--workers", "1"], capsys)
    assert code == 1 and "videos 4, extracted before 2, now 1, failed 1" in printed and "zz-broken.webm" in printed
    assert not (out / "zz-broken").exists() and (out / videos[0].stem / "00001.jpg").exists()
    code, _, err = _run(["extract", "--root", source, "--out", out, "--quality", "80"], capsys)
    assert code == 1 and "jpeg_quality': 80" in err and err.count("\n") == 1


def test_extracted_ssv2_frames_are_what_the_ssv2_loader_reads(tmp_path, ssv2, capsys):
    assert _run(["extract", "--root", ssv2.root, "--out", tmp_path / "frames", "--workers", "1"], capsys)[0] == 0
    found = find_samples(read_split("ssv2", ssv2.train, ssv2.labels), tmp_path / "frames")
    assert len(found.samples) == 12 and all(s.frames for s in found.samples) and not found.missing


def test_subsets_are_deterministic_nested_and_class_balanced(tmp_path, capsys):
    data = write_synthetic(SynthSpec("ssv1", 6, 10, 6, 32, 32), tmp_path / "ssv1")
    base = [
        "subsets",
        "--format",
        "ssv1",
        "--root",
        data.root,
        "--annotations",
        data.train,
        "--labels",
        data.labels,
        "--workers",
        "0",
        "--cache-dir",
        tmp_path / "c",
    ]

    def subsets(out, *extra):
        assert _run([*base, "--out", tmp_path / out, *extra], capsys)[0] == 0
        return json.loads((tmp_path / out / "subsets.json").read_text())

    first, again, other = subsets("a"), subsets("b"), subsets("c", "--seed", "1")
    assert [s["sha256"] for s in first["subsets"]] == [s["sha256"] for s in again["subsets"]]
    assert [s["sha256"] for s in first["subsets"]] != [s["sha256"] for s in other["subsets"]]
    assert [s["fraction"] for s in first["subsets"]] == [0.05, 0.1, 0.25, 0.5]
    chosen = []
    for subset in first["subsets"]:
        split = read_split("list", tmp_path / "a" / subset["file"], tmp_path / "a" / "classes.txt")
        counts = np.bincount([e.label for e in split.entries], minlength=6)
        assert (counts == max(1, round(subset["fraction"] * 7))).all(), (subset, counts)  # 7 train videos a class
        chosen.append({e.id for e in split.entries})
        assert len(find_samples(split, data.root).samples) == subset["videos"]
    assert all(a <= b for a, b in zip(chosen, chosen[1:])), "5% within 10% within 25% within 50%"
    assert flip_pairs(split.classes), "class names travel with the subset, and so does the flip"


def test_usage_errors_are_one_line_with_exit_2(capsys):
    for argv in (
        ["bogus"],
        ["check", "--format", "ssv2"],
        ["synth", "--format", "ssv2", "--out", "x", "--size", "big"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
