"""Sweeps for real: worker processes sharing a sqlite Optuna storage, trials trained on the synthetic
data and mirrored to a real `mlflow server`, the pruner, a killed worker, and the real Slurm."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from mlflow_server import mlflow_server
from optuna.trial import TrialState
from slurm_cluster import wait

from tdsclip.records import iso_to_ms

pytestmark = pytest.mark.slow  # every test runs a study: trials that train, an MLflow server

TESTS = Path(__file__).parent
# Six trials in about half a minute with two workers: 2 epochs of 36 videos, validated each epoch.
TINY = [
    "train.epochs=2",
    "train.val_every=1",
    "data.synthetic_videos_per_class=8",
    "train.batch_size=8",
    "train.micro_batch=8",
]
# Enough to learn something in 2 epochs (about 27% against chance's 17%, measured), so a useless
# learning rate is measurably worse.
LEARNS = ["train.epochs=3", "train.val_every=1", "data.synthetic_videos_per_class=32"]


def sweep(*args: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweeps.run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )


def load(runs: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{runs}/sweeps/optuna.db")


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The recipe study, 6 trials by 2 local workers, MLflow through a real server."""
    root = tmp_path_factory.mktemp("sweep")
    with mlflow_server(root / "mlflow") as url:
        env = {"MLFLOW_TRACKING_URI": url, "TDSCLIP_REPORTS": str(root / "out")}
        args = [
            "recipe",
            "--preset",
            "smoke",
            "--runs-dir",
            str(root / "runs"),
            *TINY,
            f"data.cache_dir={root / 'cache'}",
        ]
        start = time.monotonic()
        done = sweep(*args, "--workers", "2", "--n-trials", "6", env=env)
        yield root, env, args, done, time.monotonic() - start, url


def test_a_local_sweep_records_every_trial_in_optuna_mlflow_and_the_report(local):
    root, env, args, done, seconds, url = local
    assert done.returncode == 0, done.stderr[-3000:]
    study = load(root / "runs", "recipe-smoke")
    trials = study.get_trials()
    assert len(trials) == 6 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), trials
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}, "both workers took trials"
    assert trials[0].params == {"optim.lr": 0.002, "optim.weight_decay": 0.05, "optim.warmup_epochs": 1.0}, (
        "the first trial is the base row's (smoke preset's) recipe"
    )
    assert len({t.user_attrs["run_id"] for t in trials}) == 6
    for trial in trials:
        run_dir = root / "runs" / trial.user_attrs["run_id"]
        if trial.state == TrialState.COMPLETE:
            result = json.loads((run_dir / "result.json").read_text())
            assert result["metrics"]["val_top1_best"] == trial.value
            assert result["config"]["optim"]["lr"] == trial.params["optim.lr"]
        assert sorted(trial.intermediate_values) in ([1, 2], [1])

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("tdsclip").experiment_id
    (parent,) = client.search_runs([experiment], filter_string="tags.sweep_run = 'recipe-smoke'")
    assert parent.info.status == "FINISHED" and parent.data.metrics["best_val_top1_best"] == study.best_value
    record = json.loads((root / "runs" / "sweeps" / "recipe-smoke.json").read_text())
    assert record["state"] == "finished" and record["best"]["trial"] == study.best_trial.number, (
        "the study's end is in its record, which `tdsclip.track sync` rebuilds the parent from"
    )
    assert parent.info.end_time == iso_to_ms(record["ended"]) and record["mlflow_parent_run_id"] == parent.info.run_id
    children = client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_trial = {int(r.data.tags["sweep.trial"]): r for r in children}
    assert sorted(by_trial) == list(range(6))
    for trial in trials:
        tags = by_trial[trial.number].data.tags
        assert tags["run_id"] == trial.user_attrs["run_id"] and tags["sweep"] == "recipe-smoke"
        assert float(tags["sweep.param.optim.lr"]) == trial.params["optim.lr"]

    page = root / "out" / "sweep-recipe-smoke.html"
    assert str(page) in done.stdout and "Best trials" in page.read_text()
    assert (root / "out" / "figures" / "sweep-recipe-smoke-history.png").stat().st_size > 5000
    assert (root / "out" / "figures" / "sweep-recipe-smoke-importances.png").stat().st_size > 5000
    assert (root / "out" / "figures" / "sweep-recipe-smoke-epochs.png").stat().st_size > 5000
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "reports.build",
            "table3",
            "--preset",
            "smoke",
            "--runs-dir",
            str(root / "runs"),
            "--out",
            str(root / "report"),
            "--format",
            "html",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert report.returncode == 0, report.stderr
    assert 'href="sweep-recipe-smoke.html"' in (root / "report" / "index.html").read_text()
    print(
        f"smoke sweep: 6 trials, 2 workers, {seconds:.0f} s; best trial {study.best_trial.number} "
        f"val_top1_best {study.best_value:.1f} {study.best_trial.params}"
    )


def test_status_and_the_best_trial_rerun_as_a_table_row(local):
    root, env, args, done, _, _ = local
    status = sweep(*args, "--status", env=env)
    study = load(root / "runs", "recipe-smoke")
    assert status.returncode == 0 and f"trial {study.best_trial.number}" in status.stdout
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == int(
        status.stdout.split(":")[1].split(" complete")[0].strip()
    ), status.stdout
    best = sweep(*args, "--best", env=env)
    command = next(line.split(":  ", 1)[1] for line in best.stdout.splitlines() if "re-run as table3's row" in line)
    assert command.startswith("python -m experiments.run table3 --preset smoke --rows '+ SME-Adapter'")
    argv = shlex.split(command)
    rerun = subprocess.run(
        [sys.executable, *argv[1:], "--runs-dir", str(root / "runs"), "--dry-run"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert rerun.returncode == 0, rerun.stderr
    assert study.best_trial.user_attrs["run_id"] in rerun.stdout and " finished " in rerun.stdout, rerun.stdout
    again = sweep(*args, "--n-trials", "6", env=env)
    assert again.returncode == 0 and len(load(root / "runs", "recipe-smoke").trials) == 6, "the study has its trials"


def test_the_median_pruner_stops_a_deliberately_bad_trial(tmp_path):
    runs = tmp_path / "runs"
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "TDSCLIP_REPORTS": str(tmp_path / "out"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
    }
    done = sweep(
        "sweep_probe",
        "--preset",
        "smoke",
        "--runs-dir",
        str(runs),
        *LEARNS,
        f"data.cache_dir={tmp_path / 'cache'}",
        "--enqueue",
        "optim.lr=0.001,optim.weight_decay=0.05",
        "--enqueue",
        "optim.lr=0.001,optim.weight_decay=0.06",
        "--enqueue",
        "optim.lr=1e-7,optim.weight_decay=0.05",
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    good_1, good_2, bad = load(runs, "lr-probe-smoke").get_trials()
    assert (good_1.state, good_2.state) == (TrialState.COMPLETE, TrialState.COMPLETE)
    assert bad.params["optim.lr"] == 1e-7 and bad.state == TrialState.PRUNED, bad
    assert sorted(bad.intermediate_values) == [1, 2], "pruned at the first epoch the pruner may act on"
    assert bad.intermediate_values[2] < min(good_1.intermediate_values[2], good_2.intermediate_values[2])
    run = runs / bad.user_attrs["run_id"]
    assert (run / "latest.pt").exists() and not (run / "result.json").exists(), "stopped, its checkpoint kept"
    tags = MlflowClient(env["MLFLOW_TRACKING_URI"]).search_runs(
        [MlflowClient(env["MLFLOW_TRACKING_URI"]).get_experiment_by_name("tdsclip").experiment_id],
        filter_string=f"tags.run_id = '{bad.user_attrs['run_id']}'",
    )[0]
    assert tags.info.status == "KILLED" and tags.data.tags["sweep.state"] == "PRUNED"


def test_a_worker_killed_mid_trial_has_its_trial_retried_from_its_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "TDSCLIP_REPORTS": str(tmp_path / "out"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
    }
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sweeps.run",
            "sweep_probe",
            "--preset",
            "smoke",
            "--runs-dir",
            str(runs),
            "--workers",
            "2",
            "--n-trials",
            "2",
            "--heartbeat",
            "2",
            *LEARNS,
            f"data.cache_dir={tmp_path / 'cache'}",
            "--enqueue",
            "optim.lr=0.001,optim.weight_decay=0.05",
            "--enqueue",
            "optim.lr=0.001,optim.weight_decay=0.06",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    printed = [launcher.stdout.readline(), launcher.stdout.readline()]  # "worker K: pid N, log ..."
    pid = int(next(line for line in printed if line.startswith("worker 1:")).split("pid ")[1].split(",")[0])
    victim, deadline = None, time.monotonic() + 300
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            running = load(runs, "lr-probe-smoke").get_trials(states=(TrialState.RUNNING,))
        except (KeyError, optuna.exceptions.StorageInternalError):
            continue
        victim = next(
            (
                t
                for t in running
                if t.user_attrs.get("worker") == 1 and (Path(t.user_attrs["run_dir"]) / "latest.pt").exists()
            ),
            None,
        )
    assert victim is not None, "worker 1 never checkpointed a trial"
    os.kill(pid, signal.SIGKILL)
    out, err = launcher.communicate(timeout=400)
    assert launcher.returncode == 1 and "exit codes [0, -9]" in out, out + err[-2000:]
    trials = load(runs, "lr-probe-smoke").get_trials()
    killed = next(t for t in trials if t.number == victim.number)
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == victim.number)
    assert killed.state == TrialState.FAIL and retry.state == TrialState.COMPLETE and retry.params == victim.params
    assert retry.user_attrs["run_id"] == victim.user_attrs["run_id"] and retry.user_attrs["worker"] == 0
    run = Path(victim.user_attrs["run_dir"])
    assert json.loads((run / "result.json").read_text())["status"] == "FINISHED"
    log = (runs / "sweeps" / "lr-probe-smoke" / "worker-0.log").read_text()
    assert f"resuming {victim.user_attrs['run_id']}" in log, "the retry resumed the dead trial's checkpoint"
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3] or epochs[-1] == 3 and len(set(epochs)) == 3


def test_a_worker_of_two_ranks_trains_each_trial_with_ddp_led_by_rank_0(tmp_path):
    from test_train_loop import free_port

    from sweeps.run import create
    from sweeps.study import load as load_study
    from sweeps.worker import WorkerJob, job_file

    runs, study = tmp_path / "runs", load_study("sweep_probe")
    overrides = (*TINY, "train.micro_batch=4", f"data.cache_dir={tmp_path / 'cache'}")  # 2 ranks x 4 = the batch of 8
    storage = f"sqlite:///{runs}/sweeps/optuna.db"
    learns = [{"optim.lr": 0.001, "optim.weight_decay": wd} for wd in (0.05, 0.06)]
    create(study, "smoke", storage, overrides, learns, 60, 2)
    path = job_file(
        WorkerJob("sweep_probe", "smoke", "lr-probe-smoke", storage, str(runs), overrides, n_trials=2),
        tmp_path / "job.json",
    )
    port = str(free_port())
    ranks = [
        subprocess.Popen(
            [sys.executable, "-m", "sweeps.worker", str(path), "--threads", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
                "RANK": str(r),
                "WORLD_SIZE": "2",
                "LOCAL_RANK": str(r),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
            },
        )
        for r in range(2)
    ]
    logs = [p.communicate(timeout=400)[0] for p in ranks]
    assert [p.returncode for p in ranks] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    trials = load(runs, "lr-probe-smoke").get_trials()
    assert len(trials) == 2 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), trials
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            result = json.loads((runs / trial.user_attrs["run_id"] / "result.json").read_text())
            assert result["world_size"] == 2 and result["config"]["optim"]["lr"] == trial.params["optim.lr"]


@pytest.mark.slurm
def test_the_same_sweep_on_the_real_slurm(slurm_cluster, tmp_path):
    runs = tmp_path / "runs"
    env = {"TDSCLIP_REPORTS": str(tmp_path / "out")}
    args = ["recipe", "--preset", "smoke", "--runs-dir", str(runs), *TINY, f"data.cache_dir={slurm_cluster.cache}"]
    planned = sweep(*args, "--executor", "slurm", "--profile", "local", "--workers", "2", "--dry-run", env=env)
    assert planned.returncode == 0 and "#SBATCH --array=0-1" in planned.stdout and not (runs / "sweeps").exists()
    done = sweep(*args, "--executor", "slurm", "--profile", "local", "--workers", "2", "--n-trials", "4", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = [
        line.split()[0] for line in done.stdout.splitlines() if "worker of recipe-smoke" in line or "report" in line
    ]
    assert len(jobs) == 3
    states = wait(jobs, timeout=400)
    assert all(s.state == "COMPLETED" for s in states.values()), states
    assert "Best trials" in (tmp_path / "out" / "sweep-recipe-smoke.html").read_text(), (
        "the report job rendered the study"
    )
    trials = load(runs, "recipe-smoke").get_trials()
    assert len(trials) == 4 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    status = sweep(*args, "--status", env=env)
    assert status.stdout.count("COMPLETED") == 3, status.stdout
    client = MlflowClient(slurm_cluster.mlflow_uri)
    experiment = client.get_experiment_by_name("tdsclip").experiment_id
    (parent,) = client.search_runs([experiment], filter_string="tags.sweep_run = 'recipe-smoke'")
    assert parent.info.status == "FINISHED", "the last worker out closed the study's parent run"
    children = client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert {r.data.tags["run_id"] for r in children} == {t.user_attrs["run_id"] for t in trials}
    assert all(r.data.tags.get("git_sha") for r in children), "trials ran the submitted snapshot"


def test_a_worker_gives_up_after_three_failed_trials_in_a_row(tmp_path):
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "TDSCLIP_REPORTS": str(tmp_path / "out")}
    done = sweep(
        "recipe",
        "--preset",
        "smoke",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--n-trials",
        "6",
        *TINY,
        "model.num_classes=5",
        f"data.cache_dir={tmp_path / 'cache'}",
        env=env,
    )  # the data has 6 classes
    assert done.returncode == 1 and "exit codes [1]" in done.stdout, done.stdout + done.stderr[-2000:]
    log = (tmp_path / "runs" / "sweeps" / "recipe-smoke" / "worker-0.log").read_text()
    assert "sweeps.worker: 3 trials in a row failed in worker 0; the last: " in log
    assert [t.state for t in load(tmp_path / "runs", "recipe-smoke").get_trials()] == [TrialState.FAIL] * 3
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("tdsclip").experiment_id
    (parent,) = client.search_runs([experiment], filter_string="tags.sweep_run = 'recipe-smoke'")
    assert parent.info.status == "FAILED" and parent.info.end_time, "a worker that gave up fails the study's parent"
    assert parent.data.tags["failure"].startswith("3 trials in a row failed in worker 0")


def test_bad_input_is_one_line(tmp_path):
    from sweeps.storage import check_url

    mounts = "server:/export /shared nfs4 rw,relatime 0 0\n/dev/sda1 / ext4 rw 0 0\n"
    with pytest.raises(
        ValueError, match=r"^--storage sqlite:////shared/x/optuna.db: /shared is a nfs4 network filesystem"
    ):
        check_url("sqlite:////shared/x/optuna.db", mounts)
    assert check_url("sqlite:////home/x/optuna.db", mounts) and check_url("postgresql://db/optuna", mounts)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    for args, message in (
        (
            ["recipee"],
            "sweeps.run: unknown study 'recipee'; expected one of recipe, fusion, side, or an importable module",
        ),
        (["recipe", "optim.lr=0.1"], "sweeps.run: override 'optim.lr=0.1': optim.lr is searched by study recipe"),
        (["recipe", "--enqueue", "optim.lr=9"], "sweeps.run: --enqueue 'optim.lr=9': expected optim.lr in log-float"),
        (["recipe", "--workers", "0"], "sweeps.run: --workers 0: expected >= 1"),
        (["recipe", "--storage", "redis://x"], "sweeps.run: --storage 'redis://x': expected an RDB URL"),
        (
            ["recipe", "--status", "--preset", "smoke", "--runs-dir", str(tmp_path)],
            "sweeps.run: no study recipe-smoke in",
        ),
    ):
        failed = sweep(*args, env=env)
        assert failed.returncode == 2 and failed.stderr.startswith(message) and failed.stderr.count("\n") == 1, (
            failed.stderr
        )
