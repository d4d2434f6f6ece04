"""Seeded, class-balanced subsets of a training split, for the data-efficiency experiments.

    python -m tdsclip.data subsets --format ssv2 --root DIR --annotations FILE --labels FILE --out DIR
        [--fractions 5,10,25,50] [--seed 0]

Each class keeps round(fraction x its size) videos (at least one): those that rank first by
sha256(seed, video id). So the same fraction and seed always mean the same videos, a smaller
fraction is contained in a larger one, and a video missing on one machine changes no other
choice. Each subset is a generic list file (`<path> <num_frames> <label>`, read with
data.dataset=list and data.labels=<out>/classes.txt, which keeps the class names and so the
label-swapping flip) with its own sha256, all recorded in <out>/subsets.json beside the source
split's manifest hash.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tdsclip.data.annotations import Found, Sample
from tdsclip.data.errors import DataError
from tdsclip.data.files import write_atomic, write_json
from tdsclip.data.manifest import Manifest

DEFAULT_FRACTIONS = (0.05, 0.10, 0.25, 0.50)


@dataclass(frozen=True)
class Subset:
    fraction: float
    file: str
    videos: int
    sha256: str


def choose(samples: Sequence[Sample], fraction: float, seed: int) -> list[Sample]:
    """The class-balanced subset of `samples` for `fraction` and `seed`, in path order."""
    if not 0 < fraction <= 1:
        raise DataError(f"subset fraction: expected in (0, 1], got {fraction}")
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)
    chosen = []
    for members in by_class.values():
        members.sort(key=lambda s: hashlib.sha256(f"{seed}\0{s.id}".encode()).digest())
        chosen += members[: max(1, round(fraction * len(members)))]
    return sorted(chosen, key=lambda s: s.path)


def write_subsets(
    found: Found,
    frames: Manifest,
    out: str | os.PathLike,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> list[Subset]:
    """Write one list file per fraction, classes.txt and subsets.json into `out`."""
    out = Path(out)
    if any(s.label < 0 for s in found.samples):
        raise DataError(f"{found.split.annotations}: expected a labelled training split, got samples without labels")
    stem = Path(found.split.annotations).stem
    subsets = []
    for fraction in fractions:
        chosen = choose(found.samples, fraction, seed)
        text = "".join(f"{s.path} {frames.frames[s.path]} {s.label}\n" for s in chosen)
        name = f"{stem}-{fraction * 100:g}pct-seed{seed}.txt"
        write_atomic(out / name, text)
        subsets.append(Subset(fraction, name, len(chosen), hashlib.sha256(text.encode()).hexdigest()))
    write_atomic(out / "classes.txt", "".join(f"{name}\n" for name in found.split.classes))
    write_json(
        out / "subsets.json",
        {
            "source": os.path.abspath(found.split.annotations),
            "format": found.split.format,
            "source_manifest": frames.digest,
            "seed": seed,
            "subsets": [asdict(s) for s in subsets],
        },
    )
    return subsets
