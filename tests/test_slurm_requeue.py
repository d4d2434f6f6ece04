"""Interrupted Slurm jobs resume from their checkpoint and finish as if never interrupted: a real
preemption, `scontrol requeue`, a real time limit (the signal before it). The time-limit run
takes several attempts; it runs beside the requeue test."""

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from slurm_cluster import epochs_logged, mlflow_runs, only_run, result, smoke, wait, wait_for_step

from slurm.profiles import Profile, Resources, load_profile
from slurm.submit import RunGroup, RunSpec, failure_reason, job_states, submit_after, submit_runs
from tdsclip.train import checkpoint as ckpt

pytestmark = pytest.mark.slurm


def submit(session, name: str, profile: Profile, resources: Resources, *overrides: str) -> tuple[str, Path]:
    runs = session.root / f"{name}-runs"
    (job,) = submit_runs(
        [RunGroup(resources, [RunSpec(smoke(session.cache, *overrides), "smoke")])],
        profile,
        1,
        session.jobs,
        runs_dir=runs,
    )
    return job, runs


def wait_for_attempt(job: str, attempt: int, timeout: float = 180) -> float:
    """Seconds until the job's `attempt`-th run starts (sacct counts attempts)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        state = job_states([job])[job]
        if state.attempts >= attempt and state.state == "RUNNING":
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"job {job} did not start attempt {attempt} in {timeout:.0f} s")


def assert_resumed_like_the_uninterrupted_run(session, job: str, runs: Path, reference: Path) -> str:
    epochs = len((reference / "metrics.jsonl").read_text().splitlines())
    state = job_states([job])[job]
    assert state.state == "COMPLETED" and state.attempts >= 2, (state, failure_reason(session.jobs, job))
    run = only_run(runs)
    assert run.name == reference.name
    log = (session.jobs / f"{job}_0_log.err").read_text()
    assert f"resuming {run.name} at step" in log, "a later attempt started from the checkpoint"
    assert epochs_logged(run) == list(range(1, epochs + 1)), "no epoch trained twice"
    assert result(run)["metrics"] == result(reference)["metrics"]
    ours, theirs = ckpt.load(run / ckpt.LATEST)["model"], ckpt.load(reference / ckpt.LATEST)["model"]
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    (mirrored,) = mlflow_runs(session.mlflow_uri, run.name)
    assert mirrored.info.status == "FINISHED", "one MLflow run, continued by each attempt"
    return log


def test_preemption_by_a_job_in_the_higher_priority_partition_requeues_and_resumes(reference, slurm_cluster):
    s = slurm_cluster
    # A 60-minute limit: submitit then reads USR2 as a preemption, not a timeout.
    job, runs = submit(s, "preempt", load_profile("local"), Resources("preempted"), "train.epochs=8")
    at = wait_for_step(runs, 6)
    high = submit_after(
        time.sleep,
        1,
        after=[],
        profile=load_profile("local", ["partition=high", "cpus_per_task=2"]),
        folder=s.jobs,
        name="preemptor",
    )  # the whole node: only preempting the run frees it
    restart = wait_for_attempt(job, 2)
    states = wait([job, high])
    assert states[high].state == "COMPLETED"
    log = assert_resumed_like_the_uninterrupted_run(s, job, runs, reference.runs["mid"])
    assert "this job is preempted" in log
    print(f"\npreempted at step {at}: running again after {restart:.1f} s")


@dataclass
class Submitted:
    job: str
    runs: Path
    at: float
    delay: int


def signal_delay(run_seconds: int, limit_s: int = 120) -> int:
    """The --signal delay that makes a first attempt of a run lasting `run_seconds` meet its
    time-limit signal mid-run, on a quiet machine or a loaded one.

    slurmctld checks limits every 30 s and signals once at most delay + 30 s remain, so an
    attempt gets the signal at the first check at least E = limit - delay - 30 s after its
    start, i.e. E to E + 30 s after it. E is half of what the run leaves after those 30 s, at
    least 8 s (submitit's handler must be in place) and at most 50 s. A requeued attempt starts a
    few seconds after the check that stopped the last one, so it runs ~26 s (E <= 26) or ~56 s."""
    first = min(50, max(8, (run_seconds - 30) // 2))
    return limit_s - 30 - first


@pytest.fixture(scope="module")
def timelimit_job(reference, slurm_cluster) -> Submitted:
    """The time-limit run (the "long" row under a 2-minute limit), submitted once: it takes a
    few attempts, run beside the requeue test on the node's other CPU. submitit counts each
    signal as a timeout (its limit is <= 50 min), hence the allowance of 10."""
    delay = signal_delay(reference.states[reference.ids["long"]].elapsed_s)
    profile = load_profile("local", [f"signal_delay_s={delay}", "max_num_timeout=10"])
    started = time.monotonic()
    job, runs = submit(slurm_cluster, "timelimit", profile, Resources("timelimit", timeout_min=2))
    return Submitted(job, runs, started, delay)


@pytest.mark.usefixtures("timelimit_job")
def test_scontrol_requeue_of_a_running_job_resumes_from_its_checkpoint(reference, slurm_cluster):
    s = slurm_cluster
    job, runs = submit(s, "requeue", load_profile("local"), Resources("requeue"), "train.epochs=8")
    at = wait_for_step(runs, 6)
    s.cluster.run("scontrol", "requeue", job)
    restart = wait_for_attempt(job, 2)
    wait([job])
    assert_resumed_like_the_uninterrupted_run(s, job, runs, reference.runs["mid"])
    print(f"\nscontrol requeue at step {at}: running again after {restart:.1f} s")


def test_a_job_at_its_time_limit_is_signalled_checkpoints_and_resumes(reference, slurm_cluster, timelimit_job):
    s = slurm_cluster
    wait([timelimit_job.job], timeout=600)
    log = assert_resumed_like_the_uninterrupted_run(s, timelimit_job.job, timelimit_job.runs, reference.runs["long"])
    assert "this job is timed-out" in log
    attempts = job_states([timelimit_job.job])[timelimit_job.job].attempts
    print(
        f"\ntime limit 2 min, signal {timelimit_job.delay} s before: {attempts} attempts, "
        f"{time.monotonic() - timelimit_job.at:.0f} s from submission to the end"
    )
