"""Sweep workers as Slurm jobs: one job array, each job a worker looping over trials.

A worker job takes the profile's node share (tasks_per_node DDP ranks, one per GPU; pass
--profile-set gpus_per_node=1 tasks_per_node=1 for one-GPU trials). It runs the code snapshot
taken at submission. Preemption or the time limit: the trainer saves the trial's checkpoint, the
trial is queued again (a retry, resuming from that checkpoint) and submitit requeues the worker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Light imports only: the job unpickles this module before submitit installs its signal handlers.
from submitit.helpers import Checkpointable


@dataclass
class SweepJob(Checkpointable):
    """One worker of a study in a Slurm job (every task of the job runs it; rank 0 leads)."""

    job: dict[str, Any]
    """sweeps.worker.WorkerJob as a dict."""
    code_dir: str | None = None

    def __call__(self) -> str:
        from slurm.job import enter_job, hand_over_to_submitit, ignore_stop_signal
        from sweeps.worker import WorkerJob, work
        from tdsclip.train.distributed import setup, teardown

        job = WorkerJob(**{**self.job, "overrides": tuple(self.job["overrides"])})
        env = enter_job(job.environ, self.code_dir, loggers=("tdsclip", "sweeps"))
        setup(env)  # one process group for every trial of this worker
        try:
            outcome = work(job, env)
        finally:
            teardown()
        if outcome == "stopped":
            hand_over_to_submitit()
        else:
            ignore_stop_signal()  # no trial left: a late signal must not fail the finished worker
        return outcome


def submit_workers(jobs: Sequence[Any], profile: Any, folder: Path, record: dict) -> tuple[list[str], str]:
    """Submit the workers as one array and the study's report after them (afterany); their job ids
    and the report's. The code is snapshotted into folder/code."""
    from reports.studies import report_for_study
    from slurm.profiles import Resources
    from slurm.snapshot import take_snapshot
    from slurm.submit import array_executor, submit_after

    folder = Path(folder).resolve()
    code = take_snapshot(folder / "code")
    executor = array_executor(profile, 1, Resources(f"sweep-{jobs[0].study}"), folder, code)
    signal = f"train.stop_signal={profile.stop_signal}"  # not part of a run's identity: same run ids
    with executor.batch():
        submitted = [
            executor.submit(
                SweepJob(
                    dataclasses.asdict(
                        dataclasses.replace(
                            job,
                            overrides=(*job.overrides, signal),
                            tags={**job.tags, **code.tags(), "slurm_profile": profile.name},
                        )
                    ),
                    str(code.path),
                )
            )
            for job in jobs
        ]
    ids = [job.job_id for job in submitted]
    return ids, submit_after(report_for_study, record, after=ids, profile=profile, folder=folder, snapshot=code)
