"""A small synthetic dataset in a real format whose classes differ only in motion.

    python -m tdsclip.data synth --format ssv2 --out DIR [--classes 8 --videos-per-class 12]

An object of random shape, colour, size and texture on a random textured background moves left to
right or right to left, up or down, towards or away from the camera (grows or shrinks), or
appears or disappears (fades in or out). Class names are Something-Something templates, with a
left/right pair, a comma, an apostrophe and parentheses, so every parser trap and the
label-swapping flip are exercised.

Any single frame is uninformative: the object's state (x, y, scale, opacity) moves along one
coordinate from a to b, and every coordinate that does not move is drawn as a + (b - a) * u with
fresh a, b and uniform u, the law of a moving coordinate at a random time. So in every class a
frame taken at random shows the same distribution of positions, sizes and opacities; only the
direction of change across frames tells the classes apart. A coordinate that no class of the
dataset moves (opacity, when the fading classes are left out) rests in a fixed range, so the
object stays clearly visible. Videos are short (12 frames, +-25%), so that the motion between
neighbouring frames, which the SME-Adapter's differences see, is a few pixels.

Written per format, as the owners distribute theirs: ssv1 JPEG folders + labels csv + `;` split
files (+ an unlabelled test split); ssv2 VP9 webm + labels json + split jsons (+ test json with
ids only); k400 H.264 mp4 named `<youtube_id>_<start>_<end>.mp4`, in class folders for train and
flat for val, + CSVs. Also boxes.json (the object's box per frame, for the activation-map figure)
and synthetic.json (parameters and where each file is). `ensure_synthetic` builds one into a cache
folder on first use (the smoke preset's data).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import string
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from tdsclip.data.errors import DataError
from tdsclip.data.files import new_folder, write_atomic, write_json

GENERATOR_VERSION = 6
"""Bump when the generated data changes, so cached synthetic datasets are rebuilt."""

# (template, moving coordinate: 0 x, 1 y, 2 scale, 3 opacity; +1 increasing, -1 decreasing)
TEMPLATES: tuple[tuple[str, int, int], ...] = (
    ("Moving [something] from left to right", 0, +1),
    ("Moving [something] from right to left", 0, -1),
    ("Moving [something] up", 1, -1),
    ("Moving [something] down", 1, +1),
    ("Moving [something] closer, towards the camera", 2, +1),
    ("Moving [something] away from the camera", 2, -1),
    ("[Something]'s appearing (fading in)", 3, +1),
    ("[Something]'s disappearing (fading out)", 3, -1),
)
MIN_CLASSES = 6
# Where each coordinate's path starts (low) and ends (high), as fractions (x, y), scale, opacity.
RANGES = (((0.2, 0.35), (0.65, 0.8)), ((0.2, 0.35), (0.65, 0.8)), ((0.4, 0.5), (1.6, 1.8)), ((0.0, 0.1), (0.9, 1.0)))
SHAPES = ("circle", "square", "diamond", "triangle", "ring", "cross")
# Every object carries a texture and a saturated colour. A plain disc growing or shrinking differs
# from frame to frame only along its rim, a sub-patch change at 16-px patches, and white or black
# objects all but vanish on the light or dark parts of the background: with them, half of the tiny
# model's remaining errors were closer/away confusions of such objects. A texture scales with its
# object, so every patch the object covers sees the direction of the change.
TEXTURES = ("stripes", "checker", "dots")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
    "purple": (150, 60, 190),
    "orange": (240, 140, 30),
}
FORMATS = ("ssv1", "ssv2", "k400")
RESTING = ((0.45, 0.55), (0.45, 0.55), (0.9, 1.1), (0.85, 1.0))
"""Where a coordinate no class of the dataset moves stays (x, y, scale, opacity)."""


def class_names(classes: int = len(TEMPLATES)) -> tuple[str, ...]:
    """The first `classes` class names (templates without brackets)."""
    return tuple(t.replace("[", "").replace("]", "") for t, _, _ in TEMPLATES[:classes])


def opposite_classes(classes: int = len(TEMPLATES)) -> dict[int, int]:
    """Class -> the class whose motion is its time reversal (same coordinate, other direction):
    left to right <-> right to left, up <-> down, closer <-> away, appearing <-> disappearing."""
    kinds = {(coordinate, sign): label for label, (_, coordinate, sign) in enumerate(TEMPLATES[:classes])}
    return {label: kinds[(c, -s)] for (c, s), label in kinds.items() if (c, -s) in kinds}


# ----------------------------------------------------------------------------- motion and pixels


def trajectory(rng: np.random.Generator, label: int, frames: int, classes: int = len(TEMPLATES)) -> np.ndarray:
    """(frames, 4): x, y (fractions of the frame), scale and opacity of the object in each frame.

    A coordinate that none of the dataset's `classes` moves (opacity, below 7 classes) rests in
    RESTING instead: no class can tell it apart, and the object stays clearly visible.
    """
    _, axis, direction = TEMPLATES[label]
    moved = {coordinate for _, coordinate, _ in TEMPLATES[:classes]}
    time = np.linspace(0.0, 1.0, frames)
    state = np.empty((frames, 4))
    for k, (low, high) in enumerate(RANGES):
        a, b = rng.uniform(*low), rng.uniform(*high)
        if k == axis:
            state[:, k] = a + (b - a) * (time if direction > 0 else 1 - time)
        elif k in moved:
            state[:, k] = a + (b - a) * rng.random()
        else:
            state[:, k] = rng.uniform(*RESTING[k])
    return state


@dataclass(frozen=True)
class Look:
    """What one video looks like, apart from the motion."""

    shape: str
    colour: str
    texture: str
    radius: float  # fraction of the frame's shorter side


def random_look(rng: np.random.Generator) -> Look:
    return Look(
        str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS))), str(rng.choice(TEXTURES)), rng.uniform(0.12, 0.2)
    )


def render(
    rng: np.random.Generator, label: int, frames: int, width: int, height: int, classes: int = len(TEMPLATES)
) -> tuple[np.ndarray, list, Look]:
    """A video (frames, height, width, 3) uint8, the object's box per frame ([x0, y0, x1, y1] in
    pixels, None when off-frame) and its look, for a dataset of `classes` classes."""
    look = random_look(rng)
    state = trajectory(rng, label, frames, classes)
    background = _background(rng, width, height)
    colour = np.array(COLOURS[look.colour], dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    boxes: list = []
    for t, (x, y, scale, opacity) in enumerate(state):
        radius = look.radius * min(width, height) * scale
        dx, dy = (xx - x * width) / radius, (yy - y * height) / radius
        mask = _shape(look.shape, dx, dy)
        paint = colour * _texture(look.texture, dx, dy)[..., None]
        alpha = (opacity * mask)[..., None]
        noise = rng.normal(0, 2.0, (height, width, 1)).astype(np.float32)
        video[t] = np.clip(background * (1 - alpha) + paint * alpha + noise, 0, 255).astype(np.uint8)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        boxes.append([int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1] if rows.size else None)
    return video, boxes, look


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth random colour field plus fine grain, static over the clip."""
    coarse = rng.integers(30, 226, (3, 4, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.float32)
    return smooth + rng.normal(0, 8.0, (height, width, 3)).astype(np.float32)


def _shape(shape: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """1 inside the shape (unit radius, centred), 0 outside; every shape is left/right symmetric."""
    ax, ay, dist = np.abs(dx), np.abs(dy), np.hypot(dx, dy)
    inside = {
        "circle": dist <= 1,
        "square": np.maximum(ax, ay) <= 0.85,
        "diamond": ax + ay <= 1,
        "triangle": (dy <= 0.7) & (dy >= -1 + 2 * ax),
        "ring": (dist <= 1) & (dist >= 0.55),
        "cross": ((ax <= 0.3) & (ay <= 1)) | ((ay <= 0.3) & (ax <= 1)),
    }[shape]
    return inside.astype(np.float32)


def _texture(texture: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Brightness factor in object coordinates, so the texture moves and scales with the object."""
    if texture == "stripes":
        return 0.6 + 0.4 * (np.sin(dy * 9) > 0)
    if texture == "checker":
        return 0.6 + 0.4 * ((np.floor(dx * 3) + np.floor(dy * 3)) % 2)
    if texture == "dots":
        return 1.0 - 0.4 * ((np.hypot((dx * 3) % 1 - 0.5, (dy * 3) % 1 - 0.5)) < 0.25)
    return np.ones_like(dx)


# ----------------------------------------------------------------------------- encoders

_CODECS = {"h264": ("libx264", "mp4", {}), "vp9": ("libvpx-vp9", "webm", {"deadline": "realtime", "cpu-used": "8"})}


def write_video(
    path: str | os.PathLike, video: np.ndarray, fps: int, codec: str, options: dict[str, str] | None = None
) -> None:
    """Encode (frames, H, W, 3) uint8 RGB with PyAV (libx264 or libvpx-vp9, yuv420p), atomically.

    `options` go to the encoder (e.g. {"g": "12"} for a keyframe every 12 frames); H.264 keeps
    libx264's defaults (a keyframe every 250 frames), VP9 encodes in realtime mode unless told.
    """
    name, container, defaults = _CODECS[codec]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(name, rate=fps)
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        stream.options = {**defaults, **(options or {})}
        for frame in video:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        output.mux(stream.encode())
    write_atomic(path, buffer.getvalue())


def write_jpegs(folder: str | os.PathLike, video: np.ndarray, quality: int = 90) -> None:
    """Frames as `00001.jpg`, `00002.jpg`, ... (the SSv1 naming, 1-based)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for number, frame in enumerate(video, 1):
        Image.fromarray(frame).save(folder / f"{number:05d}.jpg", quality=quality)


# ----------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class SynthSpec:
    """Everything that decides a synthetic dataset's content."""

    format: str = "ssv2"
    classes: int = 8
    videos_per_class: int = 12
    frames: int = 12
    width: int = 128
    height: int = 96
    seed: int = 0

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise DataError(f"synthetic format: expected one of {', '.join(FORMATS)}, got {self.format!r}")
        if not MIN_CLASSES <= self.classes <= len(TEMPLATES):
            raise DataError(f"synthetic classes: expected {MIN_CLASSES} to {len(TEMPLATES)}, got {self.classes}")
        if self.videos_per_class < 2:
            raise DataError(f"synthetic videos per class: expected >= 2 (train and val), got {self.videos_per_class}")
        if self.frames < 4:
            raise DataError(f"synthetic frames per video: expected >= 4, got {self.frames}")
        if min(self.width, self.height) < 16 or self.width % 2 or self.height % 2:
            raise DataError(
                f"synthetic frame size: expected even width and height >= 16, got {self.width}x{self.height}"
            )


@dataclass(frozen=True)
class Synthetic:
    """Where the parts of a written synthetic dataset are (absolute paths)."""

    format: str
    root: str
    train: str
    val: str
    labels: str
    test: str
    boxes: str


LAYOUT = {
    "ssv1": dict(
        root="20bn-something-something-v1",
        train="something-something-v1-train.csv",
        val="something-something-v1-validation.csv",
        labels="something-something-v1-labels.csv",
        test="something-something-v1-test.csv",
    ),
    "ssv2": dict(
        root="20bn-something-something-v2",
        train="something-something-v2-train.json",
        val="something-something-v2-validation.json",
        labels="something-something-v2-labels.json",
        test="something-something-v2-test.json",
    ),
    "k400": dict(root="kinetics400", train="train.csv", val="validate.csv", labels="", test=""),
}


def write_synthetic(spec: SynthSpec, out: str | os.PathLike) -> Synthetic:
    """Generate the dataset into the new folder `out` (atomically: all of it or nothing)."""
    with new_folder(out) as tmp:
        _generate(spec, tmp)
    return load_synthetic(out)


def load_synthetic(folder: str | os.PathLike) -> Synthetic:
    """The paths of a synthetic dataset written earlier."""
    folder = Path(folder).resolve()
    try:
        meta = json.loads((folder / "synthetic.json").read_text())
    except (OSError, ValueError):
        raise DataError(f"{folder} is not a synthetic dataset: expected a readable synthetic.json") from None
    return Synthetic(
        meta["spec"]["format"],
        **{k: str(folder / v) if v else "" for k, v in meta["layout"].items()},
        boxes=str(folder / "boxes.json"),
    )


def synthetic_folder(cache_dir: str | os.PathLike, spec: SynthSpec = SynthSpec()) -> Path:
    """Where the dataset for `spec` lives under `cache_dir` (complete once synthetic.json exists)."""
    key = hashlib.sha256(json.dumps([GENERATOR_VERSION, asdict(spec)], sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_dir) / "synthetic" / f"{spec.format}-{key}"


def ensure_synthetic(cache_dir: str | os.PathLike, spec: SynthSpec = SynthSpec()) -> Synthetic:
    """The synthetic dataset for `spec` under `cache_dir`, generated on first use (idempotent; two
    processes racing both end up with the same complete folder)."""
    folder = synthetic_folder(cache_dir, spec)
    if not (folder / "synthetic.json").exists():
        try:
            write_synthetic(spec, folder)
        except DataError:
            if not (folder / "synthetic.json").exists():
                raise
    return load_synthetic(folder)


def _generate(spec: SynthSpec, out: Path) -> None:
    layout = LAYOUT[spec.format]
    names = class_names(spec.classes)
    plan = _plan(spec)
    root = out / layout["root"]
    boxes, written = {}, []
    for number, (split, label) in enumerate(plan):
        rng = np.random.default_rng([spec.seed, number])
        frames = int(rng.integers(spec.frames - spec.frames // 4, spec.frames + spec.frames // 4 + 1))
        video, box, look = render(rng, label, frames, spec.width, spec.height, spec.classes)
        sample_id = _sample_id(spec, rng, number)
        _write_sample(spec, root, split, names[label], sample_id, video)
        boxes[sample_id] = {
            "split": split,
            "class": names[label],
            "size": [spec.width, spec.height],
            "boxes": box,
            "look": asdict(look),
        }
        written.append((split, label, sample_id, look))
    _write_annotations(spec, out, layout, names, written)
    write_json(out / "boxes.json", boxes)
    write_json(out / "synthetic.json", {"spec": asdict(spec), "version": GENERATOR_VERSION, "layout": layout})


def _plan(spec: SynthSpec) -> list:
    """(split, label) per video: a quarter of each class (at least one) for val, the rest train;
    one unlabelled test video per class where the format has a test split."""
    val = max(1, round(spec.videos_per_class / 4))
    plan = [
        ("val" if k < val else "train", label) for label in range(spec.classes) for k in range(spec.videos_per_class)
    ]
    if LAYOUT[spec.format]["test"]:
        plan += [("test", label) for label in range(spec.classes)]
    order = np.random.default_rng(spec.seed).permutation(len(plan))
    return [plan[i] for i in order]


def _sample_id(spec: SynthSpec, rng: np.random.Generator, number: int) -> str:
    if spec.format != "k400":
        return str(1000 + number)
    alphabet = string.ascii_letters + string.digits + "-_"
    youtube_id = "".join(rng.choice(list(alphabet), 11))
    start = int(rng.integers(0, 300))
    return f"{youtube_id}_{start:06d}_{start + 10:06d}"


def _write_sample(spec: SynthSpec, root: Path, split: str, name: str, sample_id: str, video: np.ndarray) -> None:
    if spec.format == "ssv1":
        write_jpegs(root / sample_id, video)
    elif spec.format == "ssv2":
        write_video(root / f"{sample_id}.webm", video, fps=12, codec="vp9")
    else:  # Kinetics: class folders for train, flat for val, both layouts exist in the wild
        relative = f"train/{name}/{sample_id}.mp4" if split == "train" else f"val/{sample_id}.mp4"
        write_video(root / relative, video, fps=25, codec="h264")


def _write_annotations(spec: SynthSpec, out: Path, layout: dict, names: tuple[str, ...], written: list) -> None:
    by_split: dict[str, list] = {"train": [], "val": [], "test": []}
    for split, label, sample_id, look in written:
        by_split[split].append((label, sample_id, look))
    for split in by_split:
        by_split[split].sort(key=lambda item: item[1])
    if spec.format == "ssv1":
        write_atomic(out / layout["labels"], "".join(f"{n}\n" for n in names))
        for split in ("train", "val"):
            write_atomic(out / layout[split], "".join(f"{i};{names[label]}\n" for label, i, _ in by_split[split]))
        write_atomic(out / layout["test"], "".join(f"{i}\n" for _, i, _ in by_split["test"]))
    elif spec.format == "ssv2":
        write_json(out / layout["labels"], {n: str(i) for i, n in enumerate(names)})
        for split in ("train", "val"):
            records = []
            for label, sample_id, look in by_split[split]:
                thing = f"{look.colour} {look.shape}"
                template = TEMPLATES[label][0]
                text = template.replace("[something]", thing).replace("[Something]", thing.capitalize())
                records.append({"id": sample_id, "label": text, "template": template, "placeholders": [thing]})
            write_json(out / layout[split], records)
        write_json(out / layout["test"], [{"id": i} for _, i, _ in by_split["test"]])
    else:
        for split, csv_split in (("train", "train"), ("val", "val")):
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for label, clip, _ in by_split[split]:
                youtube_id, start, end = clip[:11], int(clip[12:18]), int(clip[19:25])
                writer.writerow([names[label], youtube_id, start, end, csv_split])
            write_atomic(out / layout[split], text.getvalue())
