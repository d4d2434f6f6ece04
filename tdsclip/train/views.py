"""Multi-view evaluation: per-view scores ensembled per video, each video counted exactly once.

The protocol (SlowFast's TestMeter, done carefully): every rank records the softmax scores of
the views it saw, keyed by (video index, view index); the records are gathered on all ranks and
de-duplicated by key, which removes the duplicates a DistributedSampler pads with; then every
video must have exactly `views` distinct views (asserted, naming the first offenders), its view
scores are averaged, and top-1, top-5 and per-class accuracy are computed over videos.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tdsclip.train.distributed import gather_objects

log = logging.getLogger(__name__)

PROGRESS_PERCENT = 10
"""Off a terminal, an evaluation logs a progress line each time it passes another 10% of its videos..."""
PROGRESS_SECONDS = 60.0
"""...or when a minute went by since the last line, whichever comes first (a Slurm log of a
multi-hour test says it is alive and how long is left)."""


class EvaluationError(RuntimeError):
    """Inconsistent views (missing, extra or conflicting labels); one line."""


@dataclass
class EvalResult:
    top1: float
    top5: float
    mean_class_accuracy: float
    videos: int
    views: int
    per_class: dict[int, float] = field(default_factory=dict)

    def metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}top1": self.top1,
            f"{prefix}top5": self.top5,
            f"{prefix}mean_class_accuracy": self.mean_class_accuracy,
            f"{prefix}videos": float(self.videos),
        }


class ViewScores:
    """Collects (video, view) -> softmax scores, then ensembles them per video."""

    def __init__(self, views: int) -> None:
        if views < 1:
            raise ValueError(f"views: expected >= 1, got {views}")
        self.views = views
        self.records: dict[tuple[int, int], tuple[np.ndarray, int]] = {}

    def add(self, videos: torch.Tensor, views: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        scores = torch.softmax(logits.detach().float(), dim=-1).cpu().numpy()
        for video, view, score, label in zip(videos.tolist(), views.tolist(), scores, labels.tolist()):
            self.records.setdefault((int(video), int(view)), (score, int(label)))

    def gathered(self) -> ViewScores:
        """All ranks' records merged (padding duplicates collapse onto the same key)."""
        merged = ViewScores(self.views)
        for records in gather_objects(self.records):
            for key, value in records.items():
                merged.records.setdefault(key, value)
        return merged

    def _by_video(self) -> dict[int, dict[int, tuple[np.ndarray, int]]]:
        videos: dict[int, dict[int, tuple[np.ndarray, int]]] = {}
        for (video, view), value in self.records.items():
            videos.setdefault(video, {})[view] = value
        wrong = [video for video, views in videos.items() if sorted(views) != list(range(self.views))]
        if wrong:
            counts = ", ".join(f"video {v}: {sorted(videos[v])}" for v in sorted(wrong)[:3])
            raise EvaluationError(f"{len(wrong)} videos do not have exactly views 0..{self.views - 1} ({counts})")
        for video, views in videos.items():
            if len({label for _, label in views.values()}) != 1:
                raise EvaluationError(f"video {video} has views with different labels")
        return videos

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(video ids (V,), labels (V,), scores (V, views, K)), sorted by video id."""
        videos = self._by_video()
        ids = np.array(sorted(videos), dtype=np.int64)
        labels = np.array([videos[v][0][1] for v in ids], dtype=np.int64)
        scores = (
            np.stack([np.stack([videos[v][k][0] for k in range(self.views)]) for v in ids])
            if len(ids)
            else np.zeros((0, self.views, 0))
        )
        return ids, labels, scores

    def result(self) -> EvalResult:
        ids, labels, scores = self.arrays()
        if len(ids) == 0:
            raise EvaluationError("no video was evaluated")
        ensembled = scores.mean(axis=1)
        ranked = np.argsort(-ensembled, axis=1)
        top1_hits = ranked[:, 0] == labels
        top5_hits = (ranked[:, : min(5, ranked.shape[1])] == labels[:, None]).any(axis=1)
        per_class = {int(c): float(top1_hits[labels == c].mean()) for c in np.unique(labels)}
        return EvalResult(
            top1=100.0 * float(top1_hits.mean()),
            top5=100.0 * float(top5_hits.mean()),
            mean_class_accuracy=100.0 * float(np.mean(list(per_class.values()))),
            videos=len(ids),
            views=self.views,
            per_class={c: 100.0 * acc for c, acc in per_class.items()},
        )

    def save(self, path: Path) -> Path:
        """Per-video per-view scores (npz: video, label, scores) for re-ensembling later."""
        ids, labels, scores = self.arrays()
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez_compressed(tmp, video=ids, label=labels, scores=scores)
        tmp.replace(path)
        return path


class EvalProgress:
    """Progress through an evaluation for a person and a log: a tqdm bar on a terminal, else a plain
    log line each PROGRESS_PERCENT of the videos or PROGRESS_SECONDS, and at the end. Under DDP it
    counts this rank's share (ranks share the videos evenly). No-op when not enabled (other ranks)."""

    def __init__(
        self, label: str, total: int, *, enabled: bool, world_size: int = 1, terminal: bool | None = None
    ) -> None:
        self.label, self.total, self.enabled, self.done = label, total, enabled and total > 0, 0
        self.where = f" on rank 0 of {world_size}" if world_size > 1 else ""
        self.start = self.last_time = time.monotonic()
        self.last_step = 0
        self.bar = None
        if self.enabled and (sys.stderr.isatty() if terminal is None else terminal):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="video", dynamic_ncols=True, leave=True)

    def update(self, videos: int) -> None:
        """`videos` more videos were evaluated."""
        if not self.enabled or videos <= 0:
            return
        self.done = min(self.total, self.done + videos)
        if self.bar is not None:
            self.bar.update(videos)
            return
        now, step = time.monotonic(), self.done * 100 // self.total // PROGRESS_PERCENT  # tenths passed
        if step > self.last_step or now - self.last_time >= PROGRESS_SECONDS or self.done == self.total:
            self.last_step, self.last_time = step, now
            log.info("%s", self.line(now - self.start))

    def line(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = f"{(self.total - self.done) / rate / 60:.1f} min" if rate > 0 else "unknown"
        percent = 100 * self.done // self.total
        return f"{self.label}: {self.done}/{self.total} videos ({percent}%){self.where}, {rate:.3g} videos/s, ETA {eta}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
