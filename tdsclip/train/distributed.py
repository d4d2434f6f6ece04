"""Rank and world size from the environment, so one entry point runs under torchrun and Slurm.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT. Under Slurm (srun, or
submitit) SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID give the ranks and MASTER_ADDR / MASTER_PORT
must be exported by the launcher (the slurm package does). With neither, the run is one process.
Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _int(env: dict[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError:
        raise ValueError(f"environment variable {key}={env[key]!r}: expected an integer") from None


def env_from(environ: dict[str, str] | None = None) -> DistEnv:
    """The process's place in the job: torchrun's variables first, then Slurm's."""
    env = dict(os.environ if environ is None else environ)
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistEnv(
            _int(env, "RANK"), _int(env, "WORLD_SIZE"), _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0
        )
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env and "MASTER_ADDR" in env:
        return DistEnv(
            _int(env, "SLURM_PROCID"),
            _int(env, "SLURM_NTASKS"),
            _int(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0,
        )
    return DistEnv()


def setup(env: DistEnv) -> torch.device:
    """Join the process group (if several processes) and return this rank's device."""
    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda", env.local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if env.distributed and not dist.is_initialized():
        for key in ("MASTER_ADDR", "MASTER_PORT"):
            if key not in os.environ:
                raise RuntimeError(
                    f"{key} is not set: a job of {env.world_size} processes needs MASTER_ADDR and MASTER_PORT"
                )
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=env.rank, world_size=env.world_size)
    return device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_true(flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is True on any rank (e.g. a stop request seen by one rank)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def mean_across_ranks(value: float, device: torch.device) -> float:
    """The mean of a per-rank number (e.g. the step's loss) over all ranks."""
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()


def gather_objects(obj: object) -> list[object]:
    """Every rank's `obj`, in rank order (a one-element list when not distributed)."""
    if not dist.is_initialized():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
