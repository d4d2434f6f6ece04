"""Runs on a real single-node Slurm: an array of runs, a failing run beside them, the report job
after them, DDP over two tasks (signalled and requeued midway), cancelling."""

import json
import subprocess

import pytest
import torch
from helpers import REPO
from slurm_cluster import epochs_logged, mlflow_runs, only_run, result, smoke, wait, wait_for_step

from slurm.profiles import Resources, load_profile
from slurm.submit import RunGroup, RunSpec, cancel, failure_reason, job_states, submit_runs
from tdsclip.train import checkpoint as ckpt

pytestmark = pytest.mark.slurm


def test_an_array_of_runs_lands_in_records_and_mlflow_and_the_report_runs_after_it(reference, slurm_cluster):
    assert len({job.split("_")[0] for job in reference.ids.values()}) == 1, "one array for the group"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    for row in ("long", "mid", "short"):
        state, run = reference.states[reference.ids[row]], reference.runs[row]
        assert (state.state, state.attempts, state.gpu_hours) == ("COMPLETED", 1, 0.0) and state.elapsed_s > 0
        done = result(run)
        assert (
            done["status"] == "FINISHED"
            and done["world_size"] == 1
            and done["steps"] == {"long": 64, "mid": 32, "short": 8}[row]
        )
        tags = json.loads((run / "run.json").read_text())["tags"]
        assert tags["slurm_job_id"] == reference.ids[row] and tags["row"] == row and tags["git_sha"] == head
        assert tags["code_snapshot"].startswith(str(slurm_cluster.jobs / "code")), "the job ran the snapshot"
        (mirrored,) = mlflow_runs(slurm_cluster.mlflow_uri, run.name)
        assert mirrored.info.status == "FINISHED"
        assert mirrored.data.metrics["test_top1"] == done["metrics"]["test_top1"]
    report = reference.states[reference.report_id]
    assert report.state == "COMPLETED", "afterany: the report runs although a run of the array failed"
    assert sorted(reference.report.read_text().split("\n")[:-1]) == sorted(
        f"{reference.runs[row].name} {result(reference.runs[row])['metrics']['test_top1']:.2f}"
        for row in ("long", "mid", "short")
    )
    print(f"\narray of 4 runs + report: {reference.seconds:.0f} s")


def test_a_failing_run_is_reported_failed_with_the_reason_from_its_log(reference, slurm_cluster):
    bad = reference.ids["bad"]
    assert reference.states[bad].state == "FAILED"
    reason = failure_reason(slurm_cluster.jobs, bad)
    assert reason.startswith("tdsclip.config.ConfigError: model.num_classes=5 but "), reason
    assert reason.endswith("has 6 classes; set model.num_classes=6"), reason
    assert set(reference.runs) == {"long", "mid", "short"}, "its siblings finished, nothing else was touched"


def test_two_tasks_train_ddp_on_gloo_like_one_process_and_resume_together_after_a_signal(reference, slurm_cluster):
    # Both ranks get USR2 (what a preemption sends); only rank 0 has submitit's requeue handler,
    # so both must stop at the same step boundary and rank 0 requeue the job.
    s = slurm_cluster
    runs = s.root / "ddp-runs"
    (job,) = submit_runs(
        [RunGroup(Resources("ddp"), [RunSpec(smoke(s.cache, "train.epochs=8"), "smoke")])],
        load_profile("local", ["tasks_per_node=2"]),
        1,
        s.jobs,
        runs_dir=runs,
    )
    wait_for_step(runs, 6)
    s.cluster.run("scancel", "--signal=USR2", job)
    state = wait([job])[job]
    assert (state.state, state.attempts) == ("COMPLETED", 2), failure_reason(s.jobs, job)
    assert "this job is preempted" in (s.jobs / f"{job}_0_log.err").read_text()
    ddp, single = only_run(runs), reference.runs["mid"]
    assert ddp.name == single.name, "the same run id: the process layout is not part of a run's identity"
    assert result(ddp)["world_size"] == 2 and result(single)["world_size"] == 1
    assert epochs_logged(ddp) == list(range(1, 9)), "no epoch trained twice"
    two, one = ckpt.load(ddp / ckpt.LATEST)["model"], ckpt.load(single / ckpt.LATEST)["model"]
    weights = [k for k in one if "running_" not in k and "num_batches_tracked" not in k]
    assert len(weights) > 50
    for key in weights:
        assert torch.allclose(one[key], two[key], atol=1e-5, rtol=1e-4), key

    def losses(run):
        return [json.loads(line)["metrics"]["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert losses(ddp) == pytest.approx(losses(single), rel=1e-5)


def test_cancel_ends_a_job(slurm_cluster):
    s = slurm_cluster
    (job,) = submit_runs(
        [RunGroup(Resources("cancel"), [RunSpec(smoke(s.cache), "smoke")])],
        load_profile("local"),
        1,
        s.jobs,
        runs_dir=s.root / "cancel-runs",
    )
    cancel([job])
    assert wait([job])[job].state == "CANCELLED"
    assert job_states([job])[job].finished
