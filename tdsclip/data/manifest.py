"""The dataset manifest: one hash that identifies exactly what data a run saw.

It covers the class names, each found sample's relative path, frame count and label, and, for
frames extracted by `python -m tdsclip.data extract` or videos re-encoded by `... resize`, the
settings recorded in the root's provenance.json (tool, version, naming, size): frame counts and
pixels differ by preparation and move accuracy.
Absolute locations and file times are left out, so a copy of the data elsewhere hashes the same.

Counting frames means opening every video, minutes for SSv2, so the counts are cached per
annotation file and root (under the cache folder, `manifests/`), keyed by each file's size and
modification time: a start-up after the first only stats the files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tdsclip.data.annotations import VIDEO_EXTENSIONS, Found, Sample
from tdsclip.data.errors import DataError, UnreadableError
from tdsclip.data.files import write_json
from tdsclip.data.video import frame_count

log = logging.getLogger("tdsclip.data")

PROVENANCE = "provenance.json"
CACHE_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    """The hash and the frame count of each found sample (0 where a video cannot be opened)."""

    digest: str
    frames: dict[str, int]


def default_cache_dir() -> Path:
    """$TDSCLIP_CACHE, else ~/.cache/tdsclip."""
    return Path(os.environ.get("TDSCLIP_CACHE") or Path.home() / ".cache" / "tdsclip")


def videos_to_convert(root: Path, out: Path, wanted: dict, done: str) -> list[Path]:
    """The videos under `root` (relative paths, sorted) for a tree conversion into `out` (extract,
    resize), after refusing a root that is not a folder and an `out` that an earlier run `done`
    with other settings (resuming would mix two kinds of output)."""
    if not root.is_dir():
        raise DataError(f"video root {str(root)!r} is not a folder: expected the folder holding the videos")
    if (out / PROVENANCE).exists() and provenance_header(out) != wanted:
        raise DataError(
            f"{out} was {done} with {provenance_header(out)}; expected {wanted} to resume (use a new --out)"
        )
    videos = sorted(
        p.relative_to(root) for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
    )
    if not videos:
        raise DataError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) under {root}")
    return videos


def provenance_header(root: str | os.PathLike) -> dict:
    """The extractor's (or resizer's) settings from the root's provenance.json, per-video entries and
    failures left out (the samples are in the manifest's own entries), or {} for data as distributed."""
    path = Path(root) / PROVENANCE
    if not path.exists():
        return {}
    try:
        header = json.loads(path.read_text())
        header.pop("videos", None)
        header.pop("failed", None)
    except (OSError, ValueError, AttributeError) as error:
        raise DataError(
            f"{path}: expected the JSON object extract writes, got {type(error).__name__}: {error}"
        ) from None
    return header


def cache_file(
    cache_dir: str | os.PathLike | None, fmt: str, annotations: str | os.PathLike, root: str | os.PathLike
) -> Path:
    """The frame-count cache of one (format, annotation file, root)."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    key = hashlib.sha256("\0".join([fmt, os.path.abspath(annotations), os.path.abspath(root)]).encode()).hexdigest()[
        :24
    ]
    return cache_dir / "manifests" / f"{key}.json"


def manifest(found: Found, cache_dir: str | os.PathLike | None = None, workers: int = 0, variant: str = "") -> Manifest:
    """Hash `found`, counting frames through the cache; `workers` > 0 counts in parallel.

    The digest is remembered in the cache under `variant` (e.g. a subset of the split) with the
    annotation file's and root's stats, so a planner can read it back without listing the root.
    """
    path = cache_file(cache_dir, found.split.format, found.split.annotations, found.root)
    data = _read(path)
    cached = data.get("entries", {})
    stats = {s.path: _stat(Path(found.root) / s.path) for s in found.samples}
    frames, todo = {}, []
    for sample in found.samples:
        entry = cached.get(sample.path)
        if entry is not None and entry[:2] == stats[sample.path]:
            frames[sample.path] = entry[2]
        else:
            todo.append(sample)
    if todo:
        log.info("counting frames of %d samples under %s (cached afterwards)", len(todo), found.root)
        frames.update(zip((s.path for s in todo), _count(found.root, todo, workers)))
    result = Manifest(digest(found, frames), frames)
    # Other variants' digests (e.g. other subsets) stay valid while no sample they may hold changed:
    # samples counted for the first time do not touch them, a changed file forgets them all.
    changed = any(sample.path in cached for sample in todo)
    digests = {} if changed else data.get("digests", {})
    remembered = {"digest": result.digest, "stats": _split_stats(found.split.annotations, found.root)}
    if todo or digests.get(variant) != remembered:
        entries = {**cached, **{p: [*stats[p], n] for p, n in frames.items()}}
        write_json(
            path,
            {
                "version": CACHE_VERSION,
                "annotations": os.path.abspath(found.split.annotations),
                "root": os.path.abspath(found.root),
                "entries": entries,
                "digests": {**digests, variant: remembered},
            },
        )
    return result


def remembered_digest(
    fmt: str,
    annotations: str | os.PathLike,
    root: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    variant: str = "",
) -> str | None:
    """The digest `manifest` last computed for this split and variant, if the annotation file and
    the root are unchanged since (by size and modification time); None otherwise. Reads one file."""
    try:
        entry = _read(cache_file(cache_dir, fmt, annotations, root)).get("digests", {}).get(variant)
        return entry["digest"] if entry and entry["stats"] == _split_stats(annotations, root) else None
    except OSError:
        return None


def _split_stats(annotations: str | os.PathLike, root: str | os.PathLike) -> list[list[int]]:
    return [_stat(Path(annotations)), _stat(Path(root))]


def digest(found: Found, frames: dict[str, int]) -> str:
    """sha256 of the canonical text: classes, extractor, then `path<TAB>frames<TAB>label` lines."""
    hasher = hashlib.sha256()
    hasher.update(
        json.dumps(
            {"classes": list(found.split.classes), "provenance": provenance_header(found.root)}, sort_keys=True
        ).encode()
    )
    for sample in sorted(found.samples, key=lambda s: s.path):
        hasher.update(f"\n{sample.path}\t{frames[sample.path]}\t{sample.label}".encode())
    return hasher.hexdigest()


def _count(root: str, samples: list[Sample], workers: int) -> list[int]:
    jobs = [(os.path.join(root, s.path), s.frames) for s in samples]
    if workers > 0 and len(jobs) > 64:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(_count_one, jobs, chunksize=64))
    return [_count_one(job) for job in jobs]


def _count_one(job: tuple[str, bool]) -> int:
    try:
        return frame_count(*job)
    except UnreadableError:
        return 0


def _stat(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _read(path: Path) -> dict:
    """The cache file's content, or {} when it is missing, unreadable or of another version."""
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else {}
    except (OSError, ValueError):
        return {}
