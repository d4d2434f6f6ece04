"""MLflow mirrors the run state and nothing else writes it: parents per (table, preset, override
set) closed with an end time, readable run names, the experiment's kind, --force superseding,
sync rebuilding parents, a failed record FAILED. Real sqlite store, read through the MLflow client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tdsclip import runstate
from tdsclip.records import RecordError, iso_to_ms
from tdsclip.track import Tracker, end_study, supersede, sync_runs, table_run_key, track_study, track_table


def record(runs: Path, run_id: str, row: str, uri: str, *, overrides: list[str] = (), fail: bool = False) -> None:
    tags = {
        "kind": "train",
        "table": "table3",
        "row": row,
        "table.table3": row,
        "preset": "smoke",
        "overrides": json.dumps(list(overrides)),
    }
    tracker = Tracker(runs / run_id, run_id, params={"train.epochs": 1}, tags=tags, tracking_uri=uri)
    tracker.log_metrics({"loss": 1.0}, step=1, epoch=1)
    if fail:
        runstate.mark_failed(runs / run_id, RuntimeError("too many unreadable videos: 5 of 8"))
        tracker.close("FAILED")
    else:
        tracker.finish({"metrics": {"test_top1": 50.0}})


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri, MlflowClient(uri)


def runs_of(client: MlflowClient, view: int = 1) -> list:
    experiment = client.get_experiment_by_name("tdsclip")
    return client.search_runs([experiment.experiment_id], run_view_type=view)


def test_parents_are_closed_per_override_set_and_runs_read_like_the_table(tmp_path, store):
    """Why: parents stayed RUNNING for ever, one parent served every override set, runs were hex ids,
    and the UI opened the experiment on the GenAI traces overview."""
    uri, client = store
    runs = tmp_path / "runs"
    record(runs, "r-base", "Baseline", uri)
    record(runs, "r-td", "+ TD-Adapter", uri, fail=True)
    record(runs, "r-base-e2", "Baseline", uri, overrides=["train.epochs=2"])
    track_table("table3", "smoke", [], [("Baseline", "r-base"), ("+ TD-Adapter", "r-td")], runs)
    track_table("table3", "smoke", ["train.epochs=2"], [("Baseline", "r-base-e2")], runs)

    assert client.get_experiment_by_name("tdsclip").tags["mlflow.experimentKind"] == "custom_model_development"
    found = runs_of(client)
    names = {r.data.tags.get("run_id"): r.info.run_name for r in found if "run_id" in r.data.tags}
    assert names == {"r-base": "table3/Baseline", "r-td": "table3/+ TD-Adapter", "r-base-e2": "table3/Baseline"}
    parents = {r.data.tags["table_run"]: r for r in found if "table_run" in r.data.tags}
    plain, epochs2 = (
        parents[table_run_key("table3", "smoke", [])],
        parents[table_run_key("table3", "smoke", ["train.epochs=2"])],
    )
    assert plain.info.status == "FAILED" and plain.info.end_time, "a failed row fails its parent, with an end time"
    assert epochs2.info.status == "FINISHED" and epochs2.info.end_time and "train.epochs=2" in epochs2.info.run_name
    child = next(r for r in found if r.data.tags.get("run_id") == "r-base-e2")
    assert child.data.tags["mlflow.parentRunId"] == epochs2.info.run_id
    failed = next(r for r in found if r.data.tags.get("run_id") == "r-td")
    assert failed.info.status == "FAILED"


def test_sync_rebuilds_runs_and_parents_from_the_records_alone(tmp_path, store):
    uri, _ = store
    runs = tmp_path / "runs"
    record(runs, "r-base", "Baseline", uri)
    record(runs, "r-td", "+ TD-Adapter", uri, fail=True)
    fresh = f"sqlite:///{tmp_path}/fresh.db"
    sync_runs(runs, fresh)
    found = runs_of(MlflowClient(fresh))
    by_id = {r.data.tags.get("run_id"): r for r in found if "run_id" in r.data.tags}
    assert by_id["r-td"].info.status == "FAILED" and "unreadable videos" in by_id["r-td"].data.tags["failure"]
    (parent,) = [r for r in found if "table_run" in r.data.tags]
    assert parent.info.status == "FAILED" and parent.info.run_name == "table3 (smoke)"
    assert {by_id[i].data.tags["mlflow.parentRunId"] for i in ("r-base", "r-td")} == {parent.info.run_id}


def test_force_supersedes_the_old_mlflow_run_before_retraining(tmp_path, store):
    """Why: --force deleted the folder but the tracker re-attached to the old MLflow run by its tag."""
    uri, client = store
    runs = tmp_path / "runs"
    record(runs, "r-base", "Baseline", uri)
    (old,) = [r for r in runs_of(client) if r.data.tags.get("run_id") == "r-base"]
    assert supersede("r-base", tracking_uri=uri)
    import shutil

    shutil.rmtree(runs / "r-base")
    record(runs, "r-base", "Baseline", uri)
    active = [r for r in runs_of(client) if r.data.tags.get("run_id") == "r-base"]
    assert [r.info.run_id for r in active] != [old.info.run_id] and len(active) == 1
    history = client.get_metric_history(active[0].info.run_id, "loss")
    assert len(history) == 1, "the new run's curve holds only the new points"
    gone = client.get_run(old.info.run_id)
    assert gone.info.lifecycle_stage == "deleted" and "superseded" in gone.data.tags


# ----------------------------------------------------------------------------- a sweep's study


def study_record(runs: Path, name: str = "recipe-smoke") -> None:
    """What `python -m sweeps.run` leaves in runs/sweeps/<name>.json when it starts a study."""
    path = runstate.RunsFolder(runs).sweep_record(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "study": "recipe",
                "preset": "smoke",
                "study_name": name,
                "storage": f"sqlite:///{runs}/sweeps/optuna.db",
                "overrides": ["train.epochs=2"],
                "n_trials": 2,
                "objective": "val_top1_best",
                "base": "table3: + SME-Adapter",
            }
        )
    )


def trial(runs: Path, run_id: str, number: int, uri: str, extra: dict | None = None) -> None:
    tags = {"sweep": "recipe-smoke", "sweep.trial": str(number), **(extra or {})}
    tracker = Tracker(runs / run_id, run_id, params={"optim.lr": 10.0**-number}, tags=tags, tracking_uri=uri)
    tracker.log_metrics({"val_top1": 40.0 + number}, step=1, epoch=1)
    tracker.finish({"metrics": {"val_top1_best": 40.0 + number}})


def parent_of_study(client: MlflowClient, name: str = "recipe-smoke"):
    experiment = client.get_experiment_by_name("tdsclip").experiment_id
    (parent,) = client.search_runs([experiment], filter_string=f"tags.sweep_run = '{name}'")
    children = client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return parent, {r.data.tags["run_id"] for r in children}


def test_a_study_parent_is_written_by_the_tracker_closed_with_an_end_time_and_rebuilt_by_sync(tmp_path, store):
    """Why: sweeps wrote the study's parent run beside the tracker; `sync` could not rebuild it, and
    trials carried the parent's MLflow id in their records (dangling in another store)."""
    uri, client = store
    runs = tmp_path / "runs"
    study_record(runs)
    parent_id = track_study("recipe-smoke", runs)
    trial(runs, "t0", 0, uri)
    trial(runs, "t1", 1, uri, {"mlflow.parentRunId": "0123456789abcdef"})  # as workers tagged trials before
    parent, children = parent_of_study(client)
    assert parent.info.run_id == parent_id and parent.info.status == "RUNNING" and children == {"t0", "t1"}, (
        "a trial hangs under its study's parent as soon as it starts"
    )
    assert parent.info.run_name == "sweep recipe-smoke" and parent.data.tags["sweep.base"] == "table3: + SME-Adapter"

    best = {"objective": "val_top1_best", "value": 41.0, "trial": 1, "run_id": "t1"}
    assert end_study(runs, "recipe-smoke", "finished", best=best) == parent_id
    ended = json.loads(runstate.RunsFolder(runs).sweep_record("recipe-smoke").read_text())["ended"]
    parent, _ = parent_of_study(client)
    assert parent.info.status == "FINISHED" and parent.info.end_time == iso_to_ms(ended)
    assert parent.data.metrics["best_val_top1_best"] == 41.0
    assert (parent.data.tags["best_trial"], parent.data.tags["best_run_id"]) == ("1", "t1")

    fresh = f"sqlite:///{tmp_path}/fresh.db"
    report = sync_runs(runs, fresh)
    rebuilt, children = parent_of_study(MlflowClient(fresh))
    assert report.parents == (f"sweep recipe-smoke: MLflow run {rebuilt.info.run_id}",), "sync says what it rebuilt"
    assert rebuilt.info.status == "FINISHED" and rebuilt.info.end_time == iso_to_ms(ended) and children == {"t0", "t1"}
    assert rebuilt.data.metrics["best_val_top1_best"] == 41.0 and rebuilt.data.tags["preset"] == "smoke"


def test_a_study_whose_worker_gave_up_fails_its_parent(tmp_path, store):
    uri, client = store
    runs = tmp_path / "runs"
    study_record(runs)
    trial(runs, "t0", 0, uri)
    end_study(runs, "recipe-smoke", "failed", reason="3 trials in a row failed in worker 0")
    parent, children = parent_of_study(client)
    assert parent.info.status == "FAILED" and parent.info.end_time and children == {"t0"}
    assert parent.data.tags["failure"] == "3 trials in a row failed in worker 0"
    study_record(runs)  # the same command started again: the study goes on
    track_study("recipe-smoke", runs)
    assert parent_of_study(client)[0].info.status == "RUNNING"
    with pytest.raises(RecordError, match=r"^study state 'done': expected one of finished, failed"):
        end_study(runs, "recipe-smoke", "done")
    with pytest.raises(RecordError, match=r"recipe-smok\.json: no such study record"):
        track_study("recipe-smok", runs)


ENDER = """
import sys, time
from pathlib import Path
from tdsclip.track import end_study
runs, go, ready = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.001)
best = {"objective": "val_top1_best", "value": 41.0, "trial": 1, "run_id": "t1"}
end_study(runs, "recipe-smoke", "finished", best=best)
"""


def test_workers_ending_a_study_together_leave_one_end_time_in_the_record_and_in_mlflow(tmp_path, store):
    """Why: a sweep's two workers found its last trial done at the same moment and both ended the
    study; each wrote its own end time and set MLflow's, and the parent kept the one the record
    no longer had (CI: end times 12 ms apart). The first end stands; the others change nothing."""
    uri, client = store
    runs = tmp_path / "runs"
    study_record(runs)
    track_study("recipe-smoke", runs)
    trial(runs, "t1", 1, uri)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(4)]
    command = [sys.executable, "-c", ENDER, str(runs), str(go)]
    enders = [subprocess.Popen([*command, str(path)], env={**os.environ, "MLFLOW_TRACKING_URI": uri}) for path in ready]
    deadline = time.monotonic() + 120
    while not all(path.exists() for path in ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()  # all four end the study at once
    assert [p.wait(timeout=120) for p in enders] == [0, 0, 0, 0]
    record = json.loads(runstate.RunsFolder(runs).sweep_record("recipe-smoke").read_text())
    parent, _ = parent_of_study(client)
    assert parent.info.status == "FINISHED" and parent.info.end_time == iso_to_ms(record["ended"])

    first = record["ended"]
    best = {"objective": "val_top1_best", "value": 41.0, "trial": 1, "run_id": "t1"}
    end_study(runs, "recipe-smoke", "finished", best=best)  # a late worker finds it ended
    record = json.loads(runstate.RunsFolder(runs).sweep_record("recipe-smoke").read_text())
    assert record["ended"] == first and parent_of_study(client)[0].info.end_time == iso_to_ms(first)


# ----------------------------------------------------------------------------- the runs list


def test_a_table_parents_children_carry_their_row_and_the_compared_metric(tmp_path, store, monkeypatch):
    """Why: opened in `mlflow ui`, the runs list showed hex-named children and no metric column to
    compare. Each row's run carries its row name (tag `row`, run name table/row) and the value its
    table compares, under one stable name (metric `top1` = val_top1_best for the ablations,
    test_top1 for Table I), read back through the MLflow client and after a sync."""
    from experiments.plan import plan, record_tags
    from experiments.spec import load

    monkeypatch.setenv("TDSCLIP_LOCATIONS", str(tmp_path / "none.toml"))
    monkeypatch.setenv("TDSCLIP_CACHE", str(tmp_path / "cache"))
    uri, client = store
    runs = tmp_path / "runs"
    parents = {}
    for table, value in (("table3", {"val_top1_best": 41.5, "test_top1": 44.0}), ("table1", {"test_top1": 77.0})):
        spec = load(table)
        planned = plan(spec, "smoke", runs_dir=runs)[:2]
        for number, p in enumerate(planned):
            tags = record_tags(spec, p, "smoke", [])
            tracker = Tracker(runs / p.run_id, p.run_id, params={"train.seed": p.seed}, tags=tags, tracking_uri=uri)
            tracker.finish({"metrics": {k: v + number for k, v in value.items()}})
        parents[table] = track_table(table, "smoke", [], [(p.row.name, p.run_id) for p in planned], runs)
        parents[table] = (parents[table], planned)

    def check(client: MlflowClient, parent_id: str, table: str, planned, metric: str, value: float) -> None:
        experiment = client.get_experiment_by_name("tdsclip").experiment_id
        children = client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")
        by_row = {r.data.tags["row"]: r for r in children}
        assert sorted(by_row) == sorted(p.row.name for p in planned)
        for number, p in enumerate(planned):
            run = by_row[p.row.name]
            assert run.info.run_name == f"{table}/{p.row.name}"
            assert run.data.metrics["top1"] == value + number, f"{p.row.name}: top1 is the table's {metric}"
            assert run.data.tags["compared"].split()[0] == f"top1={metric}", "the list says what top1 is"

    check(client, parents["table3"][0], "table3", parents["table3"][1], "val_top1_best", 41.5)
    check(client, parents["table1"][0], "table1", parents["table1"][1], "test_top1", 77.0)
    fresh = MlflowClient(f"sqlite:///{tmp_path}/fresh.db")
    sync_runs(runs, fresh.tracking_uri)
    for table, metric, value in (("table3", "val_top1_best", 41.5), ("table1", "test_top1", 77.0)):
        (parent,) = fresh.search_runs(
            [fresh.get_experiment_by_name("tdsclip").experiment_id],
            filter_string=f"tags.table_run = '{table_run_key(table, 'smoke', [])}'",
        )
        check(fresh, parent.info.run_id, table, parents[table][1], metric, value)
