"""Cluster profiles as data: what one kind of node offers and how to ask Slurm for it.

    profile = load_profile("a100", ["partition=gpu", "account=proj42"])
    params = sbatch_parameters(profile, nodes=2, resources=Resources("ViT-L-14", timeout_min=2880))
    executor = submitit.SlurmExecutor(folder, max_num_timeout=profile.max_num_timeout)
    executor.update_parameters(**params)

A job is one run: `tasks_per_node x nodes` processes, one per GPU, each with `cpus_per_task`
CPUs and `mem_per_task_gb` of memory (so those two are per GPU on GPU profiles). Built-in
profiles: `a100` (8 A100 per node) and `local` (the CPU-only test cluster of
slurm/localcluster.py). A user-level TOML file changes them or adds new ones; `key=value`
overrides (the CLI's) win over the file:

    # ~/.config/tdsclip/slurm.toml, or the file named by $TDSCLIP_SLURM_PROFILES
    [a100]
    partition = "gpu"
    account = "proj42"
    setup = ["module load cuda/12.4"]

    [h100]            # a new profile: starts from `base`, default a100
    base = "a100"
    constraint = "h100"
    cpus_per_task = 12
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from tdsclip.config import ConfigError, apply_overrides


class ProfileError(ConfigError):
    """A bad profile name, key or value; one line naming it and what was expected."""


@dataclass(frozen=True)
class Profile:
    """One node type and the scheduling policy around it."""

    name: str
    gpus_per_node: int = 8
    """GPUs requested per node; 0 for a CPU-only profile."""
    tasks_per_node: int = 8
    """Processes (DDP ranks) per node: one per GPU, so it must equal gpus_per_node when that is > 0."""
    cpus_per_task: int = 16
    """CPUs per process, i.e. per GPU: the data loader's workers run on them."""
    mem_per_task_gb: float = 100.0
    """Host memory per process, i.e. per GPU; the job asks for tasks_per_node x this per node."""
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    """sbatch --constraint, e.g. a100 or a100_80gb; empty: none."""
    timeout_min: int = 1440
    """The job's time limit (sbatch --time); a run that needs longer is requeued and resumes."""
    signal: str = "USR2"
    """Signal Slurm sends before the time limit and on preemption (USR2 or USR1); the trainer checkpoints on it."""
    signal_delay_s: int = 300
    """How long before the time limit the signal comes: enough for one training step and a checkpoint."""
    max_num_timeout: int = 20
    """How many times a run may reach its time limit and be requeued (preemptions do not count)."""
    array_parallelism: int = 8
    """At most this many jobs of one array run at once."""
    exclusive: bool = False
    """Ask for whole nodes (sbatch --exclusive)."""
    setup: tuple[str, ...] = ()
    """Shell lines run in the batch script before the training processes start (module load ...)."""

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ProfileError(f"profile {self.name}: {message}")

        check(self.gpus_per_node >= 0, f"gpus_per_node: expected >= 0, got {self.gpus_per_node}")
        check(self.tasks_per_node >= 1, f"tasks_per_node: expected >= 1, got {self.tasks_per_node}")
        check(
            self.gpus_per_node == 0 or self.tasks_per_node == self.gpus_per_node,
            f"tasks_per_node={self.tasks_per_node}: expected one task per GPU, i.e. {self.gpus_per_node}",
        )
        check(self.cpus_per_task >= 1, f"cpus_per_task: expected >= 1, got {self.cpus_per_task}")
        check(self.mem_per_task_gb > 0, f"mem_per_task_gb: expected > 0, got {self.mem_per_task_gb}")
        check(self.timeout_min >= 1, f"timeout_min: expected >= 1, got {self.timeout_min}")
        # Not TERM: Slurm sends it on scancel too, and the job would requeue itself.
        check(self.signal in ("USR1", "USR2"), f"signal: expected USR2 or USR1, got {self.signal!r}")
        check(
            0 <= self.signal_delay_s < self.timeout_min * 60,
            f"signal_delay_s={self.signal_delay_s}: expected between 0 and the time limit ({self.timeout_min * 60} s)",
        )
        check(self.max_num_timeout >= 0, f"max_num_timeout: expected >= 0, got {self.max_num_timeout}")
        check(self.array_parallelism >= 1, f"array_parallelism: expected >= 1, got {self.array_parallelism}")

    @property
    def stop_signal(self) -> str:
        """The trainer's train.stop_signal for this profile (SIGUSR2 for USR2)."""
        return f"SIG{self.signal}"


A100 = Profile(name="a100")
LOCAL = Profile(
    name="local",
    gpus_per_node=0,
    tasks_per_node=1,
    cpus_per_task=1,
    mem_per_task_gb=2.0,
    timeout_min=60,
    signal_delay_s=90,
    max_num_timeout=3,
    array_parallelism=2,
)
"""The test cluster (slurm/localcluster.py): CPU only, partition `low` by default."""
PROFILES: dict[str, Profile] = {p.name: p for p in (A100, LOCAL)}


def profiles_file(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("TDSCLIP_SLURM_PROFILES") or Path.home() / ".config" / "tdsclip" / "slurm.toml")


def _apply(profile: Profile, changes: Iterable[str] | Mapping[str, Any], where: str) -> Profile:
    """`changes` applied with the config machinery (closest-key suggestions, typed parsing)."""
    try:
        return apply_overrides(profile, changes)
    except ProfileError:
        raise
    except ConfigError as error:
        raise ProfileError(f"{where}: {str(error).replace('config key', 'profile key')}") from None


def all_profiles(path: Path | None = None) -> dict[str, Profile]:
    """The built-in profiles, changed and extended by the user's file (if it exists)."""
    path = path or profiles_file()
    profiles = dict(PROFILES)
    if not path.is_file():
        return profiles
    try:
        table = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ProfileError(f"profiles file {path}: {error}") from None
    for name, section in table.items():
        if not isinstance(section, dict):
            raise ProfileError(f"profiles file {path}: {name!r} is not a [table] of profile keys")
        section = dict(section)
        base_name = section.pop("base", name if name in profiles else "a100")
        if base_name not in profiles:
            raise ProfileError(
                f"profiles file {path} [{name}]: unknown base {base_name!r}; expected one of {', '.join(profiles)}"
            )
        base = dataclasses.replace(profiles[base_name], name=name) if base_name != name else profiles[name]
        profiles[name] = _apply(base, section, f"profiles file {path} [{name}]")
    return profiles


def load_profile(name: str, overrides: Iterable[str] = (), path: Path | None = None) -> Profile:
    """Profile `name` (built in or from the user's file) with `key=value` overrides on top."""
    profiles = all_profiles(path)
    if name not in profiles:
        raise ProfileError(
            f"unknown Slurm profile {name!r}; expected one of {', '.join(profiles)} "
            f"(add one in {path or profiles_file()})"
        )
    return _apply(profiles[name], list(overrides), f"profile {name}")


@dataclass(frozen=True)
class Resources:
    """What one job array needs beyond its profile: B/16 and L/14 rows differ in time."""

    name: str
    """Names the array's jobs (sbatch --job-name tdsclip-<name>)."""
    timeout_min: int | None = None
    """None: the profile's time limit."""


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """--profile and --profile-set, the same in every command that submits jobs (both go to load_profile)."""
    parser.add_argument("--profile", default="a100", help="Slurm cluster profile (slurm/profiles.py; default a100)")
    parser.add_argument(
        "--profile-set",
        action="append",
        default=[],
        metavar="key=value",
        help="override a profile field, e.g. --profile-set partition=gpu (repeatable)",
    )


def gpus_per_job(profile: Profile, nodes: int) -> int:
    return profile.gpus_per_node * nodes


def sbatch_parameters(profile: Profile, nodes: int, resources: Resources) -> dict[str, Any]:
    """The submitit SlurmExecutor.update_parameters keywords (sbatch's names) of one array's jobs."""
    if nodes < 1:
        raise ProfileError(f"nodes: expected >= 1, got {nodes}")
    timeout = resources.timeout_min or profile.timeout_min
    if profile.signal_delay_s >= timeout * 60:
        raise ProfileError(
            f"{resources.name}: time limit {timeout} min leaves no time before the signal "
            f"({profile.signal_delay_s} s before the limit)"
        )
    params: dict[str, Any] = {
        "job_name": f"tdsclip-{resources.name}",
        "nodes": nodes,
        "ntasks_per_node": profile.tasks_per_node,
        "cpus_per_task": profile.cpus_per_task,
        "mem": f"{round(profile.mem_per_task_gb * profile.tasks_per_node * 1024)}M",
        "time": timeout,
        "signal_delay_s": profile.signal_delay_s,
        "array_parallelism": profile.array_parallelism,
        # submitit writes --signal=USR2@delay; a profile with another signal overrides it here.
        "additional_parameters": {"signal": f"{profile.signal}@{profile.signal_delay_s}"},
        "setup": list(profile.setup),
    }
    if profile.gpus_per_node:
        params["gpus_per_node"] = profile.gpus_per_node
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(profile, key):
            params[key] = getattr(profile, key)
    if profile.exclusive:
        params["exclusive"] = True
    return params
