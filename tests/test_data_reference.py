"""A generated Kinetics copy compared with lists in the format researchers share (`path num_frames
label` + an `id,name` labels CSV): missing, extra, frame counts off by one decoder, labels by name;
the comparison in the run's data fingerprint; bad lists as one-line errors."""

import csv
import json
from pathlib import Path

import pytest

from tdsclip.config import RunConfig, apply_overrides
from tdsclip.data.__main__ import main
from tdsclip.data.annotations import find_samples, read_split
from tdsclip.data.errors import DataError
from tdsclip.data.locate import fingerprint, found_samples
from tdsclip.data.manifest import manifest
from tdsclip.data.reference import read_reference, sample_key
from tdsclip.data.synth import SynthSpec, write_synthetic


@pytest.fixture(scope="module")
def k400(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    data = write_synthetic(SynthSpec("k400", 6, 3, 12, 64, 48), folder / "k400")
    found = find_samples(read_split("k400", data.val, classes=read_split("k400", data.train).classes), data.root)
    frames = manifest(found, folder / "cache").frames
    return data, found, frames, folder


def _write_list(folder: Path, found, frames, shift=0, drop=0, unknown=(), relabel=None):
    """A Side4Video-style list of the val split: `<class_with_underscores>/<clip>.mp4 <frames> <id>`, with
    the classes numbered in reverse order in the labels CSV (so indices differ and names must be used)."""
    classes = found.split.classes
    ids = {name: len(classes) - 1 - i for i, name in enumerate(classes)}
    with open(folder / "labels.csv", "w", newline="") as handle:  # names with commas come quoted, as csv writes them
        csv.writer(handle, lineterminator="\n").writerows(
            [("id", "name"), *((ids[n], n) for n in sorted(classes, key=ids.get))]
        )
    lines = []
    for sample in found.samples[drop:]:
        name = classes[sample.label] if relabel is None or sample.id != relabel[0] else relabel[1]
        lines.append(f"{name.replace(' ', '_')}/{sample.id}.mp4 {frames[sample.path] + shift} {ids[name]}")
    lines += [f"abseiling/{clip}.mp4 250 0" for clip in unknown]
    (folder / "val_list.txt").write_text("\n".join(lines) + "\n")
    return folder / "val_list.txt", folder / "labels.csv"


def _check(data, folder, listing, labels, capsys, *extra):
    code = main(
        [
            "check",
            "--format",
            "k400",
            "--root",
            data.root,
            "--annotations",
            data.val,
            "--labels",
            data.train,
            "--workers",
            "0",
            "--cache-dir",
            str(folder / "cache"),
            "--reference",
            str(listing),
            "--reference-labels",
            str(labels),
            *extra,
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


def test_another_decoders_list_differs_by_exactly_one_frame_on_every_video(k400, tmp_path, capsys):
    data, found, frames, folder = k400
    listing, labels = _write_list(tmp_path, found, frames, shift=-1)
    code, out, _ = _check(data, folder, listing, labels, capsys)
    assert code == 0, "a usable dataset stays usable; the comparison is information"
    assert (
        "  frames    all 6 videos differ by exactly +1 frame (ours - list): the list was extracted with another decoder"
        in out
    )
    assert "  labels    0 of 6 disagree by name" in out and "  verdict   DIFFERS from the reference" in out
    same, _ = _write_list(tmp_path, found, frames)
    code, out, _ = _check(data, folder, same, labels, capsys, "--json")
    result = json.loads(out)["reference"]
    assert result["matches"] and result["summary"] == "matches the reference"
    assert (result["listed"], result["found"], result["missing"], result["extra"]) == (6, 6, 0, 0)


def test_missing_extra_and_label_disagreements_are_named(k400, tmp_path, capsys):
    data, found, frames, folder = k400
    wrong = found.samples[3]
    other = next(c for c in found.split.classes if c != found.split.classes[wrong.label])
    listing, labels = _write_list(
        tmp_path, found, frames, drop=1, unknown=["zzzzzzzzzzz_000001_000011"], relabel=(wrong.id, other)
    )
    code, out, _ = _check(data, folder, listing, labels, capsys, "--json")
    result = json.loads(out)["reference"]
    assert (result["listed"], result["found"], result["missing"], result["extra"]) == (6, 5, 1, 1)
    assert result["missing_ids"] == ["zzzzzzzzzzz_000001_000011"] and result["extra_ids"] == [found.samples[0].id]
    assert result["label_disagreements"] == 1
    assert result["label_examples"] == [f"{wrong.id}: ours {found.split.classes[wrong.label]!r}, list {other!r}"]
    assert result["frames"] == "frame counts agree on all 5 videos" and not result["matches"]


def test_the_fingerprint_carries_the_comparison_into_the_run_record(k400, tmp_path):
    data, found, frames, folder = k400
    listing, labels = _write_list(tmp_path, found, frames, shift=-1)
    cfg = apply_overrides(
        RunConfig(),
        {
            "data.dataset": "k400",
            "data.root": data.root,
            "data.train_annotations": data.train,
            "data.val_annotations": data.val,
            "data.val_reference": str(listing),
            "data.reference_labels": str(labels),
            "data.cache_dir": str(folder / "cache"),
            "data.num_workers": 0,
        },
    ).data
    train_found, train_digest, train_listed = found_samples(cfg, "train")
    val_found, val_digest, _ = found_samples(cfg, "val")
    from tdsclip.data.locate import reference_comparison

    comparison = reference_comparison(cfg, "val", val_found, val_digest)
    assert reference_comparison(cfg, "train", train_found, train_digest) is None, "no training reference given"

    def info(f, d, listed, ref):
        return {
            "listed": listed,
            "found": len(f.samples),
            "missing": len(f.missing),
            "classes": len(f.split.classes),
            "manifest": d.digest,
            "reference": ref,
        }

    print_ = fingerprint(
        "m" * 24, info(train_found, train_digest, train_listed, None), info(val_found, val_digest, 6, comparison)
    )
    assert print_["differs_from_reference"] is True and set(print_["reference"]) == {"val"}
    assert print_["splits"]["val"] == {
        "listed": 6,
        "found": 6,
        "missing": 0,
        "classes": 6,
        "manifest": val_digest.digest,
    }
    assert print_["summary"] == (
        "train 12 of 12 listed videos; val 6 of 6 listed videos; val differs from the reference: "
        "0 missing, 0 extra, all 6 videos differ by exactly +1 frame (ours - list): the list was "
        "extracted with another decoder, labels 0 of 6 disagree by name"
    )
    assert (
        fingerprint("m", info(train_found, train_digest, 12, None), info(val_found, val_digest, 6, None))[
            "differs_from_reference"
        ]
        is None
    )


def test_bad_reference_lists_are_one_line_errors(tmp_path, k400, capsys):
    listing, labels = tmp_path / "list.txt", tmp_path / "labels.csv"
    labels.write_text("id,name\n0,abseiling\n1,zumba\n")
    for text, message in (
        (
            "a/b.mp4 twelve 0\n",
            "list.txt:1: expected '<path> <num_frames> <label>' (integers last), got 'a/b.mp4 twelve 0'",
        ),
        ("a/b.mp4 12 0\nc/b 11 1\n", "list.txt:2: video 'b' is listed twice (also as 'a/b.mp4'); expected each once"),
        ("a/b.mp4 12 2\n", "list.txt: label 2 of 'a/b.mp4' is not in"),
    ):
        listing.write_text(text)
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_reference(listing, labels)
    listing.write_text("a/b.mp4 12 0\n")
    labels.write_text("name,id\nabseiling,0\n")
    with pytest.raises(DataError, match="labels.csv: expected a labels CSV with the header 'id,name', got 'name,id'"):
        read_reference(listing, labels)
    labels.write_text("id,name\n0,abseiling\n0,zumba\n")
    with pytest.raises(DataError, match=r"expected ids 0..0, each once"):
        read_reference(listing, labels)
    assert [sample_key(p) for p in ("abseiling/x_000001_000011.mp4", "x_000001_000011/", "78687.webm", "a.b/c.d")] == [
        "x_000001_000011",
        "x_000001_000011",
        "78687",
        "c.d",
    ]
    data = k400[0]
    code = main(
        ["check", "--format", "k400", "--root", data.root, "--annotations", data.val, "--reference-labels", str(labels)]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --reference-labels needs --reference LIST") and err.count("\n") == 1
    code = main(
        [
            "check",
            "--format",
            "k400",
            "--root",
            data.root,
            "--annotations",
            data.val,
            "--workers",
            "0",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--reference",
            str(tmp_path / "nope.txt"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and err == f"error: reference file '{tmp_path / 'nope.txt'}' does not exist\n"
