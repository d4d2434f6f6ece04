"""Where a report reads its runs: the local run records (the source of truth) or their MLflow mirror.

Both sources answer the same question, `get(run_id)`: has this run finished, failed, started
(running or interrupted), or never run, and what are its final metrics and tags. A report built
from either source is the same table, since `tdsclip.track` mirrors the result's numeric metrics,
its tags and its status to MLflow (`python -m tdsclip.track sync` fills whatever MLflow missed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from tdsclip.records import RESULT_FILE, RUN_FILE, RecordError, final_metrics, read_json, read_run_json
from tdsclip.runstate import RunsFolder, read_state

log = logging.getLogger("reports")

State = Literal["done", "failed", "running", "stopped"]
SOURCES = ("records", "mlflow")


@dataclass(frozen=True)
class RunView:
    """What a report needs of one run: its state, final metrics and tags (git SHA, preset, data manifest)."""

    run_id: str
    state: State
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    error: str = ""
    """Why the run failed, or why its record could not be read (the run then counts as failed)."""
    detail: str = ""
    """The run's state in one line (tdsclip.runstate): who runs it, why it failed or stopped."""
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    """The data fingerprint of the result (result.json `data.fingerprint`), {} when not recorded."""


@dataclass(frozen=True)
class Found:
    """A recorded run of a table, as its record says: the row, preset, overrides and seed it was
    made for (tags written by experiments.run), so a report finds it without re-planning."""

    run_id: str
    table: str
    row: str
    preset: str
    overrides: tuple[str, ...]
    seed: int | None
    kind: str = "train"
    """What the run is: "train" (the row trained), "released" (the authors' checkpoint evaluated as the row)."""
    created: str = ""
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """The record's params (a released run's: the model its file holds)."""


def found_in(run_id: str, tags: Mapping[str, str], params: Mapping[str, Any], created: str) -> list[Found]:
    """One Found per table the run's tags name (a run shared by tables is a row of each)."""
    try:
        overrides = tuple(json.loads(tags.get("overrides", "[]")))
    except ValueError:
        overrides = ()
    seed = tags.get("seed") or params.get("train.seed")
    try:
        seed = int(seed) if seed is not None else None
    except (TypeError, ValueError):
        seed = None
    return [
        Found(
            run_id,
            key.removeprefix("table."),
            row,
            tags.get("preset", ""),
            overrides,
            seed,
            tags.get("kind", "train"),
            created,
            params,
        )
        for key, row in tags.items()
        if key.startswith("table.")
    ]


def data_fingerprint(result: Mapping[str, Any]) -> dict[str, Any]:
    """The result's `data.fingerprint` ({} when the run recorded none, or not as a dict)."""
    data = result.get("data")
    found = data.get("fingerprint") if isinstance(data, Mapping) else None
    return dict(found) if isinstance(found, Mapping) else {}


class Source(Protocol):
    description: str

    def get(self, run_id: str) -> RunView | None:
        """The run's view, or None when it never started."""

    def find(self) -> list[Found]:
        """Every recorded run of every table."""


class LocalSource:
    """runs/<run_id>/result.json and run.json; a folder with a checkpoint or run.json but no
    result is a run that started and has not finished (running, or interrupted and resumable)."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self.description = f"run records in {self.runs_dir}"

    def find(self) -> list[Found]:
        found = []
        for folder in RunsFolder(self.runs_dir).run_dirs():
            try:
                run = read_run_json(folder / RUN_FILE)
            except RecordError as error:
                log.warning("%s; skipped", error)
                continue
            found += found_in(run["run_id"], run["tags"], run["params"], run["created"])
        return found

    def get(self, run_id: str) -> RunView | None:
        if not run_id:
            return None
        folder = self.runs_dir / run_id
        state = read_state(folder)
        if state.state == "not started":
            return None
        try:
            tags = read_json(folder / RUN_FILE).get("tags", {}) if (folder / RUN_FILE).exists() else {}
            if state.state == "finished":
                result = read_json(folder / RESULT_FILE)
                return RunView(run_id, "done", final_metrics(result), tags, fingerprint=data_fingerprint(result))
        except RecordError as error:
            return RunView(run_id, "failed", error=str(error))
        if state.state == "failed":
            return RunView(run_id, "failed", {}, tags, error=state.reason, detail=state.describe())
        return RunView(run_id, "running" if state.state == "running" else "stopped", {}, tags, detail=state.describe())


class MlflowSource:
    """The MLflow runs of an experiment, found by their `run_id` tag (the oldest if several, as
    the tracker does); read with one paginated search, however many runs the tables need."""

    def __init__(self, tracking_uri: str | None, experiment: str | None = None) -> None:
        from tdsclip.mirror import Mirror, RetryPolicy

        self._mirror = Mirror(tracking_uri, experiment, RetryPolicy(tries=2))
        self.description = f"MLflow experiment {self._mirror.experiment!r} at {self._mirror.tracking_uri}"
        self._runs: dict[str, Any] | None = None

    def _index(self) -> dict[str, Any]:
        if self._runs is None:
            mirror, runs, token = self._mirror, {}, None
            experiment = mirror.call("find experiment", mirror.client.get_experiment_by_name, mirror.experiment)
            while experiment is not None:
                page = mirror.call(
                    "search runs",
                    mirror.client.search_runs,
                    [experiment.experiment_id],
                    order_by=["attributes.start_time ASC"],
                    max_results=1000,
                    page_token=token,
                )
                for run in page:
                    if "run_id" in run.data.tags:
                        runs.setdefault(run.data.tags["run_id"], run)
                token = page.token
                if not token:
                    break
            self._runs = runs
        return self._runs

    def find(self) -> list[Found]:
        return [
            f
            for run_id, run in self._index().items()
            for f in found_in(run_id, run.data.tags, run.data.params, str(run.info.start_time))
        ]

    def get(self, run_id: str) -> RunView | None:
        run = self._index().get(run_id)
        if run is None:
            return None
        status = run.info.status
        detail = run.data.tags.get("state", "")  # the run state in one line, as sync mirrors it
        if status not in ("FINISHED", "FAILED"):  # KILLED: stopped or interrupted, as the tracker closes it
            return RunView(
                run_id, "running" if status == "RUNNING" else "stopped", {}, dict(run.data.tags), detail=detail
            )
        if status == "FAILED":
            return RunView(
                run_id,
                "failed",
                dict(run.data.metrics),
                dict(run.data.tags),
                error=run.data.tags.get("failure", ""),
                detail=detail,
            )
        return RunView(run_id, "done", dict(run.data.metrics), dict(run.data.tags))


def open_source(kind: str, runs_dir: Path, tracking_uri: str | None = None, experiment: str | None = None) -> Source:
    if kind == "records":
        return LocalSource(runs_dir)
    if kind == "mlflow":
        return MlflowSource(tracking_uri, experiment)
    raise ValueError(f"--source: expected one of {', '.join(SOURCES)}, got {kind!r}")
