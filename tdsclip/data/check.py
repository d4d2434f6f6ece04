"""Preflight: read everything a run would read and say whether the data is usable.

    python -m tdsclip.data check --format ssv2 --root DIR --annotations FILE --labels FILE [--json]

Reads the annotation and labels files, finds every listed sample, decodes every frame of every
found sample (all JPEGs of a folder; a video in one sequential pass, whose length must match what
the reader and the container header report within the run's tolerance), and prints: samples
listed, found, missing (with ids), unreadable (with ids and reasons), number of classes, frames per
video (min / median / max) and the manifest hash a run on this data will record. The data is
usable (exit 0) when some sample is found and at most `max_unreadable` of them are unreadable
(the run's data.max_corrupt_fraction); otherwise exit 1. With --json, one JSON object.
"""

from __future__ import annotations

import logging
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field

from PIL import Image

from tdsclip.data.annotations import SHOW_IDS, find_samples, read_split
from tdsclip.data.errors import UnreadableError
from tdsclip.data.manifest import manifest
from tdsclip.data.video import frame_names, video_problem

log = logging.getLogger("tdsclip.data")


@dataclass
class Report:
    format: str
    root: str
    annotations: str
    listed: int
    found: int
    missing: int
    unreadable: int
    classes: int
    manifest: str
    usable: bool
    frames: dict = field(default_factory=dict)
    missing_ids: list = field(default_factory=list)
    unreadable_ids: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        lines = [
            f"{key:<12}{value}"
            for key, value in (
                ("format", self.format),
                ("root", self.root),
                ("annotations", self.annotations),
                ("listed", self.listed),
                ("found", self.found),
            )
        ]
        lines.append(f"{'missing':<12}{self.missing}" + _first(self.missing_ids, self.missing))
        lines.append(f"{'unreadable':<12}{self.unreadable}" + _first(list(self.unreadable_ids), self.unreadable))
        lines += [f"  {i}: {reason}" for i, reason in list(self.unreadable_ids.items())[:SHOW_IDS]]
        lines.append(f"{'classes':<12}{self.classes}")
        if self.frames:
            lines.append(
                f"{'frames':<12}min {self.frames['min']} / median {self.frames['median']} / max {self.frames['max']}"
            )
        lines.append(f"{'manifest':<12}{self.manifest}")
        lines.append("usable" if self.usable else "NOT usable: no sample found, or too many unreadable")
        return "\n".join(lines)


def _first(ids: list, total: int) -> str:
    return f" (first: {', '.join(ids[:SHOW_IDS])}{', ...' if total > SHOW_IDS else ''})" if ids else ""


def check(
    format: str,
    root: str,
    annotations: str,
    labels: str = "",
    workers: int = 0,
    max_unreadable: float = 0.01,
    cache_dir: str | None = None,
) -> Report:
    """Everything the preflight prints, as a Report; DataError for unusable annotation files."""
    found = find_samples(read_split(format, annotations, labels), root)
    digest = manifest(found, cache_dir, workers)
    jobs = [(os.path.join(root, s.path), s.frames, digest.frames[s.path]) for s in found.samples]
    if workers > 0 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            problems = list(pool.map(_problem, jobs, chunksize=8))
    else:
        problems = [_problem(job) for job in jobs]
    unreadable = {s.id: p for s, p in zip(found.samples, problems) if p}
    counts = [digest.frames[s.path] for s in found.samples if s.id not in unreadable]
    frames = {"min": min(counts), "median": statistics.median(counts), "max": max(counts)} if counts else {}
    usable = bool(found.samples) and len(unreadable) <= max_unreadable * len(found.samples)
    return Report(
        format,
        str(root),
        str(annotations),
        len(found.split.entries),
        len(found.samples),
        len(found.missing),
        len(unreadable),
        len(found.split.classes),
        digest.digest,
        usable,
        frames,
        list(found.missing[:100]),
        unreadable,
    )


def _problem(job: tuple[str, bool, int]) -> str:
    """Why a sample cannot be used, or '' when every frame decodes."""
    path, is_folder, reported = job
    try:
        return _folder_problem(path) if is_folder else _video_problem(path, reported)
    except UnreadableError as error:
        return error.reason


def _folder_problem(path: str) -> str:
    names = frame_names(path)
    if not names:
        return "no JPEG frames in the folder"
    sizes = set()
    for name in names:
        try:
            with Image.open(os.path.join(path, name)) as image:
                image.load()
                sizes.add(image.size)
        except (OSError, ValueError, SyntaxError) as error:
            return f"{name}: cannot decode: {error}"
    return f"frames differ in size: {sorted(sizes)}" if len(sizes) > 1 else ""


def _video_problem(path: str, reported: int) -> str:
    return video_problem(path) if reported else "cannot be opened by the reader"
