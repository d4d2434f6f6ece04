"""Read the datasets' own annotation files and find each listed sample under the data root.

Formats, exactly as their owners distribute them:

- ssv1: `something-something-v1-labels.csv` (one class name per line, line order = index) and
  split files with lines `<id>;<class name>` (names contain commas, hence the semicolon; the test
  split has ids only). Samples are JPEG folders `<root>/<id>/`.
- ssv2: `something-something-v2-labels.json` ({class name: "index"}) and split JSONs, lists of
  {id, label, template, placeholders}; the class is the template with its square brackets removed
  (`label` names the objects). The test JSON has ids only. Samples are `<root>/<id>.webm` or
  pre-extracted folders `<root>/<id>/`.
- k400: CSVs with header `label,youtube_id,time_start,time_end,split`, in both styles found in the
  wild: 2017 (every field quoted, integer times, an extra `is_cc` column, splits train/val/test)
  and 2020 (plain fields, float times like `12.0`, split `val`); clips are named
  `<youtube_id>_<start:06d>_<end:06d>.mp4`, under a folder per class or flat, optionally inside a
  folder per split. Classes: the labels file if given, else the sorted labels of the split file.
- list: the generic `<path> [<num_frames>] <label>` lines, path relative to the root (a video
  file or a frame folder), label last.

Listed samples whose files are missing are left out, counted and reported with their first ids.

Every split of a run must index the training split's classes: `read_split(..., classes=train.classes)`
reads a validation file against them, and a class the training split lacks is an error naming it
(a split's own sorted class list would shift every index after the class it lacks, silently).
"""

from __future__ import annotations

import csv
import difflib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tdsclip.data.errors import DataError
from tdsclip.data.files import read_text

log = logging.getLogger("tdsclip.data")

Format = Literal["ssv1", "ssv2", "k400", "list"]
FORMATS: tuple[str, ...] = ("ssv1", "ssv2", "k400", "list")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov")
SHOW_IDS = 5
"""How many ids a report of missing or unreadable samples names."""


@dataclass(frozen=True)
class Entry:
    """One listed sample: its id, class index (-1 where the split has no labels) and the relative
    paths it may be found at, most likely first."""

    id: str
    label: int
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class Split:
    """An annotation file read: its format, the class names (index order) and the entries."""

    format: str
    annotations: str
    classes: tuple[str, ...]
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Sample:
    """A listed sample found under the root: `path` is relative to it, `frames` marks a JPEG folder."""

    id: str
    label: int
    path: str
    frames: bool


@dataclass(frozen=True)
class Found:
    """A split matched against a root: the samples present and the ids of those missing."""

    split: Split
    root: str
    samples: tuple[Sample, ...]
    missing: tuple[str, ...]


# ----------------------------------------------------------------------------- class names


def read_classes(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names in index order from any labels file the formats use.

    `.json`: the SSv2 {name: "index"} map. A CSV starting `label,youtube_id`: the sorted labels of
    a Kinetics split. Anything else: one name per line (the SSv1 labels csv, a classes.txt).
    """
    text = _read_text(path)
    if str(path).endswith(".json"):
        return _classes_from_json(path, text)
    if _is_kinetics_csv(text):
        return tuple(sorted({row["label"] for row in csv.DictReader(text.lstrip("\ufeff").splitlines())}))
    names = text.splitlines()
    while names and not names[-1].strip():
        names.pop()
    for number, name in enumerate(names, 1):
        if not name.strip():
            raise DataError(f"{path}:{number}: expected a class name, got an empty line")
    names = [name.strip() for name in names]
    _check_unique(path, names)
    if not names:
        raise DataError(f"{path}: expected class names, one per line, got an empty file")
    return tuple(names)


def _classes_from_json(path: str | os.PathLike, text: str) -> tuple[str, ...]:
    mapping = _parse_json(path, text)
    if not isinstance(mapping, dict) or not mapping:
        raise DataError(f"{path}: expected a JSON object {{class name: index}}, got {type(mapping).__name__}")
    try:
        by_index = {int(index): name for name, index in mapping.items()}
    except (TypeError, ValueError):
        raise DataError(f"{path}: expected integer class indices, got {sorted(mapping.values())[:3]}") from None
    if sorted(by_index) != list(range(len(mapping))):
        raise DataError(f"{path}: expected class indices 0..{len(mapping) - 1}, each once")
    return tuple(by_index[i] for i in range(len(by_index)))


def _is_kinetics_csv(text: str) -> bool:
    """A Kinetics split CSV, its header quoted (2017) or not (2020)."""
    first = next(csv.reader(text.lstrip("\ufeff").splitlines()[:1]), [])
    return first[:2] == ["label", "youtube_id"]


def flip_pairs(classes: tuple[str, ...] | list[str]) -> dict[int, int]:
    """Classes whose meaning a horizontal flip mirrors, found by name: swapping the words left and
    right in one name gives the other ("... from left to right" <-> "... from right to left")."""
    index = {name: i for i, name in enumerate(classes)}

    def mirror(name: str) -> str:
        swap = {"left": "right", "right": "left"}
        return _SIDE.sub(lambda m: _same_case(swap[m.group(0).lower()], m.group(0)), name)

    return {i: index[mirror(name)] for i, name in enumerate(classes) if mirror(name) != name and mirror(name) in index}


_SIDE = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def _same_case(word: str, like: str) -> str:
    return word.upper() if like.isupper() else word.capitalize() if like[0].isupper() else word


# ----------------------------------------------------------------------------- split files


def read_split(
    format: str,
    annotations: str | os.PathLike,
    labels: str | os.PathLike = "",
    classes: tuple[str, ...] | None = None,
    classes_from: str = "",
) -> Split:
    """Read one split file of `format`; `labels` names the classes (required for ssv1 and ssv2).

    `classes` (the training split's, described by `classes_from`) replaces the labels file: every
    split of a run then shares one index, and a class outside it is a one-line error naming it.
    """
    if format not in FORMATS:
        raise DataError(f"unknown data format {format!r}: expected one of {', '.join(FORMATS)}")
    if not str(annotations):
        raise DataError(f"no annotation file given for {format}: expected the split file (--annotations)")
    if format in ("ssv1", "ssv2") and not str(labels) and classes is None:
        expected = "something-something-v1-labels.csv" if format == "ssv1" else "something-something-v2-labels.json"
        raise DataError(f"{format} needs its labels file ({expected}): pass --labels or data.labels")
    source = classes_from or "the labels file"
    if classes is None and str(labels):
        classes = read_classes(labels)
    reader = {"ssv1": _ssv1, "ssv2": _ssv2, "k400": _k400, "list": _list}[format]
    entries, classes = reader(Path(annotations), classes, source)
    ids = [e.id for e in entries]
    _check_unique(annotations, ids, what="sample id")
    if not entries:
        raise DataError(f"{annotations}: expected at least one sample, got none")
    return Split(format, str(annotations), tuple(classes), tuple(entries))


def _ssv1(path: Path, classes: tuple[str, ...] | None, source: str) -> tuple[list[Entry], tuple[str, ...]]:
    assert classes is not None
    index = {name: i for i, name in enumerate(classes)}
    entries = []
    for number, line in _lines(path):
        video_id, sep, name = line.partition(";")
        video_id = video_id.strip()
        if not video_id or (sep and not name.strip()):
            raise DataError(f"{path}:{number}: expected '<id>;<class name>' or '<id>', got {line!r}")
        label = _class_index(path, number, name.strip(), index, source) if sep else -1
        entries.append(Entry(video_id, label, (video_id,)))
    return entries, classes


def _ssv2(path: Path, classes: tuple[str, ...] | None, source: str) -> tuple[list[Entry], tuple[str, ...]]:
    assert classes is not None
    index = {name: i for i, name in enumerate(classes)}
    records = _parse_json(path, _read_text(path))
    if not isinstance(records, list):
        raise DataError(
            f"{path}: expected a JSON list of {{id, label, template, placeholders}}, got {type(records).__name__}"
        )
    entries = []
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict) or "id" not in record:
            raise DataError(f"{path}: record {number}: expected an object with an 'id', got {str(record)[:80]!r}")
        video_id = str(record["id"])
        template = record.get("template")
        name = None if template is None else template.replace("[", "").replace("]", "")
        label = -1 if name is None else _class_index(path, number, name, index, source)
        entries.append(Entry(video_id, label, (f"{video_id}.webm", video_id)))
    return entries, classes


_K400_COLUMNS = ("youtube_id", "time_start", "time_end")


def _k400(path: Path, classes: tuple[str, ...] | None, source: str) -> tuple[list[Entry], tuple[str, ...]]:
    reader = csv.DictReader(_read_text(path).lstrip("\ufeff").splitlines())
    columns = reader.fieldnames or []
    if any(c not in columns for c in _K400_COLUMNS):
        raise DataError(
            f"{path}: expected the header 'label,youtube_id,time_start,time_end,split', got {','.join(columns)!r}"
        )
    rows = list(reader)
    labelled = "label" in columns
    if classes is None:
        classes = tuple(sorted({row["label"] for row in rows})) if labelled else ()
    elif labelled:
        _check_known(path, [row["label"] or "" for row in rows], classes, source)
    index = {name: i for i, name in enumerate(classes)}
    entries = []
    for number, row in enumerate(rows, 2):
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except (TypeError, ValueError):
            raise DataError(
                f"{path}:{number}: expected numbers time_start and time_end (13 or 13.0), "
                f"got {row['time_start']!r}, {row['time_end']!r}"
            ) from None
        clip = f"{row['youtube_id']}_{start:06d}_{end:06d}"
        label_name = row.get("label") or ""
        label = _class_index(path, number, label_name, index, source) if labelled else -1
        entries.append(Entry(clip, label, _k400_candidates(clip, label_name, row.get("split") or "")))
    return entries, classes


def _k400_candidates(clip: str, label: str, split: str) -> tuple[str, ...]:
    splits = {"val": ("val", "validate"), "validate": ("validate", "val")}.get(split, (split,) if split else ())
    class_dirs = tuple(dict.fromkeys(d for d in (label, label.replace(" ", "_")) if d))
    folders = [f"{s}/{c}/" for s in splits for c in class_dirs] + [f"{c}/" for c in class_dirs]
    folders += [f"{s}/" for s in splits] + [""]
    return tuple(f"{folder}{clip}{ext}" for folder in folders for ext in (*VIDEO_EXTENSIONS, ""))


_LIST_LINE = re.compile(r"(?P<path>.+?)(?:\s+(?P<frames>\d+))?\s+(?P<label>-?\d+)\s*")


def _list(path: Path, classes: tuple[str, ...] | None, source: str) -> tuple[list[Entry], tuple[str, ...]]:
    entries = []
    for number, line in _lines(path):
        match = _LIST_LINE.fullmatch(line.strip())
        if match is None:
            raise DataError(
                f"{path}:{number}: expected '<path> [<num_frames>] <label>' with an integer label last, got {line!r}"
            )
        label = int(match["label"])
        if label < 0 or (classes is not None and label >= len(classes)):
            limit = f"0..{len(classes) - 1}" if classes is not None else ">= 0"
            where = f" ({len(classes)} classes in {source})" if classes is not None else ""
            raise DataError(f"{path}:{number}: expected a class index {limit}, got {label}{where}")
        rel = match["path"].strip().rstrip("/")
        entries.append(Entry(rel, label, (rel,)))
    if classes is None:
        classes = tuple(str(i) for i in range(max(e.label for e in entries) + 1)) if entries else ()
    return entries, classes


# ----------------------------------------------------------------------------- finding samples


def find_samples(split: Split, root: str | os.PathLike) -> Found:
    """Match each entry to the first of its candidate paths present under `root`; report the rest."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"data root {str(root)!r} is not a folder: expected the folder holding the videos or frame folders"
        )
    listing = _Listings(root)
    samples, missing = [], []
    for entry in split.entries:
        hit = next((c for c in entry.candidates if listing.kind(c) is not None), None)
        if hit is None:
            missing.append(entry.id)
        else:
            samples.append(Sample(entry.id, entry.label, hit, listing.kind(hit) == "dir"))
    if missing:
        log.warning(
            "%s: %d of %d listed samples are missing under %s and left out (first: %s)",
            split.annotations,
            len(missing),
            len(split.entries),
            root,
            ", ".join(missing[:SHOW_IDS]),
        )
    return Found(split, str(root), tuple(samples), tuple(missing))


class _Listings:
    """Which names exist in each folder, each folder listed once (one scandir beats a stat per
    candidate: a Kinetics entry has dozens of candidate paths, SSv2 roots hold 220k files)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folders: dict[str, dict[str, bool]] = {}

    def kind(self, relative: str) -> str | None:
        parent, _, name = relative.rpartition("/")
        if parent not in self.folders:
            try:
                with os.scandir(self.root / parent) as entries:
                    self.folders[parent] = {e.name: e.is_dir() for e in entries}
            except OSError:
                self.folders[parent] = {}
        is_dir = self.folders[parent].get(name)
        return None if is_dir is None else "dir" if is_dir else "file"


# ----------------------------------------------------------------------------- helpers


def _read_text(path: str | os.PathLike) -> str:
    return read_text(path, "annotation file")


def _parse_json(path: str | os.PathLike, text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: expected JSON, got a syntax error at line {error.lineno}: {error.msg}") from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(_read_text(path).lstrip("\ufeff").splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line.rstrip("\r\n")


def _class_index(path: str | os.PathLike, number: int, name: str, index: dict[str, int], source: str = "") -> int:
    if name in index:
        return index[name]
    close = difflib.get_close_matches(name, list(index), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DataError(f"{path}:{number}: class {name!r} is not in {source or 'the labels file'}{hint}")


def _check_known(path: str | os.PathLike, names: list[str], classes: tuple[str, ...], source: str) -> None:
    """Every class name of a split file is one of `classes`; else one line naming those that are not."""
    known = set(classes)
    unknown = sorted({name for name in names if name not in known})
    if unknown:
        more = (
            f" and {len(unknown) - 1} more ({', '.join(map(repr, unknown[1:SHOW_IDS]))}{', ...' if len(unknown) > SHOW_IDS else ''})"
            if len(unknown) > 1
            else ""
        )
        raise DataError(
            f"{path}: class {unknown[0]!r}{more} is not among the {len(classes)} classes of "
            f"{source or 'the labels file'}: expected every class of this split there"
        )


def _check_unique(path: str | os.PathLike, values: list[str], what: str = "class name") -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise DataError(f"{path}: {what} {value!r} appears twice; expected each once")
        seen.add(value)
