"""MLflow mirrors the run state and nothing else writes it: parents per (table, preset, override
set) closed with an end time, readable run names, the experiment's kind, --force superseding,
sync rebuilding parents, a failed record FAILED. Real sqlite store, read through the MLflow client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tdsclip import runstate
from tdsclip.track import Tracker, supersede, sync_runs, table_run_key, track_table


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
