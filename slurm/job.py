"""The checkpointable Slurm job that trains one run, and its place in a multi-node DDP job.

submitit starts the callable once per task (tasks_per_node x nodes processes). Each task reads
its rank from Slurm's environment (`dist_environ`), joins the process group and calls
`tdsclip.train.run.run_config`, which resumes from runs/<run_id>/latest.pt if there is one.

Preemption and time limits. Slurm sends the profile's signal (USR2) before the time limit and
when the job is preempted. submitit installs its handler for it when the task starts (requeue:
call `checkpoint()`, `scontrol requeue`, exit); the trainer then installs its own stop handler for
the same signal while it trains, so during training the signal only sets the trainer's flag:
the ranks agree at the next step boundary, save latest.pt and return "stopped", and the trainer
puts submitit's handler back. The job then calls that handler itself, so submitit decides as it
would have on the signal: a timeout (counted against max_num_timeout) or a preemption, dump
`checkpoint()`'s resubmission and requeue. A signal outside training (start-up, the final test)
reaches submitit's handler directly; one after the run completed is ignored (`ignore_stop_signal`).
`checkpoint()` (Checkpointable's) resubmits the same callable: the same config, so the same run id,
run folder, latest.pt and MLflow run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Light imports only (torch and tdsclip inside __call__): the job unpickles this module before
# submitit installs its signal handlers, and a signal in that window would kill the task.
from submitit.helpers import Checkpointable

_PORTS = (20000, 60000)


def master_port(job_id: str, restart: int) -> int:
    """A port all tasks of one job attempt agree on without talking; another attempt (a requeue
    may land where the last one's sockets linger) gets another port."""
    digest = hashlib.sha256(f"{job_id}:{restart}".encode()).digest()
    return _PORTS[0] + int.from_bytes(digest[:4], "big") % (_PORTS[1] - _PORTS[0])


def dist_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """torch.distributed's variables for this Slurm task: rank SLURM_PROCID of SLURM_NTASKS,
    local rank SLURM_LOCALID (its GPU), rendezvous on the first node of SLURM_JOB_NODELIST."""
    from slurm.private_api import parse_node_list  # the node-list grammar, as submitit reads it

    def number(key: str, default: int | None = None) -> int:
        if key not in environ and default is not None:
            return default
        try:
            return int(environ[key])
        except (KeyError, ValueError):
            raise RuntimeError(f"{key}={environ.get(key)!r}: expected an integer from Slurm") from None

    rank, world, local = number("SLURM_PROCID"), number("SLURM_NTASKS"), number("SLURM_LOCALID", 0)
    nodes = parse_node_list(environ.get("SLURM_JOB_NODELIST", ""))
    num_nodes = number("SLURM_JOB_NUM_NODES", len(nodes))
    if not nodes or len(nodes) != num_nodes:
        raise RuntimeError(f"SLURM_JOB_NODELIST={environ.get('SLURM_JOB_NODELIST')!r}: expected {num_nodes} node(s)")
    if not 0 <= rank < world or world % num_nodes or not 0 <= local < world // num_nodes:
        raise RuntimeError(
            f"rank {rank}, local rank {local} of {world} tasks on {num_nodes} nodes: expected the same "
            f"number of tasks on every node"
        )
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(local),
        "LOCAL_WORLD_SIZE": str(world // num_nodes),
        "MASTER_ADDR": nodes[0],
        "MASTER_PORT": str(master_port(environ.get("SLURM_JOB_ID", "0"), number("SLURM_RESTART_COUNT", 0))),
    }


def _check_code_origin(code_dir: Path) -> None:
    """The job must run the submitted snapshot, not whatever the working directory holds."""
    import slurm
    import tdsclip

    for module in (tdsclip, slurm):
        path = Path(module.__file__).resolve()
        if not path.is_relative_to(code_dir.resolve()):
            raise RuntimeError(
                f"the job imports {module.__name__} from {path.parent}, not from the submitted snapshot "
                f"{code_dir}; PYTHONSAFEPATH needs Python >= 3.11"
            )


def _preempt_signal() -> signal.Signals:
    """The signal submitit handles in this job (the profile's, exported by the batch script)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


def hand_over_to_submitit() -> None:
    """Requeue through submitit's own signal handler, as if its signal had just come (see the
    module docstring). On rank 0 it does not return; on other ranks it returns at once."""
    sig = _preempt_signal()
    handler = signal.getsignal(sig)
    if callable(handler):
        handler(sig, None)


def ignore_stop_signal() -> None:
    """The run is complete: a stop signal from now on (the time limit's warning, a preemption
    notice while submitit pickles the result) has nothing left to save. Ignored, it neither requeues
    the finished run nor kills the task: Python puts its handlers back to the default when it shuts
    down, and USR2's default ends the process, so a late signal made a completed job FAILED (exit
    code 12). SIG_IGN stays through the shutdown."""
    signal.signal(_preempt_signal(), signal.SIG_IGN)


def _log_to_stderr(name: str) -> None:
    """The trainer's records (resuming at step N, ...) in the job's log, as the CLI prints them;
    not through the root logger, which would print submitit's lines twice."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def enter_job(environ: Mapping[str, str], code_dir: str | None, loggers: tuple[str, ...] = ("tdsclip",)) -> Any:
    """What every task of a job does first: the loggers to the job's log, the submitter's variables,
    the snapshot check, torch.distributed's variables from Slurm's, torch's thread count from the
    task's CPUs. Returns the task's tdsclip DistEnv."""
    import torch

    from tdsclip.train.distributed import DistEnv

    for name in loggers:
        _log_to_stderr(name)
    os.environ.update(environ)
    if code_dir:
        _check_code_origin(Path(code_dir))
    ranks = dist_environ(os.environ)
    os.environ.update(ranks)
    if "SLURM_CPUS_PER_TASK" in os.environ:  # torch would otherwise use every core of the node
        torch.set_num_threads(int(os.environ["SLURM_CPUS_PER_TASK"]))
    return DistEnv(int(ranks["RANK"]), int(ranks["WORLD_SIZE"]), int(ranks["LOCAL_RANK"]))


@dataclass
class TrainJob(Checkpointable):
    """Train one run in a Slurm job; returns its result.json content (or a "stopped" marker on
    ranks that return after a stop)."""

    config: dict[str, Any]
    """tdsclip.config.to_dict of the resolved RunConfig (train.stop_signal = the profile's signal)."""
    preset: str
    runs_dir: str
    """Absolute: the job's working directory is not where the runs live."""
    tags: dict[str, str] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)
    """Set before training, e.g. MLFLOW_TRACKING_URI as the submitter resolved it."""
    code_dir: str | None = None
    """The snapshot the job must import its code from (None: no check)."""

    def __call__(self) -> dict[str, Any]:
        import submitit

        from tdsclip.config import from_dict
        from tdsclip.runlock import stale_after_s
        from tdsclip.train.run import run_config

        env = enter_job(self.environ, self.code_dir)
        tags = {**self.tags, "slurm_job_id": submitit.JobEnvironment().job_id}
        outcome = run_config(
            from_dict(self.config),
            preset=self.preset,
            runs_dir=Path(self.runs_dir),
            tags=tags,
            env=env,
            wait=stale_after_s() + 60,
        )  # a requeue after a dead node waits out its stale lock
        if outcome.status == "stopped":
            hand_over_to_submitit()
            return {"status": "stopped", "checkpoint": str(outcome.path)}
        ignore_stop_signal()
        return outcome.result

    # checkpoint() is Checkpointable's: the same callable again, which resumes from latest.pt.
