"""Submit runs to Slurm as job arrays, follow them through sacct, cancel them, read why one failed.

    groups = [RunGroup(Resources("ViT-B-16"), [RunSpec(cfg, "paper", {"table": "table3"}), ...])]
    ids = submit_runs(groups, load_profile("a100"), nodes=1, folder=Path("slurm_jobs"), runs_dir=Path("runs"))
    report = submit_after(build_report, "table3", after=ids, profile=profile, folder=Path("slurm_jobs"))
    job_states(ids)      # {"12_0": JobState(state="RUNNING", elapsed_s=..., gpu_hours=...), ...}
    cancel(ids)

Each group becomes one submitit job array (one job per run, at most profile.array_parallelism at
once); each job runs DDP over tasks_per_node x nodes processes. All calls return at once: they
submit, they do not wait. The code is copied at submit time (slurm/snapshot.py) and the jobs run
that copy; its git SHA is a tag of every run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import submitit

from slurm.job import TrainJob
from slurm.profiles import Profile, Resources, sbatch_parameters
from slurm.snapshot import Snapshot, job_setup, take_snapshot
from tdsclip.config import RunConfig, to_dict
from tdsclip.mirror import resolve_tracking_uri, sqlite_path

T = TypeVar("T")


class SlurmError(RuntimeError):
    """A Slurm command failed; one line with the command and its message."""


@dataclass(frozen=True)
class RunSpec:
    config: RunConfig
    """Resolved: preset, overrides and locations already applied."""
    preset: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunGroup:
    """Runs that need the same resources; they become one job array."""

    resources: Resources
    runs: Sequence[RunSpec]


def _run(*command: str, timeout: float = 60, check: bool = True) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SlurmError(f"{command[0]}: {error}") from None
    if done.returncode != 0 and check:
        raise SlurmError(f"{' '.join(command[:3])} ... exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return done.stdout


def check_controller() -> None:
    """Refuse before anything is written when the Slurm controller cannot be reached: one line."""
    try:
        _run("sinfo", "--noheader", "-o", "%P", timeout=60)
    except SlurmError as error:
        detail = str(error).strip().splitlines()[-1] if str(error).strip() else ""
        raise SlurmError(
            f"the Slurm controller cannot be reached ({detail.split(': ', 1)[-1]}); check that slurmctld "
            f"runs and that SLURM_CONF ({os.environ.get('SLURM_CONF', 'unset')}) names it"
        ) from None


def _one_line_submit(submit: Callable[[], T]) -> T:
    """submitit's submission errors (sbatch's whole stderr) as one SlurmError line."""
    try:
        return submit()
    except SlurmError:
        raise
    except Exception as error:  # noqa: BLE001 - submitit raises several kinds; all end here as one line
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise SlurmError(f"sbatch failed: {lines[-1] if lines else type(error).__name__}") from None


def tracking_uri_for_jobs() -> str:
    """The MLflow URI the jobs log to: the submitter's, a sqlite file made absolute."""
    uri = resolve_tracking_uri(None)
    path = sqlite_path(uri)
    return f"sqlite:///{path.resolve()}" if path is not None else uri


def array_executor(
    profile: Profile, nodes: int, resources: Resources, folder: Path, snapshot: Snapshot | None
) -> submitit.SlurmExecutor:
    executor = submitit.SlurmExecutor(folder, max_num_timeout=profile.max_num_timeout)
    params = sbatch_parameters(profile, nodes, resources)
    # The job's own signal handling follows the profile's signal (submitit reads this at import).
    params["setup"] = [*params["setup"], *job_setup(snapshot), f"export SUBMITIT_PREEMPT_SIGNAL={profile.signal}"]
    executor.update_parameters(**params)
    return executor


def _train_job(
    run: RunSpec, profile: Profile, runs_dir: Path, code: Snapshot | None, environ: dict[str, str]
) -> TrainJob:
    # The trainer stops on the profile's signal (train.stop_signal is not part of the run's identity).
    cfg = dataclasses.replace(run.config, train=dataclasses.replace(run.config.train, stop_signal=profile.stop_signal))
    return TrainJob(
        config=to_dict(cfg),
        preset=run.preset,
        runs_dir=str(runs_dir.resolve()),
        tags={**run.tags, **(code.tags() if code else {}), "slurm_profile": profile.name},
        environ=environ,
        code_dir=str(code.path) if code else None,
    )


def submit_runs(
    groups: Sequence[RunGroup],
    profile: Profile,
    nodes: int,
    folder: Path,
    *,
    runs_dir: Path,
    snapshot: bool | Snapshot = True,
) -> list[str]:
    """Submit every run; return their Slurm job ids ("<array>_<index>", or "<id>" for a group of
    one), in the order of the groups and their runs. snapshot: True copies the code now into
    folder/code (slurm/snapshot.py), a Snapshot reuses one, False runs the working tree as it is
    when each job starts."""
    folder = Path(folder).resolve()
    code = take_snapshot(folder / "code") if snapshot is True else (snapshot or None)
    environ = {"MLFLOW_TRACKING_URI": tracking_uri_for_jobs()}
    ids: list[str] = []
    for group in groups:
        if not group.runs:
            continue
        executor = array_executor(profile, nodes, group.resources, folder, code)

        def batch() -> list:
            with executor.batch():  # noqa: B023 - called within this iteration
                jobs = [executor.submit(_train_job(run, profile, Path(runs_dir), code, environ)) for run in group.runs]  # noqa: B023 - called within this iteration
            return jobs

        submitted = _one_line_submit(batch)
        ids.extend(job.job_id for job in submitted)
    return ids


def submit_after(
    function: Callable[..., Any],
    *args: Any,
    after: Sequence[str],
    profile: Profile,
    folder: Path,
    name: str = "report",
    timeout_min: int = 60,
    snapshot: Snapshot | None = None,
) -> str:
    """Submit `function(*args)` as a one-task job without GPUs that starts once every job in
    `after` has ended, whatever its state (afterany), e.g. the report of a table. It takes the
    profile's partition, account, QOS and one task's CPUs and memory: pass a CPU profile where the
    GPU partition refuses jobs without GPUs. `function` must be importable in the job (from
    `snapshot` if given). Returns its job id."""
    folder = Path(folder).resolve()
    executor = submitit.SlurmExecutor(folder, max_num_timeout=0)
    params = {
        k: v
        for k, v in sbatch_parameters(profile, 1, Resources(name, timeout_min)).items()
        if k not in ("gpus_per_node", "array_parallelism", "exclusive")
    }
    params.update(
        ntasks_per_node=1,
        mem=f"{round(profile.mem_per_task_gb * 1024)}M",
        signal_delay_s=0,
        additional_parameters={},
        setup=[*params["setup"], *job_setup(snapshot)],
    )
    if after:
        params["dependency"] = "afterany:" + ":".join(after)
    executor.update_parameters(**params)
    return _one_line_submit(lambda: executor.submit(function, *args)).job_id


def sbatch_script(profile: Profile, nodes: int, resources: Resources, array_size: int, folder: Path) -> str:
    """The batch script one group's array would be submitted with (for --dry-run)."""
    from slurm.private_api import SUBMIT_COMMAND, sbatch_string  # what SlurmExecutor writes

    params = sbatch_parameters(profile, nodes, resources)
    return sbatch_string(SUBMIT_COMMAND, Path(folder), array_size if array_size > 1 else None, **params)


# ----------------------------------------------------------------------------- state

FINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}
)


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str
    """sacct's state of the latest attempt: PENDING, RUNNING, REQUEUED, COMPLETED, FAILED, ...;
    UNKNOWN when sacct has no record (yet)."""
    elapsed_s: int = 0
    """Summed over every attempt (requeues included)."""
    gpus: int = 0
    attempts: int = 0
    exit_code: str = ""

    @property
    def gpu_hours(self) -> float:
        return self.elapsed_s * self.gpus / 3600

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


def _expand(job_id: str) -> list[str]:
    """sacct's id of pending array members, 12_[3-5,8%2], as 12_3 12_4 12_5 12_8."""
    match = re.fullmatch(r"(\d+)_\[([\d,\-]+)(?:%\d+)?\]", job_id)
    if not match:
        return [job_id]
    ids = []
    for part in match.group(2).split(","):
        low, _, high = part.partition("-")
        ids.extend(f"{match.group(1)}_{i}" for i in range(int(low), int(high or low) + 1))
    return ids


def _gpus(tres: str) -> int:
    match = re.search(r"gres/gpu=(\d+)", tres)
    return int(match.group(1)) if match else 0


def _queued(bases: Sequence[str]) -> dict[str, str]:
    """squeue's states: a job reaches sacct a moment after its submission."""
    out = _run("squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(bases), check=False)  # gone: an error
    return {job_id: state for line in out.splitlines() if "|" in line for job_id, state in [line.split("|", 1)]}


def job_states(job_ids: Sequence[str]) -> dict[str, JobState]:
    """Each job's state, time and GPU-hours from sacct (every attempt of a requeued job counts)."""
    if not job_ids:
        return {}
    bases = sorted({job_id.split("_")[0] for job_id in job_ids})
    out = _run(
        "sacct", "-X", "-D", "-n", "-P", "--format=JobID,State,ElapsedRaw,AllocTRES,ExitCode", "-j", ",".join(bases)
    )
    records: dict[str, list[list[str]]] = {}
    for line in out.splitlines():
        fields = line.split("|")
        if len(fields) != 5:
            continue
        for job_id in _expand(fields[0]):
            records.setdefault(job_id, []).append(fields)
    queued = _queued(bases) if any(job_id not in records for job_id in job_ids) else {}
    states = {}
    for job_id in job_ids:
        attempts = records.get(job_id, [])
        if not attempts:
            states[job_id] = JobState(job_id, queued.get(job_id, "UNKNOWN"))
            continue
        last = attempts[-1]
        states[job_id] = JobState(
            job_id,
            last[1].split()[0],
            elapsed_s=sum(int(a[2] or 0) for a in attempts),
            gpus=max(_gpus(a[3]) for a in attempts),
            attempts=len(attempts),
            exit_code=last[4],
        )
    return states


def cancel(job_ids: Sequence[str]) -> None:
    """scancel the jobs (array members or whole arrays)."""
    if job_ids:
        _run("scancel", *job_ids)


_PYTHON_ERROR = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b(: .*)?$")
_SLURM_ERROR = re.compile(r"^(slurmstepd|srun)\S*: error: ")


def failure_reason(folder: Path, job_id: str) -> str | None:
    """The last error line of a job's logs: the Python exception that ended it if there is one,
    else Slurm's own notice (*** ... CANCELLED ... DUE TO TIME LIMIT ***), else srun's, else None."""
    logs = sorted(Path(folder).glob(f"{job_id}_*_log.err")) + sorted(Path(folder).glob(f"{job_id}_*_log.out"))
    found: dict[str, str] = {}
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            line = line.strip()
            if _PYTHON_ERROR.match(line):
                found["python"] = line
            elif _SLURM_ERROR.match(line):
                found["notice" if "***" in line else "slurm"] = line
    return found.get("python") or found.get("notice") or found.get("slurm")
