"""Run records and their MLflow mirror, against a real sqlite store and a real `mlflow server`."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from mlflow_server import free_port, mlflow_server

from tdsclip.config import RunConfig, flatten
from tdsclip.mirror import PARAM_VALUE_LIMIT, param_value
from tdsclip.records import RecordError, load_record
from tdsclip.track import RetryPolicy, Tracker, child_environment, environment_tags, sync_runs

REPO = Path(__file__).resolve().parents[1]
FAST_FAIL = RetryPolicy(tries=2, first_delay=0.05, offline_for=3600)


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory: pytest.TempPathFactory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("server", marks=pytest.mark.slow)])  # the server: a minute to start
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(tracking URI, experiment): a fresh sqlite file, or a fresh experiment on the shared server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/mlflow.db", "tdsclip"
    return request.getfixturevalue("server_uri"), f"tdsclip-{tmp_path.name}"


# ----------------------------------------------------------------------------- reading MLflow back


def mlflow_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id], max_results=1000)


def mlflow_history(uri: str, run) -> dict[str, list[tuple[int, float]]]:
    client = MlflowClient(uri)
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        for key in run.data.metrics
    }


def local_history(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as MLflow should show it: every metric, and the epoch as metric "epoch"."""
    history: dict[str, list[tuple[int, float]]] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        entry = json.loads(line)
        values = dict(entry["metrics"], **({"epoch": entry["epoch"]} if entry["epoch"] is not None else {}))
        for key, value in values.items():
            history.setdefault(key, []).append((entry["step"], float(value)))
    return {key: sorted(points) for key, points in history.items()}


def expected_history(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """local_history plus the result's final metrics at the last step, as a finished run has."""
    history = local_history(run_dir)
    result = json.loads((run_dir / "result.json").read_text())
    last = max(step for points in history.values() for step, _ in points)
    for key, value in result["metrics"].items():
        if (last, float(value)) not in history.get(key, []):
            history[key] = sorted(history.get(key, []) + [(last, float(value))])
    return history


def artifact_names(uri: str, run) -> set[str]:
    return {f.path for f in MlflowClient(uri).list_artifacts(run.info.run_id)}


# ----------------------------------------------------------------------------- 1. one run, resumed


def test_tracker_writes_the_record_and_mirrors_it_and_a_resume_continues_the_same_run(store, tmp_path):
    uri, experiment = store
    params = flatten(RunConfig())
    params["note"] = "x" * 600  # over MLflow's (older servers') 500-character param limit
    run_dir = tmp_path / "runs" / "abc123"
    extra = tmp_path / "notes.txt"
    extra.write_text("checkpoint notes\n")

    first = Tracker(run_dir, "abc123", params=params, tags={"preset": "smoke"}, tracking_uri=uri, experiment=experiment)
    for step in range(3):
        first.log_metrics({"train/loss": 2.0 / (step + 1), "lr": 1e-3}, step=step, epoch=step // 2)
    first.close()  # interrupted (a preempted job)
    run_json = json.loads((run_dir / "run.json").read_text())
    [killed] = mlflow_runs(uri, experiment)
    assert killed.info.status == "KILLED" and not first.out_of_sync

    second = Tracker(
        run_dir,
        "abc123",
        params=params,
        tags={"preset": "smoke", "attempt": "2"},
        tracking_uri=uri,
        experiment=experiment,
    )
    [resumed] = mlflow_runs(uri, experiment)
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "RUNNING"
    for step in range(3, 6):
        second.log_metrics({"train/loss": 2.0 / (step + 1), "lr": 1e-3}, step=step, epoch=step // 2)
    second.log_artifact(extra)
    result = {"metrics": {"val/top1": 47.25, "val/top5": 75.5}, "epochs": 3, "best_epoch": 2}
    path = second.finish(result)

    # local files, exactly as specified
    assert path == run_dir / "result.json"
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.jsonl", "result.json", "run.json"]
    record = json.loads((run_dir / "run.json").read_text())
    assert set(record) == {"run_id", "params", "tags", "created"}
    assert record["run_id"] == "abc123" and record["created"] == run_json["created"]  # kept on resume
    assert record["params"] == json.loads(json.dumps(params)) and record["params"]["note"] == "x" * 600
    assert record["tags"] == {**environment_tags(), "preset": "smoke", "attempt": "2"}
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(e["step"], e["epoch"], e["metrics"]) for e in lines] == [
        (s, s // 2, {"train/loss": 2.0 / (s + 1), "lr": 1e-3}) for s in range(6)
    ]
    assert all(set(e) == {"step", "epoch", "time", "metrics"} for e in lines)
    assert [e["time"] for e in lines] == sorted(e["time"] for e in lines)
    saved = json.loads(path.read_text())
    assert {k: saved[k] for k in result} == result
    assert (
        saved["run_id"] == "abc123"
        and saved["status"] == "FINISHED"
        and set(saved) == set(result) | {"run_id", "status", "finished"}
    )

    # MLflow: one run for the run_id, the same params, metrics, artifacts, and its status
    [run] = mlflow_runs(uri, experiment)
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert run.data.tags["run_id"] == "abc123" and run.data.tags["attempt"] == "2"
    assert {k: run.data.tags[k] for k in record["tags"]} == record["tags"]
    assert run.data.params == {k: param_value(v) for k, v in params.items()}
    assert len(run.data.params["note"]) == PARAM_VALUE_LIMIT and run.data.params["optim.lr"] == "0.001"
    assert mlflow_history(uri, run) == expected_history(run_dir)
    assert mlflow_history(uri, run)["val/top1"] == [(5, 47.25)]
    assert artifact_names(uri, run) == {"result.json", "run.json", "notes.txt"}
    mirrored = MlflowClient(uri).download_artifacts(run.info.run_id, "run.json", str(tmp_path))
    assert json.loads(Path(mirrored).read_text()) == record
    assert not second.out_of_sync


# ----------------------------------------------------------------------------- 2. offline, then sync


def train(
    run_dir: Path,
    run_id: str,
    uri: str,
    steps: int,
    finish: bool,
    retry: RetryPolicy = FAST_FAIL,
    experiment: str = "tdsclip",
    ready: Callable[[], object] = lambda: None,
) -> Tracker:
    """A stand-in for the training loop: logs `steps` steps, then finishes or is interrupted."""
    params = {**flatten(RunConfig()), **{f"extra.p{i:03d}": i for i in range(120)}}  # > 100: two batches
    tracker = Tracker(
        run_dir, run_id, params=params, tags={"preset": "smoke"}, tracking_uri=uri, experiment=experiment, retry=retry
    )
    ready()
    for step in range(steps):
        tracker.log_metrics({"loss": 1.0 / (step + 1), "acc": step / steps}, step=step, epoch=step // 4)
    if finish:
        tracker.finish({"metrics": {"val/top1": 40.0 + steps, "acc": 0.99}, "epochs": steps // 4})
    else:
        tracker.close()
    return tracker


def test_records_written_while_mlflow_is_down_are_complete_and_sync_is_idempotent(tmp_path, caplog):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    runs = tmp_path / "runs"
    with caplog.at_level(logging.WARNING, logger="tdsclip.track"):
        trackers = [
            train(runs / "r1", "r1", dead, 9, True),
            train(runs / "r2", "r2", dead, 5, True),
            train(runs / "r3", "r3", dead, 4, False),
        ]
    assert all(t.out_of_sync for t in trackers)
    assert any("python -m tdsclip.track sync" in r.getMessage() for r in caplog.records)
    for name, steps in (("r1", 9), ("r2", 5), ("r3", 4)):
        record = load_record(runs / name)
        assert [e.step for e in record.metrics] == list(range(steps))
        assert (record.result is None) == (name == "r3")

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = sync_runs(runs, uri)
    assert (first.created, first.updated) == (3, 0)
    by_id = {r.data.tags["run_id"]: r for r in mlflow_runs(uri, "tdsclip")}
    assert sorted(by_id) == ["r1", "r2", "r3"]
    assert mlflow_history(uri, by_id["r1"]) == expected_history(runs / "r1")
    assert mlflow_history(uri, by_id["r2"]) == expected_history(runs / "r2")
    assert mlflow_history(uri, by_id["r3"]) == local_history(runs / "r3")
    # r3 has no result and no live lock: its run state is "stopped" (interrupted), mirrored as KILLED
    assert [by_id[r].info.status for r in ("r1", "r2", "r3")] == ["FINISHED", "FINISHED", "KILLED"]
    assert artifact_names(uri, by_id["r1"]) == {"result.json", "run.json"} and not artifact_names(uri, by_id["r3"])
    assert len(by_id["r1"].data.params) == len(load_record(runs / "r1").params) == 120 + len(flatten(RunConfig()))
    counted = sum(len(points) for r in by_id.values() for points in mlflow_history(uri, r).values())
    assert first.metrics == counted

    second = sync_runs(runs, uri)
    assert (second.created, second.updated, second.metrics) == (0, 0, 0)
    again = {r.data.tags["run_id"]: r for r in mlflow_runs(uri, "tdsclip")}
    assert {k: r.info.run_id for k, r in again.items()} == {k: r.info.run_id for k, r in by_id.items()}
    assert sum(len(points) for r in again.values() for points in mlflow_history(uri, r).values()) == counted
    assert all(artifact_names(uri, again[k]) == artifact_names(uri, by_id[k]) for k in by_id)


def test_a_tracker_catches_up_by_itself_when_mlflow_comes_back(tmp_path):
    blocker = tmp_path / "store"
    blocker.write_text("a file where the store's folder should be: opening the store fails")
    uri = f"sqlite:///{blocker}/mlflow.db"
    tracker = Tracker(
        tmp_path / "runs" / "back",
        "back",
        params={"a": 1},
        tags={},
        tracking_uri=uri,
        retry=RetryPolicy(tries=2, first_delay=0.05, offline_for=0),
    )
    tracker.log_metrics({"loss": 3.0}, step=0)
    assert tracker.out_of_sync
    blocker.unlink()  # the outage ends
    tracker.log_metrics({"loss": 2.0}, step=1)
    assert not tracker.out_of_sync
    tracker.log_metrics({"loss": 1.0}, step=2)
    tracker.finish({"metrics": {"loss": 1.0}})
    [run] = mlflow_runs(uri, "tdsclip")
    assert mlflow_history(uri, run) == {"loss": [(0, 3.0), (1, 2.0), (2, 1.0)]}
    assert run.info.status == "FINISHED"


# ----------------------------------------------------------------------------- 3. contention


def _contender(runs: str, index: int, uri: str, experiment: str, barrier, out: str) -> None:
    """One training process with its own Tracker and run_id: all 8 open the (new) store at once,
    then all log their 20 steps at once."""
    barrier.wait()
    start = time.monotonic()
    tracker = train(Path(runs) / f"p{index}", f"p{index}", uri, 20, True, RetryPolicy(), experiment, ready=barrier.wait)
    Path(out).write_text(
        json.dumps(
            {
                "retries": tracker._mirror.retries,
                "out_of_sync": tracker.out_of_sync,
                "seconds": time.monotonic() - start,
            }
        )
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "server"])
def test_eight_processes_logging_at_once_lose_no_run_and_no_metric(backend, tmp_path, request):
    uri = f"sqlite:///{tmp_path}/mlflow.db" if backend == "sqlite" else request.getfixturevalue("server_uri")
    experiment = f"contention-{backend}-{tmp_path.name}"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(8)
    outs = [tmp_path / f"p{i}.json" for i in range(8)]
    procs = [
        ctx.Process(target=_contender, args=(str(tmp_path / "runs"), i, uri, experiment, barrier, str(outs[i])))
        for i in range(8)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(300)
    assert [proc.exitcode for proc in procs] == [0] * 8

    stats = [json.loads(out.read_text()) for out in outs]
    print(
        f"\n{backend}: 8 processes x 20 steps; retries per process {[s['retries'] for s in stats]}; "
        f"seconds per process {[round(s['seconds'], 1) for s in stats]}"
    )
    assert not any(s["out_of_sync"] for s in stats)  # mirrored live, not left for a sync
    runs = mlflow_runs(uri, experiment)
    assert sorted(r.data.tags["run_id"] for r in runs) == [f"p{i}" for i in range(8)]
    for run in runs:
        history = mlflow_history(uri, run)
        assert history == expected_history(tmp_path / "runs" / run.data.tags["run_id"])
        assert [len(history[k]) for k in ("loss", "acc", "epoch", "val/top1")] == [20, 21, 20, 1]
        assert run.info.status == "FINISHED"
    assert sync_runs(tmp_path / "runs", uri, experiment).metrics == 0  # nothing was missing


# ----------------------------------------------------------------------------- 4. children, other ranks

CHILD = (
    "import os, mlflow; print(os.environ.get('MLFLOW_RUN_ID'));"
    "run = mlflow.start_run(); mlflow.log_metric('child', 1.0); print(run.info.run_id); mlflow.end_run()"
)


@pytest.mark.slow
def test_children_never_log_into_the_parents_run(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123456789abcdef0123456789abcdef")  # leaked by some launcher
    tracker = Tracker(tmp_path / "runs" / "parent", "parent", params={"a": 1}, tags={})
    assert "MLFLOW_RUN_ID" not in os.environ  # the tracker unset it, so nothing it spawns inherits it
    [parent] = mlflow_runs(uri, "tdsclip")
    assert parent.data.tags["run_id"] == "parent" and parent.info.run_id != "0123456789abcdef0123456789abcdef"

    # the hazard: a child that inherits MLFLOW_RUN_ID logs into the parent's run
    leaky = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MLFLOW_RUN_ID": parent.info.run_id},
    )
    assert leaky.stdout.split() == [parent.info.run_id, parent.info.run_id], leaky.stderr
    # child_environment() drops it: the child gets a run of its own
    env = child_environment({**os.environ, "MLFLOW_RUN_ID": parent.info.run_id, "MLFLOW_EXPERIMENT_ID": "0"})
    assert "MLFLOW_RUN_ID" not in env and "MLFLOW_EXPERIMENT_ID" not in env and env["MLFLOW_TRACKING_URI"] == uri
    clean = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, env=env)
    seen, child_run = clean.stdout.split()
    assert seen == "None" and child_run != parent.info.run_id, clean.stderr
    client = MlflowClient(uri)
    assert client.get_metric_history(child_run, "child")[0].value == 1.0
    tracker.finish({})


def test_a_disabled_tracker_writes_nothing(tmp_path):
    db = tmp_path / "mlflow.db"
    tracker = Tracker(
        tmp_path / "runs" / "rank1", "rank1", params={"a": 1}, tags={}, enabled=False, tracking_uri=f"sqlite:///{db}"
    )
    tracker.log_metrics({"loss": 1.0}, step=0)
    tracker.log_artifact(tmp_path / "does-not-matter")
    assert tracker.finish({"metrics": {"acc": 1.0}}) == tmp_path / "runs" / "rank1" / "result.json"
    tracker.close()
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_a_one_line_error_and_loses_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_dir = tmp_path / "runs" / "r"
    tracker = Tracker(run_dir, "r", params={"lr": 0.1}, tags={}, tracking_uri=uri)
    tracker.log_metrics({"loss": 1.0}, step=0)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    cases = [
        (lambda: tracker.log_metrics({"loss": "low"}, step=1), "metric 'loss': expected a number, got str"),
        (lambda: tracker.log_metrics({"loss": 1.0}, step=-1), "step: expected an int >= 0, got -1"),
        (lambda: tracker.log_metrics({"bad*name": 1.0}, step=1), "metric name 'bad*name'"),
        (lambda: tracker.finish({"x": object()}), "result: expected JSON-serialisable values"),
        (lambda: tracker.finish({}, status="DONE"), "status: expected one of FINISHED, FAILED, KILLED, got 'DONE'"),
        (lambda: Tracker(run_dir, "other", params={"lr": 0.1}, tags={}, tracking_uri=uri), "belongs to run 'r'"),
        (lambda: Tracker(run_dir, "r", params={"lr": 0.2}, tags={}, tracking_uri=uri), "has lr=0.1, resumed with 0.2"),
        (lambda: Tracker(tmp_path / "x", "../x", params={}, tags={}, tracking_uri=uri), "run_id: expected letters"),
    ]
    for call, message in cases:
        with pytest.raises(RecordError) as error:
            call()
        assert message in str(error.value) and "\n" not in str(error.value)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before

    # a crash mid-write leaves a torn last line: readers skip it, a resume trims it
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 1, "epo')
    assert [e.step for e in load_record(run_dir).metrics] == [0]
    resumed = Tracker(run_dir, "r", params={"lr": 0.1}, tags={}, tracking_uri=uri)
    resumed.log_metrics({"loss": 0.5}, step=1)
    assert [e.step for e in load_record(run_dir).metrics] == [0, 1]
    resumed.finish({})


# ----------------------------------------------------------------------------- 5. the CLI


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tdsclip.track", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env=child_environment(os.environ),
    )


@pytest.mark.slow
def test_cli_sync_prints_one_line_per_run_and_errors_are_one_line(tmp_path):
    runs = tmp_path / "runs"
    train(runs / "a", "a", f"http://127.0.0.1:{free_port()}", 3, True)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    done = cli("sync", "--tracking-uri", uri, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("run a: created MLflow run ")
    assert lines[1] == "1 runs: 1 created, 0 updated, 0 up to date; 11 metric points logged"
    again = cli("sync", str(runs), "--tracking-uri", uri, cwd=REPO)
    assert again.stdout.splitlines()[-1] == "1 runs: 0 created, 0 updated, 1 up to date; 0 metric points logged"

    elsewhere = tmp_path / "cwd"  # where a default sqlite store would appear
    elsewhere.mkdir()
    (runs / "b").mkdir()
    (runs / "b" / "run.json").write_text('{"run_id": "b", "params": {}')
    (runs / "c").mkdir()
    (runs / "c" / "run.json").write_text('{"run_id": "c", "tags": {}, "created": "2026-01-01T00:00:00+00:00"}')
    errors = {
        "missing dir": (cli("sync", str(tmp_path / "nope"), cwd=elsewhere), "nope' does not exist"),
        "bad json": (cli("sync", str(runs), cwd=elsewhere), f"{runs / 'b' / 'run.json'}: not valid JSON"),
        "bad option": (cli("sync", "--trackin-uri", uri, cwd=elsewhere), "unrecognized arguments: --trackin-uri"),
        "no command": (cli(cwd=elsewhere), "the following arguments are required: command"),
    }
    (runs / "b").joinpath("run.json").unlink()
    errors["no params"] = (cli("sync", str(runs), cwd=elsewhere), f'{runs / "c" / "run.json"}: expected "params"')
    (runs / "c" / "run.json").write_text(
        json.dumps({"run_id": "c", "params": {}, "tags": {}, "created": "2026-01-01T00:00:00+00:00"})
    )
    (runs / "c" / "metrics.jsonl").write_text('{"step": 0, "epoch": null, "time": 1.0, "metrics": {"loss": "x"}}\n')
    errors["bad metrics"] = (cli("sync", str(runs), cwd=elsewhere), f"{runs / 'c' / 'metrics.jsonl'}:1: metric 'loss'")
    for name, (done, message) in errors.items():
        assert done.returncode == 2, (name, done.stderr)
        assert done.stdout == "" and done.stderr.count("\n") == 1, (name, done.stderr)
        assert done.stderr.startswith("error: ") and message in done.stderr, (name, done.stderr)
    assert list(elsewhere.iterdir()) == []  # bad input stops before any store is opened


NO_MLFLOW = '''
import sys


class NoMlflow:
    """What a Python without MLflow installed answers to `import mlflow`."""

    def find_spec(self, name, path=None, target=None):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NoMlflow())
'''


@pytest.mark.slow
def test_without_mlflow_installed_a_table_keeps_its_records_and_sync_mirrors_them_later(tmp_path):
    """Why: the demo's set-up leaves MLflow out (half of a cold install's time); a run then failed
    at its first metric with ModuleNotFoundError."""
    blocker = tmp_path / "no-mlflow"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_MLFLOW)  # every process of the command, row jobs too
    work, runs = tmp_path / "cwd", tmp_path / "runs"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["TDSCLIP_REPORTS"] = str(tmp_path / "out")
    rows = ["--rows", "Baseline,+ SME-Adapter", "--jobs", "2"]
    data = ["train.epochs=1", "data.synthetic_videos_per_class=8", f"data.cache_dir={tmp_path / 'cache'}"]
    command = [sys.executable, "-m", "experiments.run", "table3", "--preset", "smoke", *rows, "--runs-dir", str(runs)]
    done = subprocess.run([*command, *data], capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    (said,) = [line for line in done.stderr.splitlines() if "MLflow is not installed" in line]
    assert f"python -m tdsclip.track sync {runs}" in said
    results = [json.loads(path.read_text()) for path in runs.glob("*/result.json")]
    assert len(results) == 2 and all(r["status"] == "FINISHED" for r in results)
    assert all("MLflow is not installed" in (runs / r["run_id"] / "train.log").read_text() for r in results)
    assert not list(work.iterdir()), "no MLflow store was made"

    uri = f"sqlite:///{tmp_path}/mlflow.db"  # later, with MLflow installed
    synced = cli("sync", str(runs), "--tracking-uri", uri, cwd=work)
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.splitlines()[-1].startswith("2 runs: 2 created, 0 updated, 0 up to date")
    mirrored = {run.data.tags.get("run_id"): run.info.status for run in mlflow_runs(uri, "tdsclip")}  # + the parent
    assert {r["run_id"]: "FINISHED" for r in results}.items() <= mirrored.items()
