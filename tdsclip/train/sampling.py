"""Deterministic data order and per-sample randomness, independent of workers and resumes.

The order of an epoch is a permutation seeded by (seed, epoch). Each optimiser step takes the next
`batch_size` videos and cuts them into world_size x accumulation chunks of `micro_batch`; chunk
`micro * world_size + rank` is what `rank` loads for its micro-step `micro`. So one process
accumulating 2 micro-batches sees exactly what 2 ranks see in one step each. Each sample's
augmentation randomness is seeded by (seed, epoch, index) inside whichever worker loads it, so a
resumed run, or a run with another number of workers, draws exactly the same clips.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def seed_everything(seed: int) -> None:
    """The one seed function: python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0] % 2**63)


def epoch_order(seed: int, epoch: int, size: int) -> list[int]:
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    return torch.randperm(size, generator=generator).tolist()


class EpochSeeded(Dataset):
    """Loads `base[index]` for keys (epoch, index) with every RNG seeded by (seed, epoch, index)."""

    def __init__(self, base: Dataset, seed: int) -> None:
        self.base, self.seed = base, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        seed_everything(sample_seed(self.seed, epoch, index))
        return self.base[index]


class StepBatches(Sampler[list[tuple[int, int]]]):
    """This rank's micro-batches of one epoch, from optimiser step `start_step` on."""

    def __init__(
        self,
        size: int,
        *,
        seed: int,
        epoch: int,
        batch_size: int,
        micro_batch: int,
        rank: int,
        world_size: int,
        start_step: int = 0,
    ) -> None:
        if batch_size % (micro_batch * world_size):
            raise ValueError(
                f"train.batch_size={batch_size} is not a multiple of train.micro_batch x processes "
                f"= {micro_batch} x {world_size}; change one of them"
            )
        self.size, self.seed, self.epoch = size, seed, epoch
        self.batch_size, self.micro_batch, self.rank, self.world = batch_size, micro_batch, rank, world_size
        self.accumulation = batch_size // (micro_batch * world_size)
        self.steps = size // batch_size
        self.start_step = start_step

    def __len__(self) -> int:
        return (self.steps - self.start_step) * self.accumulation

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_order(self.seed, self.epoch, self.size)
        for step in range(self.start_step, self.steps):
            base = step * self.batch_size
            for micro in range(self.accumulation):
                chunk = base + (micro * self.world + self.rank) * self.micro_batch
                yield [(self.epoch, i) for i in order[chunk : chunk + self.micro_batch]]


class ShardedOrder(Sampler[int]):
    """Evaluation: videos in order, rank r takes r, r+world, ...; padded with repeats so every
    rank runs the same number of batches (the repeats are de-duplicated by ViewScores)."""

    def __init__(self, size: int, rank: int, world_size: int) -> None:
        self.size, self.rank, self.world = size, rank, world_size
        self.per_rank = -(-size // world_size)

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        indices = list(range(self.size)) + list(range(self.per_rank * self.world - self.size))
        return iter(indices[self.rank :: self.world])
