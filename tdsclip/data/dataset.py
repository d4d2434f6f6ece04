"""The torch Dataset a run trains and evaluates on, its collate function and failure accounting.

    train = build_dataset(cfg.data, "train", local_frames=5)
    loader = make_loader(train, batch_size=16, shuffle=True, seed=cfg.train.seed)
    failures = FailureLog(len(train), cfg.data.max_corrupt_fraction)
    for batch in guarded(loader, failures): ...   # batch.clips (B*num_sample, 3, T, m, 224, 224)

Each item is one video with all its views, `Item(clips, labels, index, video_id, failed)`:
- clips: float32 (V, 3, T, m, S, S), CLIP-normalised; T sparse frames, each with its SME window of
  m frames (the centre one, [:, :, :, m // 2], is the frame the frozen CLIP sees);
- labels: (V,) int64, per view, since a flip may swap a left/right label;
- V = num_sample independently augmented clips of one decoded sample (training, repeated
  sampling), 1 centre view (val), or K clips x 3 crops, clip-major (test).
`collate` concatenates the views of a batch and repeats each video's dataset index per view, so
evaluation can average the views of each video and count each video once.

Unreadable samples. Training logs one, replaces it by another random sample and reports it in the
batch (`failed`); `FailureLog` sums the reports of all workers and stops the run with a one-line
error naming the worst files once more than `max_corrupt_fraction` of the videos proved
unreadable. Evaluation never replaces: the item comes back with no views and the id in `failed`,
and the count is recorded with the result.
"""

from __future__ import annotations

import collections
import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tdsclip.config import DataConfig
from tdsclip.data.annotations import SHOW_IDS, Found, flip_pairs
from tdsclip.data.errors import DataError, UnreadableError
from tdsclip.data.locate import found_samples, reference_comparison
from tdsclip.data.sampling import check_window, eval_indices, train_indices
from tdsclip.data.transforms import EvalTransform, TrainTransform
from tdsclip.data.video import read_frames

log = logging.getLogger("tdsclip.data")

Mode = Literal["train", "val", "test"]
MAX_REPLACEMENTS = 10
"""Training tries this many samples for one item before it gives the item up (no views)."""


class Item(NamedTuple):
    clips: torch.Tensor
    labels: torch.Tensor
    index: int
    video_id: str
    failed: tuple[tuple[str, str], ...]


class Batch(NamedTuple):
    clips: torch.Tensor  # (views in the batch, 3, T, m, S, S)
    labels: torch.Tensor  # (views,)
    index: torch.Tensor  # (views,) dataset index of each view's video
    video_ids: list[str]  # the videos with views, in order
    failed: list[tuple[str, str]]  # (id, reason) of the samples replaced (train) or skipped (eval)


@dataclass(frozen=True)
class DataInfo:
    """What a run records about its data."""

    format: str
    annotations: str
    root: str
    listed: int
    found: int
    missing: int
    missing_ids: tuple[str, ...]
    classes: int
    manifest: str
    reference: dict | None = None
    """The split compared with its reference list (tdsclip/data/reference.py), if one was given."""

    def as_dict(self) -> dict:
        return asdict(self)


class VideoDataset(Dataset):
    """Videos or frame folders of one split, sampled and augmented for `mode`."""

    def __init__(
        self,
        found: Found,
        mode: Mode,
        frames: int,
        local_frames: int,
        transform: TrainTransform | EvalTransform,
        num_sample: int = 1,
        test_clips: int = 1,
        info: DataInfo | None = None,
    ) -> None:
        check_window(local_frames)
        if mode not in ("train", "val", "test"):
            raise DataError(f"dataset mode: expected train, val or test, got {mode!r}")
        if not found.samples:
            raise DataError(
                f"{found.split.annotations}: none of the {len(found.split.entries)} listed samples is under {found.root}"
            )
        self.samples, self.root, self.classes = found.samples, Path(found.root), found.split.classes
        self.mode, self.frames, self.local_frames = mode, frames, local_frames
        self.transform, self.num_sample = transform, num_sample
        self.clips_per_video = test_clips if mode == "test" else 1
        self.info = info

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def views(self) -> int:
        """Views per video: num_sample (train), 1 (val) or test clips x crops (test)."""
        if self.mode == "train":
            return self.num_sample
        return self.clips_per_video * self.transform.crops

    def __getitem__(self, index: int) -> Item:
        return self._train_item(index) if self.mode == "train" else self._eval_item(index)

    def _train_item(self, index: int) -> Item:
        failed: list[tuple[str, str]] = []
        for _ in range(MAX_REPLACEMENTS):
            sample = self.samples[index]
            rng = np.random.default_rng(int(torch.randint(2**62, ())))
            try:
                frames = read_frames(
                    self.root / sample.path,
                    sample.frames,
                    lambda n: train_indices(n, self.frames, self.local_frames, rng),  # noqa: B023 - called within this iteration
                )
            except UnreadableError as error:
                log.warning("unreadable training sample %s (%s); replaced by another", sample.id, error.reason)
                failed.append((sample.id, error.reason))
                index = int(torch.randint(len(self.samples), ()))
                continue
            flat = frames.reshape(-1, *frames.shape[2:])
            clips, labels = zip(*(self.transform(flat, sample.label) for _ in range(self.num_sample)))
            return Item(self._shape(torch.stack(clips)), torch.tensor(labels), index, sample.id, tuple(failed))
        return self._empty(index, self.samples[index].id, failed)

    def _eval_item(self, index: int) -> Item:
        sample = self.samples[index]
        try:
            frames = read_frames(
                self.root / sample.path,
                sample.frames,
                lambda n: eval_indices(n, self.frames, self.local_frames, self.clips_per_video),
            )
        except UnreadableError as error:
            log.warning("unreadable evaluation sample %s (%s); skipped and counted", sample.id, error.reason)
            return self._empty(index, sample.id, [(sample.id, error.reason)])
        views = [self.transform(clip.reshape(-1, *clip.shape[2:])) for clip in frames]  # each (crops, 3, F, S, S)
        clips = self._shape(torch.cat(views))
        return Item(clips, torch.full((len(clips),), sample.label), index, sample.id, ())

    def _shape(self, clips: torch.Tensor) -> torch.Tensor:
        """(V, 3, T*m, S, S) -> (V, 3, T, m, S, S)."""
        v, c, _, h, w = clips.shape
        return clips.view(v, c, self.frames, self.local_frames, h, w)

    def _empty(self, index: int, video_id: str, failed: list[tuple[str, str]]) -> Item:
        size = self.transform.size
        clips = torch.empty(0, 3, self.frames, self.local_frames, size, size)
        return Item(clips, torch.empty(0, dtype=torch.long), index, video_id, tuple(failed))


def collate(items: list[Item]) -> Batch:
    """Concatenate the views of all items; each view carries its video's dataset index."""
    kept = [item for item in items if len(item.clips)]
    size = items[0].clips.shape[1:]
    return Batch(
        clips=torch.cat([item.clips for item in kept]) if kept else torch.empty(0, *size),
        labels=torch.cat([item.labels for item in kept]) if kept else torch.empty(0, dtype=torch.long),
        index=torch.cat([torch.full((len(item.clips),), item.index) for item in kept])
        if kept
        else torch.empty(0, dtype=torch.long),
        video_ids=[item.video_id for item in kept],
        failed=[failure for item in items for failure in item.failed],
    )


class FailureLog:
    """Unreadable samples reported by all workers; with `max_fraction`, stops the run past it."""

    def __init__(self, size: int, max_fraction: float | None = None) -> None:
        self.size, self.max_fraction = size, max_fraction
        self.times: collections.Counter[str] = collections.Counter()
        self.reasons: dict[str, str] = {}

    def add(self, failed: Iterable[tuple[str, str]]) -> None:
        for video_id, reason in failed:
            self.times[video_id] += 1
            self.reasons[video_id] = reason
        if self.max_fraction is not None and self.count > self.max_fraction * self.size:
            worst = ", ".join(f"{i} ({n}x: {self.reasons[i][:80]})" for i, n in self.times.most_common(SHOW_IDS))
            raise DataError(
                f"{self.count} of {self.size} training videos ({self.count / self.size:.1%}) are unreadable, more than "
                f"data.max_corrupt_fraction={self.max_fraction}; worst: {worst}"
            )

    @property
    def count(self) -> int:
        """Distinct samples found unreadable so far."""
        return len(self.times)

    def summary(self) -> dict:
        return {"unreadable": self.count, "unreadable_ids": sorted(self.times)}


def guarded(batches: Iterable[Batch], failures: FailureLog) -> Iterator[Batch]:
    """Yield the batches, adding each one's failures to `failures` first (which may stop the run)."""
    for batch in batches:
        failures.add(batch.failed)
        yield batch


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: seed Python's and NumPy's generators from the worker's torch seed
    (which the DataLoader derives from its generator and the worker id)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(
    dataset: VideoDataset, batch_size: int, shuffle: bool, num_workers: int = 0, seed: int = 0, drop_last: bool = False
) -> DataLoader:
    """A DataLoader with `collate`, seeded workers and a seeded shuffle: same seed, same batches."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate,
        worker_init_fn=seed_worker,
        generator=generator,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
    )


def build_dataset(
    cfg: DataConfig, split: Literal["train", "val", "test"], local_frames: int, workers: int | None = None
) -> VideoDataset:
    """The dataset of `split` as `cfg` describes it: train (augmented, a data.train_fraction subset
    where set), val (one centre view) or test (cfg.test_clips x cfg.test_crops views, on the
    validation annotations)."""
    found, digest, listed = found_samples(cfg, split, workers)
    classes = found.split.classes
    info = DataInfo(
        found.split.format,
        str(found.split.annotations),
        str(found.root),
        listed,
        len(found.samples),
        len(found.missing),
        found.missing[:SHOW_IDS],
        len(classes),
        digest.digest,
        reference_comparison(cfg, split, found, digest),
    )
    if split == "train":
        transform: TrainTransform | EvalTransform = TrainTransform(
            cfg.input_size, cfg.resize, cfg.randaugment, cfg.flip, cfg.grayscale, flip_pairs(classes), cfg.crop_area
        )
    else:
        transform = EvalTransform(cfg.input_size, cfg.resize, cfg.test_crops if split == "test" else 1)
    return VideoDataset(found, split, cfg.frames, local_frames, transform, cfg.num_sample, cfg.test_clips, info)
