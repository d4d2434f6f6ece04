"""A real single-node Slurm for the tests (slurm/localcluster.py), and what the Slurm tests share.

The session fixture `slurm_cluster` starts the cluster once, points SLURM_CONF and MLflow at it
for this process (submitit's sbatch and sacct inherit them, and so do the jobs), and stops it
at the end. `reference` submits the runs every other Slurm test compares with, as one array.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import pytest
from mlflow.tracking import MlflowClient

from slurm import localcluster
from slurm.profiles import Resources, load_profile
from slurm.submit import JobState, RunGroup, RunSpec, job_states, submit_after, submit_runs
from tdsclip import presets
from tdsclip.config import RunConfig
from tdsclip.train import checkpoint as ckpt

# A run that trains ~30-50 s on one CPU here: 16 epochs of 4 steps (72 training videos, batch 16
# cut into two micro-batches of 8), a checkpoint every step.
RUN = ["train.epochs=16", "data.synthetic_videos_per_class=16", "train.micro_batch=8", "train.checkpoint_every=1"]


def smoke(cache: Path, *overrides: str) -> RunConfig:
    return presets.resolve("smoke", [*RUN, f"data.cache_dir={cache}", *overrides])


@dataclass
class SlurmSession:
    cluster: localcluster.Cluster
    root: Path
    cache: Path
    mlflow_uri: str

    @property
    def jobs(self) -> Path:
        """The submitit folder of every test (logs, pickles, code snapshots)."""
        return self.root / "jobs"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Iterator[SlurmSession]:
    root = tmp_path_factory.mktemp("slurm")
    cluster = localcluster.up(root / "cluster")
    session = SlurmSession(cluster, root, root / "cache", f"sqlite:///{root}/mlflow.db")
    saved = {key: os.environ.get(key) for key in ("SLURM_CONF", "MLFLOW_TRACKING_URI")}
    os.environ.update({**cluster.environ, "MLFLOW_TRACKING_URI": session.mlflow_uri})
    try:
        from tdsclip.train.data import build_run_data
        from tdsclip.train.distributed import DistEnv

        build_run_data(smoke(session.cache), DistEnv())  # the synthetic videos and frame counts, made once
        yield session
    finally:
        localcluster.down(root / "cluster")
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def wait(job_ids: list[str], timeout: float = 300) -> dict[str, JobState]:
    """Poll sacct until every job has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = job_states(job_ids)
        if all(state.finished for state in states.values()):
            return states
        time.sleep(1)
    raise TimeoutError(f"jobs {job_ids} still not done after {timeout:.0f} s: {job_states(job_ids)}")


def wait_for_step(runs: Path, step: int, timeout: float = 180) -> int:
    """The run's checkpointed step once it reaches `step` (the job is then training)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for latest in runs.glob(f"*/{ckpt.LATEST}"):
            try:
                at = ckpt.load(latest)["step"]
            except ckpt.CheckpointError:  # replaced by the next one between glob and load
                continue
            if at >= step:
                return at
        time.sleep(0.2)
    raise TimeoutError(f"no checkpoint at step {step} under {runs} after {timeout:.0f} s")


def only_run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if (p / "run.json").exists()]
    return run


def result(run: Path) -> dict:
    return json.loads((run / "result.json").read_text())


def epochs_logged(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def mlflow_runs(uri: str, run_id: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tdsclip")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.run_id = '{run_id}'")


def write_report(runs_dir: str, out: str) -> str:
    """The report job of the tests: one line per finished run, written after the array ended."""
    lines = [
        f"{p.parent.name} {json.loads(p.read_text())['metrics']['test_top1']:.2f}"
        for p in sorted(Path(runs_dir).glob("*/result.json"))
    ]
    Path(out).write_text("\n".join(lines) + "\n")
    return out


cloudpickle.register_pickle_by_value(__import__(__name__))  # write_report runs where tests/ is not importable


@dataclass
class Reference:
    """The uninterrupted runs, submitted as one array with a failing run beside them, and the
    report job that ran after them."""

    ids: dict[str, str]
    """Job id per row: "long" (RUN, 16 epochs), "mid" (8), "short" (2), "bad" (a config that fails in the job)."""
    states: dict[str, JobState]
    runs: dict[str, Path]
    """Run folder per row that got one (not "bad")."""
    report_id: str
    report: Path
    seconds: float


@pytest.fixture(scope="session")
def reference(slurm_cluster: SlurmSession) -> Reference:
    s = slurm_cluster
    runs = s.root / "reference-runs"
    # Two at a time: "bad" fails within seconds, then "short" and "mid" run beside "long".
    rows = {
        "long": smoke(s.cache),
        "bad": smoke(s.cache, "model.num_classes=5"),  # the data has 6 classes
        "short": smoke(s.cache, "train.epochs=2"),
        "mid": smoke(s.cache, "train.epochs=8"),
    }
    started = time.monotonic()
    ids = submit_runs(
        [RunGroup(Resources("smoke"), [RunSpec(cfg, "smoke", {"row": row}) for row, cfg in rows.items()])],
        load_profile("local"),
        1,
        s.jobs,
        runs_dir=runs,
    )
    report = s.root / "report.txt"
    report_id = submit_after(
        write_report, str(runs), str(report), after=ids, profile=load_profile("local"), folder=s.jobs
    )
    states = wait([*ids, report_id])
    seconds = time.monotonic() - started
    row_of = dict(zip(ids, rows))
    folders = {
        row_of[json.loads((p / "run.json").read_text())["tags"]["slurm_job_id"]]: p
        for p in runs.iterdir()
        if (p / "run.json").exists()
    }
    return Reference(dict(zip(rows, ids)), states, folders, report_id, report, seconds)
