"""Each format's parsing traps: commas in SSv1 names, SSv2 template brackets and id-only test files,
K400 labels with parentheses, apostrophes and commas in quoted CSV fields, clips in class folders or
flat, the generic list; missing samples counted and named; left/right classes paired by name."""

import json
import logging

import pytest

from tdsclip.data.annotations import find_samples, flip_pairs, read_classes, read_split
from tdsclip.data.errors import DataError

SSV1_CLASSES = [
    "Holding something",
    "Putting something, something and something on the table",
    "Pushing something from left to right",
    "Pushing something from right to left",
]


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_ssv1_names_with_commas_split_on_the_semicolon(tmp_path):
    labels = tmp_path / "something-something-v1-labels.csv"
    labels.write_text("\n".join(SSV1_CLASSES) + "\n\n")
    train = tmp_path / "something-something-v1-train.csv"
    train.write_text(
        "100;Putting something, something and something on the table\n101;Holding something\n"
        "102;Pushing something from right to left\n"
    )
    (tmp_path / "frames" / "100").mkdir(parents=True)
    (tmp_path / "frames" / "101").mkdir()
    split = read_split("ssv1", train, labels)
    assert split.classes == tuple(SSV1_CLASSES)
    assert [(e.id, e.label) for e in split.entries] == [("100", 1), ("101", 0), ("102", 3)]
    found = find_samples(split, tmp_path / "frames")
    assert [(s.id, s.path, s.frames) for s in found.samples] == [("100", "100", True), ("101", "101", True)]
    assert found.missing == ("102",)
    test = tmp_path / "something-something-v1-test.csv"
    test.write_text("200\n201\n")
    assert [(e.id, e.label) for e in read_split("ssv1", test, labels).entries] == [("200", -1), ("201", -1)]


def test_ssv1_unknown_class_names_the_line_and_the_closest_class(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(SSV1_CLASSES))
    train = tmp_path / "train.csv"
    train.write_text("100;Holding something\n101;Holding somethin\n")
    with pytest.raises(
        DataError,
        match=r"train.csv:2: class 'Holding somethin' is not in the labels file; "
        r"did you mean 'Holding something'\?",
    ):
        read_split("ssv1", train, labels)
    with pytest.raises(DataError, match="ssv1 needs its labels file"):
        read_split("ssv1", train)


def test_ssv2_class_is_the_template_without_brackets_and_test_has_ids_only(tmp_path):
    labels = tmp_path / "something-something-v2-labels.json"
    labels.write_text(json.dumps({"Putting something onto something": "1", "Something falling like a rock": "0"}))
    train = tmp_path / "something-something-v2-train.json"
    train.write_text(
        json.dumps(
            [
                {
                    "id": "78687",
                    "label": "putting a cup onto a plate",
                    "template": "Putting [something] onto [something]",
                    "placeholders": ["a cup", "a plate"],
                },
                {
                    "id": "42326",
                    "label": "a stone falling like a rock",
                    "template": "[Something] falling like a rock",
                    "placeholders": ["a stone"],
                },
            ]
        )
    )
    split = read_split("ssv2", train, labels)
    assert split.classes == ("Something falling like a rock", "Putting something onto something")
    assert [(e.id, e.label) for e in split.entries] == [("78687", 1), ("42326", 0)]
    _touch(tmp_path / "videos" / "78687.webm")
    (tmp_path / "videos" / "42326").mkdir()  # pre-extracted frames work too
    found = find_samples(split, tmp_path / "videos")
    assert [(s.path, s.frames) for s in found.samples] == [("78687.webm", False), ("42326", True)]
    test = tmp_path / "something-something-v2-test.json"
    test.write_text(json.dumps([{"id": "1420"}, {"id": "20"}]))
    assert [(e.id, e.label) for e in read_split("ssv2", test, labels).entries] == [("1420", -1), ("20", -1)]


def test_ssv2_bad_files_are_one_line_errors(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"Holding something": "0"}))
    bad = tmp_path / "train.json"
    bad.write_text('[{"id": "1", "template": "Holding [something]"},')
    with pytest.raises(DataError, match="train.json: expected JSON, got a syntax error at line 1"):
        read_split("ssv2", bad, labels)
    bad.write_text(json.dumps([{"id": "1", "template": "Tearing [something]"}]))
    with pytest.raises(DataError, match="train.json:1: class 'Tearing something' is not in the labels file"):
        read_split("ssv2", bad, labels)
    labels.write_text(json.dumps({"A": "0", "B": "2"}))
    with pytest.raises(DataError, match=r"expected class indices 0..1, each once"):
        read_classes(labels)


K400_CSV = """label,youtube_id,time_start,time_end,split
"passing American football (in game)",--07WQ2iBlw,1,11,train
massaging person's head,-0pRpKZGLYc,32,42,train
"tying knot (not on a tie)",a_Z-9bc1XyQ,130,140,train
"making a cake, or not",zzzYYYxxx11,0,10,train
massaging person's head,missingclip,5,15,train
"""


def test_k400_labels_with_parentheses_apostrophes_and_commas_in_any_layout(tmp_path, caplog):
    train = tmp_path / "train.csv"
    train.write_text(K400_CSV)
    root = tmp_path / "k400"
    _touch(root / "train" / "passing American football (in game)" / "--07WQ2iBlw_000001_000011.mp4")
    _touch(root / "massaging_person's_head" / "-0pRpKZGLYc_000032_000042.mp4")  # underscored class folder
    _touch(root / "a_Z-9bc1XyQ_000130_000140.mp4")  # flat
    (root / "train" / "zzzYYYxxx11_000000_000010").mkdir(parents=True)  # extracted frames
    split = read_split("k400", train)
    assert split.classes == (
        "making a cake, or not",
        "massaging person's head",
        "passing American football (in game)",
        "tying knot (not on a tie)",
    )
    assert [e.label for e in split.entries] == [2, 1, 3, 0, 1]
    with caplog.at_level(logging.WARNING, logger="tdsclip.data"):
        found = find_samples(split, root)
    assert [s.path for s in found.samples] == [
        "train/passing American football (in game)/--07WQ2iBlw_000001_000011.mp4",
        "massaging_person's_head/-0pRpKZGLYc_000032_000042.mp4",
        "a_Z-9bc1XyQ_000130_000140.mp4",
        "train/zzzYYYxxx11_000000_000010",
    ]
    assert found.missing == ("missingclip_000005_000015",)
    assert "1 of 5 listed samples are missing" in caplog.text and "missingclip_000005_000015" in caplog.text


def test_k400_validation_takes_class_indices_from_the_training_csv(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text(K400_CSV)
    val = tmp_path / "validate.csv"
    val.write_text('label,youtube_id,time_start,time_end,split\n"tying knot (not on a tie)",abcdefghijk,3,13,val\n')
    assert read_split("k400", val).entries[0].label == 0, "alone, the val csv knows one class"
    assert read_split("k400", val, train).entries[0].label == 3, "with the train csv as labels file"
    (tmp_path / "bad.csv").write_text("youtube,start\nx,1\n")
    with pytest.raises(DataError, match="expected the header 'label,youtube_id,time_start,time_end,split'"):
        read_split("k400", tmp_path / "bad.csv")


def test_generic_list_with_and_without_frame_counts(tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_text("clips/a b.mp4 2\nframes/c 37 0\n\nframes/d 12 1\n")
    classes = tmp_path / "classes.txt"
    classes.write_text("zero\none\ntwo\n")
    split = read_split("list", listing, classes)
    assert [(e.id, e.label) for e in split.entries] == [("clips/a b.mp4", 2), ("frames/c", 0), ("frames/d", 1)]
    assert split.classes == ("zero", "one", "two")
    assert read_split("list", listing).classes == ("0", "1", "2"), "without names, classes are numbered"
    _touch(tmp_path / "clips" / "a b.mp4")
    (tmp_path / "frames" / "c").mkdir(parents=True)
    found = find_samples(split, tmp_path)
    assert [(s.path, s.frames) for s in found.samples] == [("clips/a b.mp4", False), ("frames/c", True)]
    assert found.missing == ("frames/d",)
    listing.write_text("clips/a.mp4 seven\n")
    with pytest.raises(DataError, match=r"train.txt:1: expected '<path> \[<num_frames>\] <label>'"):
        read_split("list", listing)
    listing.write_text("clips/a.mp4 5\n")
    with pytest.raises(DataError, match=r"train.txt:1: expected a class index 0..2, got 5"):
        read_split("list", listing, classes)


def test_missing_root_file_or_format_are_one_line_errors(tmp_path):
    listing = tmp_path / "l.txt"
    listing.write_text("a 0\n")
    with pytest.raises(DataError, match="annotation file .*nope.txt' does not exist"):
        read_split("list", tmp_path / "nope.txt")
    with pytest.raises(DataError, match="unknown data format 'ucf101': expected one of ssv1, ssv2, k400, list"):
        read_split("ucf101", listing)
    with pytest.raises(DataError, match="data root .*elsewhere' is not a folder"):
        find_samples(read_split("list", listing), tmp_path / "elsewhere")
    dup = tmp_path / "dup.txt"
    dup.write_text("a 0\na 1\n")
    with pytest.raises(DataError, match="sample id 'a' appears twice"):
        read_split("list", dup)


def test_flip_pairs_found_by_name():
    classes = [
        "Pushing something from left to right",
        "Turning the camera left while filming something",
        "Moving something up",
        "Pushing something from right to left",
        "Turning the camera right while filming something",
        "Moving something left and right",  # its mirror is not a class: a flip leaves it alone
    ]
    assert flip_pairs(classes) == {0: 3, 3: 0, 1: 4, 4: 1}
    assert flip_pairs(["abseiling", "air drumming", "playing guitar"]) == {}, "Kinetics flips are plain"


# Kinetics CSVs as released: 2017 quotes every field and adds is_cc; 2020 writes float times and `val`.
K400_2017 = """"label","youtube_id","time_start","time_end","split","is_cc"
"tying knot (not on a tie)","a_Z-9bc1XyQ",130,140,"val",0
"massaging person's head","-0pRpKZGLYc",32,42,"val",1
"making a cake, or not","zzzYYYxxx11",0,10,"val",0
"""
K400_2020 = """label,youtube_id,time_start,time_end,split
tying knot (not on a tie),a_Z-9bc1XyQ,130.0,140.0,val
massaging person's head,-0pRpKZGLYc,32.0,42.0,val
"making a cake, or not",zzzYYYxxx11,0.0,10.0,val
"""


def test_k400_2017_and_2020_csv_styles_read_the_same(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text(K400_CSV)
    root = tmp_path / "k400"
    for clip in ("a_Z-9bc1XyQ_000130_000140", "-0pRpKZGLYc_000032_000042", "zzzYYYxxx11_000000_000010"):
        _touch(root / "val" / f"{clip}.mp4")
    read = {}
    for style, text in (("2017", K400_2017), ("2020", K400_2020)):
        val = tmp_path / f"val-{style}.csv"
        val.write_text(text)
        assert read_classes(val) == ("making a cake, or not", "massaging person's head", "tying knot (not on a tie)")
        split = read_split("k400", val, classes=read_split("k400", train).classes, classes_from="the training split")
        read[style] = [(e.id, e.label) for e in split.entries]
        assert [s.path for s in find_samples(split, root).samples] == [
            "val/a_Z-9bc1XyQ_000130_000140.mp4",
            "val/-0pRpKZGLYc_000032_000042.mp4",
            "val/zzzYYYxxx11_000000_000010.mp4",
        ]
    assert (
        read["2017"]
        == read["2020"]
        == [("a_Z-9bc1XyQ_000130_000140", 3), ("-0pRpKZGLYc_000032_000042", 1), ("zzzYYYxxx11_000000_000010", 0)]
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("label,youtube_id,time_start,time_end,split\nabseiling,x,soon,10.0,val\n")
    with pytest.raises(
        DataError, match=r"bad.csv:2: expected numbers time_start and time_end \(13 or 13.0\), got 'soon'"
    ):
        read_split("k400", bad)


def test_a_validation_class_the_training_split_lacks_is_one_line_naming_it(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text(K400_CSV)
    val = tmp_path / "val.csv"
    val.write_text(K400_2020 + "juggling fire,qqqqqqqqqqq,1.0,11.0,val\nabseiling,rrrrrrrrrrr,1.0,11.0,val\n")
    with pytest.raises(DataError) as error:
        read_split("k400", val, classes=read_split("k400", train).classes, classes_from=f"the training split {train}")
    message = str(error.value)
    assert message == (
        f"{val}: class 'abseiling' and 1 more ('juggling fire') is not among the 4 classes of the "
        f"training split {train}: expected every class of this split there"
    )
