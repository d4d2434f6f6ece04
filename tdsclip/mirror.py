"""Mirror local run records to MLflow through the client API, retrying what may pass.

MLflow is a view of the records under runs/, never their only copy, so every MLflow call goes
through `Mirror.call`: transient failures (sqlite "database is locked", connection errors, HTTP
5xx) are retried with exponential backoff, then raised as one-line `MirrorError`s that the
Tracker turns into a warning and `sync` into an error. `Mirror.push` makes MLflow's copy of one
record complete and is idempotent (it logs only what MLflow lacks), so the Tracker (on start,
reconnect and finish) and `python -m tdsclip.track sync` share it.

Only `MlflowClient` is used, never the fluent API: several mirrors coexist in one process and
nothing depends on a global active run or on MLFLOW_RUN_ID.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from tdsclip.atomic import exclusive
from tdsclip.records import RESULT_FILE, RUN_FILE, MetricEntry, RunRecord, final_metrics, iso_to_ms
from tdsclip.runstate import read_state

log = logging.getLogger(__name__)
T = TypeVar("T")

PARAM_VALUE_LIMIT = 500
"""MLflow servers before 2.x and hosted ones reject longer param values (3.17 allows 6000): longer
values are cut and end in "..."; run.json, logged as an artifact, keeps them whole."""
TAG_VALUE_LIMIT = 5000
BATCH_PARAMS_TAGS, BATCH_METRICS = 100, 1000
"""MLflow's log_batch limits: 100 params + tags, 1000 metrics (and 1000 entities) per request."""

STATUSES = ("FINISHED", "FAILED", "KILLED")
_PERMANENT = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_ALREADY_EXISTS",
    "RESOURCE_DOES_NOT_EXIST",
    "INVALID_STATE",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "BAD_REQUEST",
    "ENDPOINT_NOT_FOUND",
    "FEATURE_DISABLED",
    "NOT_IMPLEMENTED",
}
"""MlflowException codes that a retry cannot fix; every other MLflow, OS or database error may."""


class MirrorError(RuntimeError):
    """An MLflow call that failed for good (after retries, or at once if retrying cannot help)."""


def not_installed(runs_dir: str | Path = "RUNS_DIR") -> str:
    """What to say when MLflow is not installed (one line)."""
    return (
        "MLflow is not installed in this environment (`bash scripts/demo.sh` leaves it out); the run "
        f"records on disk are complete: `bash scripts/setup.sh` installs it, then `python -m tdsclip.track "
        f"sync {runs_dir}` mirrors them"
    )


def mlflow_installed() -> bool:
    """Whether `import mlflow` can work here: it is an extra (`tdsclip[mlflow]`), and the demo's
    set-up leaves it out; runs then keep their records on disk only."""
    try:
        return importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):  # a parent import failed, or sys.modules["mlflow"] is None
        return False


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on MLflow: `tries` calls, sleeping first_delay, then
    factor times longer each time (defaults: 5 tries, 0.6+1.2+2.4+4.8 s = 9 s of waiting).
    After a failure a Tracker leaves MLflow alone for `offline_for` seconds, so a dead server
    costs training one wait every few minutes, not one per step."""

    tries: int = 5
    first_delay: float = 0.6
    factor: float = 2.0
    offline_for: float = 300.0

    def __post_init__(self) -> None:
        if self.tries < 1 or self.first_delay < 0 or self.factor < 1 or self.offline_for < 0:
            raise ValueError(
                f"RetryPolicy: expected tries >= 1, first_delay >= 0, factor >= 1, offline_for >= 0, got {self}"
            )


def resolve_tracking_uri(uri: str | None) -> str:
    """The argument, else $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd()}/mlflow.db"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (relative to the working directory if relative)."""
    if not uri.startswith("sqlite:"):
        return None
    path = uri[len("sqlite:///") :].split("?")[0]  # sqlite:///rel.db or sqlite:////abs.db
    if not uri.startswith("sqlite:///") or not path or path == ":memory:":
        raise MirrorError(f"tracking URI {uri!r}: expected a sqlite database file, e.g. sqlite:///mlflow.db")
    return Path(path).expanduser().absolute()


def artifact_location(uri: str) -> str | None:
    """For a sqlite store, the folder "mlartifacts" beside the db file (MLflow's default would be
    ./mlruns under whatever the working directory is); None lets the server or store decide."""
    db = sqlite_path(uri)
    return None if db is None else (db.parent / "mlartifacts").as_uri()


def _at_head(db: Path) -> bool:
    """True if the sqlite file exists and its schema is MLflow's newest (fully migrated)."""
    try:
        from tdsclip.private_api import mlflow_schema_head

        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=20)) as conn:
            found = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        return found == [(mlflow_schema_head(),)]
    except Exception:  # noqa: BLE001 - missing file or table, locked, other MLflow: take the slow path
        return False


@contextlib.contextmanager
def _first_open_lock(uri: str) -> Iterator[None]:
    """Serialise creating a sqlite store across processes. MLflow 3.17 creates and migrates a new
    database on first open without a lock, and processes doing that together fail with alembic's
    "Online migration expected to match one row" (seen with 8 processes). Unless the database is
    already fully migrated, holds an flock on "<db>.init-lock" beside it while the store opens."""
    db = sqlite_path(uri)
    if db is None or _at_head(db):
        yield
        return
    with exclusive(db.with_name(db.name + ".init-lock")):
        yield


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def experiment_name() -> str:
    """The MLflow experiment every writer and reader uses unless told otherwise: one setting,
    $TDSCLIP_EXPERIMENT, default tdsclip."""
    return os.environ.get("TDSCLIP_EXPERIMENT") or "tdsclip"


EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
"""MLflow 3's UI opens an experiment by its kind: without it, on the GenAI traces overview."""


PARENT_TAGS = {"sweep": "sweep_run"}
"""A record tag naming the group a run belongs to -> the tag of the group's MLflow parent run: a
trial tagged sweep=<study> hangs under the run tagged sweep_run=<study> (tdsclip.track.track_study)
as soon as that exists. A table's rows are hung by track_table (a run may be a row of several)."""
DERIVED_TAGS = ("mlflow.parentRunId",)
"""Tags MLflow gets from the tracker, never from a record: a record holding an MLflow id (as sweep
trials' did) would point into one store only."""


def run_name(run_id: str, tags: Mapping[str, str]) -> str:
    """What the runs list shows: table/row for a table's run (the id stays a tag), with
    "(released)" for a released checkpoint evaluated as the row, else the id."""
    if tags.get("table") and tags.get("row"):
        return f"{tags['table']}/{tags['row']}" + (" (released)" if tags.get("kind") == "released" else "")
    return run_id


def compared(tags: Mapping[str, str]) -> dict[str, str]:
    """What the run's table compares of its result, from the record tag compared.<table> of its
    `table` tag ("top1=val_top1_best top5=test_top5"): {"top1": "val_top1_best", ...}. The mirror
    logs each result metric a second time under the column's key (top1, top5), one stable name
    across tables, so the runs list has a column that reads like the tables."""
    text = tags.get(f"compared.{tags.get('table', '')}", "")
    pairs = [pair.partition("=") for pair in text.split()]
    return {key: metric for key, sep, metric in pairs if sep and key and metric}


def param_value(value: Any) -> str:
    """How a param value appears in MLflow: strings as they are, anything else as JSON."""
    return _cut(value if isinstance(value, str) else json.dumps(value), PARAM_VALUE_LIMIT)


def metric_points(entry: MetricEntry) -> list[Any]:
    """MLflow Metric objects for one metrics.jsonl line; the epoch, if any, as metric "epoch".
    The timestamp is the line's time, so the same line always gives the same points."""
    from mlflow.entities import Metric

    stamp = int(entry.time * 1000)
    values = dict(entry.metrics)
    if entry.epoch is not None:
        values.setdefault("epoch", float(entry.epoch))
    return [Metric(key, value, stamp, entry.step) for key, value in values.items()]


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def _transient(error: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return error.error_code not in _PERMANENT
    try:
        from sqlalchemy.exc import OperationalError
    except ImportError:  # pragma: no cover - sqlalchemy comes with mlflow
        OperationalError = OSError
    return isinstance(error, (OSError, OperationalError))


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return _cut(f"{type(error).__name__}: {text[0] if text else ''}", 300)


@dataclass(frozen=True)
class PushReport:
    """What one push added to MLflow; all zero (and created False) means it was up to date."""

    run_id: str
    mlflow_run_id: str
    created: bool
    params: int
    tags: int
    metrics: int
    artifacts: int
    status: str | None

    @property
    def changed(self) -> bool:
        return self.created or bool(self.params or self.tags or self.metrics or self.artifacts or self.status)

    def line(self) -> str:
        if not self.changed:
            return f"run {self.run_id}: up to date (MLflow run {self.mlflow_run_id})"
        parts = [
            f"{self.params} params",
            f"{self.tags} tags",
            f"{self.metrics} metric points",
            f"{self.artifacts} artifacts",
        ] + ([f"status {self.status}"] if self.status else [])
        return (
            f"run {self.run_id}: {'created' if self.created else 'updated'} MLflow run {self.mlflow_run_id}: "
            + ", ".join(parts)
        )


class Mirror:
    """One tracking URI and experiment; every call retried per `retry` (count in `retries`)."""

    def __init__(self, tracking_uri: str | None, experiment: str | None, retry: RetryPolicy) -> None:
        if not mlflow_installed():
            raise MirrorError(not_installed())
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment = experiment or experiment_name()
        self.retry = retry
        self.retries = 0
        self._client: Any = None
        self._experiment_id: str | None = None
        self._artifact_location = artifact_location(self.tracking_uri)
        if urlparse(self.tracking_uri).scheme in ("http", "https"):
            # MLflow's HTTP client retries 7 times over ~4 minutes by default; our policy applies
            # instead (unless the user set these), so a dead server cannot stall training that long.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

    # ------------------------------------------------------------------ the one way MLflow is called

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs), retried with exponential backoff while the failure may pass."""
        delay = self.retry.first_delay
        for attempt in range(1, self.retry.tries + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - classified here, re-raised as MirrorError
                if not _transient(error):
                    raise MirrorError(f"MLflow {what} at {self.tracking_uri} failed: {_one_line(error)}") from error
                if attempt == self.retry.tries:
                    raise MirrorError(
                        f"MLflow {what} at {self.tracking_uri} failed after {attempt} tries: {_one_line(error)}"
                    ) from error
                self.retries += 1
                log.debug("MLflow %s failed (try %d): %s; retrying in %.1f s", what, attempt, _one_line(error), delay)
                time.sleep(delay)
                delay *= self.retry.factor
        raise AssertionError("unreachable")

    @property
    def client(self) -> Any:
        """The MlflowClient, made on first use (a sqlite store migrates its schema then, ~1.3 s)."""
        if self._client is None:
            self._client = self.call("open store", self._open_client)
        return self._client

    def _open_client(self) -> Any:
        from mlflow.tracking import MlflowClient

        with _first_open_lock(self.tracking_uri):
            return MlflowClient(tracking_uri=self.tracking_uri)

    def experiment_id(self) -> str:
        """The experiment's id, created (with an explicit artifact location) if missing."""
        if self._experiment_id is None:
            found = self.call("find experiment", self.client.get_experiment_by_name, self.experiment)
            if found is None:
                try:
                    self._experiment_id = self.call(
                        "create experiment",
                        self.client.create_experiment,
                        self.experiment,
                        artifact_location=self._artifact_location,
                        tags=EXPERIMENT_TAGS,
                    )
                    return self._experiment_id
                except MirrorError:  # another process created it first
                    found = self.call("find experiment", self.client.get_experiment_by_name, self.experiment)
                    if found is None:
                        raise
            if found.lifecycle_stage != "active":
                raise MirrorError(
                    f"MLflow experiment {self.experiment!r} at {self.tracking_uri} is deleted; "
                    "restore it (mlflow experiments restore) or use another experiment name"
                )
            self._experiment_id = found.experiment_id
            for key, value in EXPERIMENT_TAGS.items():  # an experiment made before the tag existed
                if found.tags.get(key) != value:
                    self.call("tag experiment", self.client.set_experiment_tag, found.experiment_id, key, value)
        return self._experiment_id

    def find_run(self, run_id: str) -> Any:
        """The MLflow run tagged run_id=<run_id> in the experiment (the oldest if several), or None."""
        runs = self.call(
            "search runs",
            self.client.search_runs,
            [self.experiment_id()],
            filter_string=f"tags.run_id = '{run_id}'",
            order_by=["attributes.start_time ASC"],
            max_results=10,
        )
        if len(runs) > 1:
            log.warning(
                "MLflow has %d runs tagged run_id=%s; using the oldest, %s", len(runs), run_id, runs[0].info.run_id
            )
        return runs[0] if runs else None

    # ------------------------------------------------------------------ writes

    def log_batch(
        self,
        mlflow_run_id: str,
        *,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        metrics: Sequence[Any] = (),
    ) -> None:
        """Params, tags and metrics in as many requests as MLflow's batch limits need."""
        from mlflow.entities import Param, RunTag

        entities = [Param(k, v) for k, v in (params or {}).items()] + [RunTag(k, v) for k, v in (tags or {}).items()]
        for chunk in _chunks(entities, BATCH_PARAMS_TAGS):
            self.call(
                "log params/tags",
                self.client.log_batch,
                mlflow_run_id,
                params=[e for e in chunk if isinstance(e, Param)],
                tags=[e for e in chunk if isinstance(e, RunTag)],
                synchronous=True,
            )
        for chunk in _chunks(list(metrics), BATCH_METRICS):
            self.call("log metrics", self.client.log_batch, mlflow_run_id, metrics=chunk, synchronous=True)

    def log_artifact(self, mlflow_run_id: str, path: Path) -> None:
        self.call(f"upload {path.name}", self.client.log_artifact, mlflow_run_id, str(path))

    def set_status(self, mlflow_run_id: str, status: str, end_ms: int | None = None) -> None:
        if status == "RUNNING":
            self.call("set status", self.client.update_run, mlflow_run_id, status="RUNNING")
        else:
            self.call("set status", self.client.set_terminated, mlflow_run_id, status=status, end_time=end_ms)

    # ------------------------------------------------------------------ one record, idempotently

    def push(self, record: RunRecord, *, with_result: bool = True, settle: bool = False) -> PushReport:
        """Make MLflow's run for `record` complete: create it if missing, log the params and tags
        it lacks, every (key, step) of metrics.jsonl it lacks, and with a result the final metrics,
        result.json and run.json as artifacts, and the status. Pushing twice adds nothing."""
        run = self.find_run(record.run_id)
        created = run is None
        tags = {k: _cut(v, TAG_VALUE_LIMIT) for k, v in record.tags.items() if k not in DERIVED_TAGS}
        tags["run_id"] = record.run_id
        tags["mlflow.runName"] = run_name(record.run_id, record.tags)
        if columns := compared(record.tags):  # what the compared metric columns are, in the runs list
            tags["compared"] = " ".join(f"{key}={metric}" for key, metric in columns.items())
        if run is None:
            run = self.call(
                "create run",
                self.client.create_run,
                self.experiment_id(),
                start_time=iso_to_ms(record.created),
                tags={"run_id": record.run_id},
                run_name=tags["mlflow.runName"],
            )
        mlflow_id = run.info.run_id

        have_params, have_tags = run.data.params, run.data.tags
        params = {k: param_value(v) for k, v in record.params.items()}
        for key, value in params.items():
            if key in have_params and have_params[key] != value:
                log.warning(
                    "MLflow run %s keeps param %s=%r; the record says %r (MLflow params cannot change)",
                    mlflow_id,
                    key,
                    have_params[key],
                    value,
                )
        new_params = {k: v for k, v in params.items() if k not in have_params}
        if "mlflow.parentRunId" not in have_tags and (parent := self._group_parent(record.tags)):
            tags["mlflow.parentRunId"] = parent
        new_tags = {k: v for k, v in tags.items() if have_tags.get(k) != v}
        self.log_batch(mlflow_id, params=new_params, tags=new_tags)

        logged = self._log_missing_metrics(mlflow_id, record)
        artifacts, status = 0, None
        if with_result and record.result is not None:
            logged += self._log_final_metrics(mlflow_id, record)
            artifacts = self._upload_missing(mlflow_id, [record.run_dir / RESULT_FILE, record.run_dir / RUN_FILE])
            wanted = record.result.get("status", "FINISHED")
            if run.info.status != wanted:
                self.set_status(mlflow_id, wanted, iso_to_ms(record.result["finished"]))
                status = wanted
                if wanted != "FINISHED":  # the run state in one line, as the records say it
                    self.log_batch(
                        mlflow_id, tags={"state": _cut(read_state(record.run_dir).describe(), TAG_VALUE_LIMIT)}
                    )
        elif settle:  # sync: no result, so the run state decides (a live run keeps its status)
            state = read_state(record.run_dir)
            wanted = {"failed": "FAILED", "stopped": "KILLED", "pruned": "KILLED"}.get(state.state)
            if wanted and run.info.status != wanted:
                self.set_status(mlflow_id, wanted, iso_to_ms(state.since) if state.since else None)
                self.log_batch(
                    mlflow_id,
                    tags={
                        "state": _cut(state.describe(), TAG_VALUE_LIMIT),
                        **({"failure": _cut(state.reason, TAG_VALUE_LIMIT)} if wanted == "FAILED" else {}),
                    },
                )
                status = wanted
        return PushReport(record.run_id, mlflow_id, created, len(new_params), len(new_tags), logged, artifacts, status)

    def find_tagged(self, key: str, value: str) -> Any:
        """The oldest MLflow run of the experiment tagged key=value, or None (a parent run)."""
        found = self.call(
            "search runs",
            self.client.search_runs,
            [self.experiment_id()],
            filter_string=f"tags.`{key}` = '{value}'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        return found[0] if found else None

    def _group_parent(self, tags: Mapping[str, str]) -> str | None:
        """The MLflow id of the parent run of the group the record's tags name (PARENT_TAGS), if any."""
        for key, parent_tag in PARENT_TAGS.items():
            if tags.get(key) and (parent := self.find_tagged(parent_tag, tags[key])) is not None:
                return parent.info.run_id
        return None

    def _history(self, mlflow_id: str, key: str) -> list[Any]:
        return self.call(f"read metric {key}", self.client.get_metric_history, mlflow_id, key)

    def _log_missing_metrics(self, mlflow_id: str, record: RunRecord) -> int:
        points = [p for entry in record.metrics for p in metric_points(entry)]
        have = {key: {m.step for m in self._history(mlflow_id, key)} for key in {p.key for p in points}}
        missing = [p for p in points if p.step not in have[p.key]]
        self.log_batch(mlflow_id, metrics=missing)
        return len(missing)

    def _log_final_metrics(self, mlflow_id: str, record: RunRecord) -> int:
        """The result's numeric "metrics" at the last step logged, and the table's compared ones
        under their column's key (compared()), unless already there."""
        from mlflow.entities import Metric

        assert record.result is not None
        step, stamp = record.last_step, iso_to_ms(record.result["finished"])
        final = final_metrics(record.result)
        final.update({k: final[m] for k, m in compared(record.tags).items() if m in final and k not in final})
        missing = [
            Metric(key, value, stamp, step)
            for key, value in final.items()
            if not any(m.step == step and _same(m.value, value) for m in self._history(mlflow_id, key))
        ]
        self.log_batch(mlflow_id, metrics=missing)
        return len(missing)

    def _upload_missing(self, mlflow_id: str, paths: list[Path]) -> int:
        """Upload files whose name and size are not yet among the run's root artifacts."""
        have = {(f.path, f.file_size) for f in self.call("list artifacts", self.client.list_artifacts, mlflow_id)}
        todo = [p for p in paths if (p.name, p.stat().st_size) not in have]
        for path in todo:
            self.log_artifact(mlflow_id, path)
        return len(todo)
