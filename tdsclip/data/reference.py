"""Compare a dataset with a list researchers share: the first suspect when a number is 1 point off.

    python -m tdsclip.data check --format k400 --root DIR --annotations val.csv --reference val_list.txt \
        [--reference-labels kinetics_400_labels.csv]

Reference lists are what the authors' code (and TSM- or Side4Video-style code) trains from:
`<path> <num_frames> <label>` lines, the path relative to their root (a video file or a frame
folder), and beside them an `id,name` labels CSV. A sample of ours and a line of the list are the
same video when the last part of their paths agree, video extension dropped (`abseiling/x.mp4`,
`x.mp4` and the frame folder `x/` are all `x`), which is how copies of one dataset differ.

The comparison says: listed / found (in both) / missing (listed, not in ours) / extra (ours, not
listed), the per-video frame-count differences summarised (ours minus the list's: "all 24777
compared videos differ by exactly +1 frame: the list was extracted with another decoder"), and
label disagreements by class name (with the labels CSV; by index without it). Its summary goes into
the run's data fingerprint, so a report can say that a row was evaluated on data that differs.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass

from tdsclip.data.annotations import SHOW_IDS, VIDEO_EXTENSIONS, Found
from tdsclip.data.errors import DataError
from tdsclip.data.files import read_text

_LINE = re.compile(r"(?P<path>.+?)\s+(?P<frames>\d+)\s+(?P<label>\d+)\s*")


@dataclass(frozen=True)
class Listed:
    """One line of a reference list."""

    path: str
    frames: int
    label: int


@dataclass(frozen=True)
class Reference:
    """A reference list read: its lines by sample key, the class names (if a labels CSV was given)
    and the files' sha256 (the list is named by its content, not its location)."""

    path: str
    entries: dict[str, Listed]
    names: tuple[str, ...] | None
    sha256: str


def sample_key(path: str) -> str:
    """The part of a sample's path copies of a dataset agree on: its last component, extension dropped."""
    name = path.replace("\\", "/").rstrip("/").rpartition("/")[2]
    stem, dot, ext = name.rpartition(".")
    return stem if dot and f".{ext.lower()}" in VIDEO_EXTENSIONS else name


def read_reference(path: str | os.PathLike, labels: str | os.PathLike = "") -> Reference:
    """Read a `path num_frames label` list and, if given, its `id,name` labels CSV."""
    text = _text(path)
    entries: dict[str, Listed] = {}
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.fullmatch(line.strip())
        if match is None:
            raise DataError(
                f"{path}:{number}: expected '<path> <num_frames> <label>' (integers last), got {line[:80]!r}"
            )
        key = sample_key(match["path"])
        if key in entries:
            raise DataError(
                f"{path}:{number}: video {key!r} is listed twice (also as {entries[key].path!r}); expected each once"
            )
        entries[key] = Listed(match["path"], int(match["frames"]), int(match["label"]))
    if not entries:
        raise DataError(f"{path}: expected '<path> <num_frames> <label>' lines, got none")
    names = read_reference_labels(labels) if str(labels) else None
    if names is not None:
        bad = next((e for e in entries.values() if e.label >= len(names)), None)
        if bad is not None:
            raise DataError(f"{path}: label {bad.label} of {bad.path!r} is not in {labels} (ids 0..{len(names) - 1})")
    digest = hashlib.sha256(text.encode() + (_text(labels).encode() if str(labels) else b"")).hexdigest()
    return Reference(str(path), entries, names, digest)


def read_reference_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names by id from an `id,name` CSV (ids 0..N-1, each once, any order)."""
    rows = list(csv.reader(_text(path).lstrip("\ufeff").splitlines()))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["id", "name"]:
        raise DataError(
            f"{path}: expected a labels CSV with the header 'id,name', got {','.join(rows[0]) if rows else 'an empty file'!r}"
        )
    by_id: dict[int, str] = {}
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        try:
            by_id[int(row[0])] = row[1].strip()
        except (ValueError, IndexError):
            raise DataError(
                f"{path}:{number}: expected '<id>,<name>' with an integer id, got {','.join(row)!r}"
            ) from None
    if sorted(by_id) != list(range(len(by_id))) or len(by_id) != len(rows[1:]) - rows[1:].count([]):
        raise DataError(f"{path}: expected ids 0..{len(by_id) - 1}, each once")
    return tuple(by_id[i] for i in range(len(by_id)))


def compare(found: Found, frames: dict[str, int], reference: Reference) -> dict:
    """The comparison of found samples (with their frame counts) and a reference list, as a
    JSON-ready dict whose `summary` is one line and `matches` says whether nothing differs."""
    ours = {sample_key(s.path): s for s in found.samples}
    both = [k for k in ours if k in reference.entries]
    missing = sorted(k for k in reference.entries if k not in ours)
    extra = sorted(k for k in ours if k not in reference.entries)
    differences = collections.Counter(frames[ours[k].path] - reference.entries[k].frames for k in both)
    frame_note = _frames_note(differences, len(both))
    numbered = found.split.classes == tuple(str(i) for i in range(len(found.split.classes)))  # a list without names
    by_name = reference.names is not None and not numbered
    pairs: collections.Counter[tuple[str, str]] = collections.Counter()
    examples = []
    for key in both:
        sample, listed = ours[key], reference.entries[key]
        if sample.label < 0:
            continue  # an unlabelled split (test)
        mine = found.split.classes[sample.label] if by_name else str(sample.label)
        theirs = reference.names[listed.label] if by_name and reference.names is not None else str(listed.label)
        if _normal(mine) != _normal(theirs):
            pairs[(mine, theirs)] += 1
            if len(examples) < SHOW_IDS:
                examples.append(f"{key}: ours {mine!r}, list {theirs!r}")
    disagree = sum(pairs.values())
    labels_note = f"{disagree} of {len(both)} disagree by {'name' if by_name else 'index (no labels CSV)'}" + (
        ": " + "; ".join(f"ours {a!r} = list {b!r} x{n}" for (a, b), n in pairs.most_common(3)) if disagree else ""
    )
    matches = not missing and not extra and set(differences) <= {0} and not disagree
    summary = (
        "matches the reference"
        if matches
        else f"differs from the reference: {len(missing)} missing, {len(extra)} extra, {frame_note}, labels {labels_note}"
    )
    return {
        "reference": reference.path,
        "reference_sha256": reference.sha256,
        "listed": len(reference.entries),
        "found": len(both),
        "missing": len(missing),
        "extra": len(extra),
        "missing_ids": missing[:SHOW_IDS],
        "extra_ids": extra[:SHOW_IDS],
        "frame_differences": {f"{d:+d}": n for d, n in sorted(differences.items(), key=lambda kv: -kv[1])[:SHOW_IDS]},
        "frames": frame_note,
        "label_disagreements": disagree,
        "label_examples": examples,
        "labels": labels_note,
        "matches": matches,
        "summary": summary,
    }


def text(comparison: dict) -> str:
    """The comparison as the check command prints it, a few aligned lines."""
    c = comparison
    first = lambda ids, n: f" (first: {', '.join(ids)}{', ...' if n > len(ids) else ''})" if ids else ""
    lines = [
        f"{'reference':<12}{c['reference']} (sha256 {c['reference_sha256'][:16]})",
        f"{'  listed':<12}{c['listed']}",
        f"{'  found':<12}{c['found']}",
        f"{'  missing':<12}{c['missing']}{first(c['missing_ids'], c['missing'])}",
        f"{'  extra':<12}{c['extra']}{first(c['extra_ids'], c['extra'])}",
        f"{'  frames':<12}{c['frames']}",
        f"{'  labels':<12}{c['labels']}",
    ]
    lines += [f"{'':<14}{example}" for example in c["label_examples"]]
    lines.append(f"{'  verdict':<12}{'matches the reference' if c['matches'] else 'DIFFERS from the reference'}")
    return "\n".join(lines)


def _frames_note(differences: collections.Counter, compared: int) -> str:
    if not compared:
        return "no video in both to compare frame counts"
    same = differences.get(0, 0)
    if same == compared:
        return f"frame counts agree on all {compared} videos"
    ((common, count),) = differences.most_common(1)
    unit = "frame" if abs(common) == 1 else "frames"
    if common != 0 and count == compared:
        return f"all {compared} videos differ by exactly {common:+d} {unit} (ours - list): the list was extracted with another decoder"
    spread = ", ".join(f"{d:+d} x{n}" for d, n in differences.most_common(SHOW_IDS) if d != 0)
    return f"{compared - same} of {compared} videos differ in frame count (ours - list: {spread})"


def _normal(name: str) -> str:
    """Class names as lists write them: underscores for spaces, other case, stray quotes."""
    return " ".join(unicodedata.normalize("NFC", name).replace("_", " ").strip().strip('"').casefold().split())


def _text(path: str | os.PathLike) -> str:
    return read_text(path, "reference file")
