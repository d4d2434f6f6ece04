"""Run records: the one place that writes them, mirroring each to MLflow on a best-effort basis.

    tracker = Tracker(Path("runs") / run_id, run_id, params=flatten(cfg), tags={"preset": "smoke"},
                      enabled=rank == 0)
    tracker.log_metrics({"train/loss": 2.31, "lr": 1e-3}, step=100, epoch=0)
    tracker.finish({"metrics": {"val/top1": 47.2}, "epochs": 40})  # or tracker.close() if interrupted

    python -m tdsclip.track sync [RUNS_DIR] [--tracking-uri URI] [--experiment NAME]

The files under runs/<run_id>/ (format in tdsclip/records.py) are written first and are the
source of truth. MLflow only mirrors them: a locked sqlite file or a dead server costs a few
retries and a warning, never the run, and `sync` later pushes whatever MLflow missed. One MLflow
run per run_id (found by its tag "run_id"), so a resumed or requeued run continues its MLflow run.

This module is the only writer of MLflow (tests/test_imports.py checks it), parents included: one
per table, preset and override set (track_table, from the rows' run states) and one per sweep
study (track_study, from the study's record in runs/sweeps/, which end_study closes), each
FINISHED or FAILED with an end time, and all rebuilt by `sync` from the records alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tdsclip.atomic import exclusive
from tdsclip.mirror import (
    STATUSES,
    Mirror,
    MirrorError,
    PushReport,
    RetryPolicy,
    metric_points,
    mlflow_installed,
    not_installed,
)
from tdsclip.records import (
    METRICS_FILE,
    RESULT_FILE,
    RUN_FILE,
    MetricEntry,
    RecordError,
    append_jsonl,
    check_key,
    check_number,
    check_run_id,
    check_step,
    find_records,
    iso_to_ms,
    json_normal,
    load_record,
    now_iso,
    read_run_json,
    trim_torn_tail,
    write_json_atomic,
)
from tdsclip.runstate import RunsFolder, read_state

log = logging.getLogger(__name__)

__all__ = [
    "Tracker",
    "environment_tags",
    "child_environment",
    "sync_runs",
    "SyncReport",
    "RetryPolicy",
    "RecordError",
    "MirrorError",
    "track_table",
    "track_study",
    "end_study",
    "tag_run",
    "supersede",
]

_INHERITED_MLFLOW = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")


def child_environment(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` for a child process, without MLFLOW_RUN_ID and MLFLOW_EXPERIMENT_ID:
    a child inheriting them would log into (and overwrite) its parent's MLflow run."""
    return {k: v for k, v in env.items() if k not in _INHERITED_MLFLOW}


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, env=child_environment(os.environ)
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _gpu_tags() -> dict[str, str]:
    """CUDA version and GPU model(s), asked of torch only if this process imported it (a training
    process has; importing it here would cost a sync or a launcher seconds for nothing)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return {}
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    gpus = f"{names[0]} x{len(names)}" if len(set(names)) == 1 else ", ".join(names)
    return {"cuda": str(torch.version.cuda or torch.version.hip), "gpu": gpus}


def environment_tags() -> dict[str, str]:
    """Where and with what a run ran: git SHA and dirty flag of the repository holding the tdsclip
    package ("unknown" without git), host, python/torch/open_clip/mlflow versions, CUDA and GPU
    model when torch is imported and sees one, and the world size (WORLD_SIZE, else SLURM_NTASKS, else 1)."""
    package = Path(__file__).resolve().parent
    sha = _git(package, "rev-parse", "HEAD") or "unknown"
    status = _git(package, "status", "--porcelain") if sha != "unknown" else None
    tags = {
        "git_sha": sha,
        "git_dirty": "unknown" if status is None else str(bool(status)).lower(),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "open_clip": _version("open_clip_torch"),
        "mlflow": _version("mlflow"),
        "world_size": os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or "1",
    }
    if sha != "unknown":
        tags["mlflow.source.git.commit"] = sha  # shown by the MLflow UI
    tags.update(_gpu_tags())
    return tags


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    """A warning logged once per process (every run of a table would repeat it)."""
    if message not in _SAID:
        _SAID.add(message)
        log.warning("%s", message)


class Tracker:
    """Writes a run's local record (source of truth) and mirrors it to MLflow, best effort (not at
    all, with one warning, where MLflow is not installed).

    enabled=False (ranks other than 0) makes every method a no-op. `out_of_sync` is True while
    MLflow misses part of the record; the tracker then leaves MLflow alone for
    `retry.offline_for` seconds, tries again (pushing all it missed), and on finish/close tries
    once more; `python -m tdsclip.track sync` repairs whatever is still missing.
    """

    def __init__(
        self,
        run_dir: Path,
        run_id: str,
        *,
        params: dict[str, object],
        tags: dict[str, str],
        enabled: bool = True,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.run_dir, self.run_id, self.enabled = Path(run_dir), run_id, enabled
        self.out_of_sync = False
        self._state = "open"  # then "finished" (finish) or "closed" (close)
        self._end_status = "RUNNING"
        self._mlflow_id: str | None = None
        self._offline_until = 0.0
        self._pending: list[Path] = []
        self._mirror: Mirror | None = None
        if not enabled:
            return
        check_run_id(run_id)
        flat = json_normal("params", params)
        for key in flat:
            check_key("param", key)
        if not isinstance(tags, Mapping):
            raise RecordError(f"tags: expected a dict of name -> string, got {type(tags).__name__}")
        for key, value in tags.items():
            check_key("tag", key)
            if not isinstance(value, str):
                raise RecordError(f"tag {key!r}: expected a string, got {type(value).__name__} {value!r:.80}")
        # Checks the URI before anything is written; without MLflow installed, the record alone.
        mirror = Mirror(tracking_uri, experiment, retry) if mlflow_installed() else None
        if os.environ.pop("MLFLOW_RUN_ID", None) is not None:
            log.warning(
                "unset MLFLOW_RUN_ID inherited from the parent process: run %s logs to its own "
                "MLflow run, and children of this process must not log into a foreign one",
                run_id,
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_run_json(flat, {**environment_tags(), **tags})
        if torn := trim_torn_tail(self.run_dir / METRICS_FILE):
            log.warning("%s: dropped a torn last line (%d bytes) left by a crash", self.run_dir / METRICS_FILE, torn)
        self._mirror = mirror
        if mirror is None:
            _say_once(not_installed(self.run_dir.parent))
        self._connect()

    def _write_run_json(self, params: dict[str, Any], tags: dict[str, str]) -> None:
        """run.json; on a resume (same run_id) keeps "created", updates tags, insists on the same params."""
        path = self.run_dir / RUN_FILE
        created = now_iso()
        if path.exists():
            old = read_run_json(path)
            if old["run_id"] != self.run_id:
                raise RecordError(
                    f"{path} belongs to run {old['run_id']!r}, not {self.run_id!r}; expected "
                    "an empty directory or the same run's"
                )
            if old["params"] != params:
                key = next(k for k in sorted(set(old["params"]) | set(params)) if old["params"].get(k) != params.get(k))
                raise RecordError(
                    f"{path}: run {self.run_id!r} has {key}={old['params'].get(key)!r}, resumed with "
                    f"{params.get(key)!r}; a resumed run must keep its params (new params, new run_id)"
                )
            created, tags = old["created"], {**old["tags"], **tags}
        write_json_atomic(path, {"run_id": self.run_id, "params": params, "tags": tags, "created": created})

    # ------------------------------------------------------------------ MLflow, best effort

    def _connect(self) -> None:
        """Bring MLflow's run up to date with everything local (push is idempotent)."""
        if self._mirror is None:
            return
        try:
            record = load_record(self.run_dir)
            if self._state != "finished":
                record = dataclasses.replace(record, result=None)
            report = self._mirror.push(record)
            self._mlflow_id = report.mlflow_run_id
            if self._state != "finished":
                self._mirror.set_status(self._mlflow_id, self._end_status)
            self._upload_pending(self._mlflow_id)
            self.out_of_sync = False
        except Exception as error:  # noqa: BLE001 - mirroring must never stop training
            self._went_offline(error)

    def _went_offline(self, error: Exception) -> None:
        assert self._mirror is not None
        self.out_of_sync = True
        self._offline_until = time.monotonic() + self._mirror.retry.offline_for
        text = (
            str(error)
            if isinstance(error, MirrorError)
            else f"MLflow mirroring failed: {type(error).__name__}: {error}"
        )
        log.warning(
            "%s; run %s goes on, its record in %s is complete; MLflow is retried in %.0f s, or run "
            "`python -m tdsclip.track sync %s`",
            text.splitlines()[0] if text else text,
            self.run_id,
            self.run_dir,
            self._mirror.retry.offline_for,
            self.run_dir.parent,
        )

    def _mirror_safely(self, action: Callable[[str], None]) -> None:
        """action(mlflow_run_id) if MLflow is in sync; after an outage, a full push instead."""
        if self._mirror is None:
            return
        if self.out_of_sync or self._mlflow_id is None:
            if time.monotonic() >= self._offline_until:
                self._connect()
            return
        try:
            action(self._mlflow_id)
        except Exception as error:  # noqa: BLE001 - mirroring must never stop training
            self._went_offline(error)

    def _upload_pending(self, mlflow_id: str) -> None:
        assert self._mirror is not None
        while self._pending:
            self._mirror.log_artifact(mlflow_id, self._pending[0])
            self._pending.pop(0)

    def _check_open(self, method: str) -> None:
        if self._state != "open":
            raise RuntimeError(f"Tracker.{method}: run {self.run_id} is already {self._state}")

    # ------------------------------------------------------------------ the API

    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int | None = None) -> None:
        """Append {"step", "epoch", "time", "metrics"} to metrics.jsonl (fsynced), then mirror it."""
        if not self.enabled:
            return
        self._check_open("log_metrics")
        check_step(step, epoch)
        if not isinstance(metrics, Mapping) or not metrics:
            raise RecordError(f"metrics: expected a non-empty dict of name -> number, got {metrics!r:.80}")
        values = {check_key("metric", k): check_number("metric", k, v) for k, v in metrics.items()}
        entry = MetricEntry(step, epoch, time.time(), values)
        append_jsonl(self.run_dir / METRICS_FILE, dataclasses.asdict(entry))
        mirror = self._mirror
        if mirror is None:
            return
        points = metric_points(entry)
        self._mirror_safely(lambda mlflow_id: mirror.log_batch(mlflow_id, metrics=points))

    def log_artifact(self, path: Path) -> None:
        """Mirror a file to the MLflow run's artifacts (best effort; kept for a later retry)."""
        if not self.enabled:
            return
        self._check_open("log_artifact")
        path = Path(path)
        if not path.is_file():
            raise RecordError(f"artifact {str(path)!r}: expected an existing file")
        self._pending.append(path)
        self._mirror_safely(self._upload_pending)

    def finish(self, result: dict[str, object], status: str = "FINISHED") -> Path:
        """Write result.json (result + "run_id", "status", "finished") atomically, then mirror the
        result's numeric "metrics" as final metrics, result.json and run.json as artifacts, and
        the status. Returns result.json's path."""
        path = self.run_dir / RESULT_FILE
        if not self.enabled:
            return path
        self._check_open("finish")
        if status not in STATUSES:
            raise RecordError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
        data = json_normal("result", result)
        if data.get("run_id", self.run_id) != self.run_id:
            raise RecordError(f"result run_id {data['run_id']!r}: expected {self.run_id!r} or none")
        write_json_atomic(path, {**data, "run_id": self.run_id, "status": status, "finished": now_iso()})
        self._state = "finished"
        self._offline_until = 0.0  # the last chance: try MLflow even during an outage
        self._connect()
        return path

    def close(self, status: str = "KILLED") -> None:
        """End the MLflow run without a result (an interrupted run); no-op once finished or closed."""
        if not self.enabled or self._state != "open":
            return
        if status not in STATUSES:
            raise RecordError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
        self._state, self._end_status = "closed", status
        self._offline_until = 0.0
        self._connect()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: object) -> None:
        """Leaving the block without finish() ends the MLflow run: FAILED on an exception, else KILLED."""
        failed = kind is not None and not issubclass(kind, (KeyboardInterrupt, SystemExit))
        self.close("FAILED" if failed else "KILLED")


# ----------------------------------------------------------------------------- sync


@dataclass(frozen=True)
class SyncReport:
    """What `sync_runs` did, one PushReport per local run, and the parents it rebuilt."""

    runs: tuple[PushReport, ...]
    retries: int
    parents: tuple[str, ...] = ()
    """One line per parent run: a table's (preset, override set) or a sweep study's."""

    @property
    def created(self) -> int:
        return sum(r.created for r in self.runs)

    @property
    def updated(self) -> int:
        return sum(r.changed and not r.created for r in self.runs)

    @property
    def metrics(self) -> int:
        return sum(r.metrics for r in self.runs)

    def summary(self) -> str:
        return (
            f"{len(self.runs)} runs: {self.created} created, {self.updated} updated, "
            f"{len(self.runs) - self.created - self.updated} up to date; {self.metrics} metric points logged"
        )


def sync_runs(
    runs_dir: Path, tracking_uri: str | None = None, experiment: str | None = None, retry: RetryPolicy = RetryPolicy()
) -> SyncReport:
    """Push every local record under runs_dir (each sub-folder with run.json) to MLflow,
    idempotently, then rebuild the parents: one per table (preset, override set) from the runs'
    tags, one per sweep study from its record in runs/sweeps/. Every record is read and checked
    before anything is pushed."""
    records = [load_record(path) for path in find_records(Path(runs_dir))]
    seen: dict[str, Path] = {}
    for record in records:
        if record.run_id in seen:
            raise RecordError(
                f"{record.run_dir} and {seen[record.run_id]} both hold run {record.run_id!r}; "
                "expected one directory per run"
            )
        seen[record.run_id] = record.run_dir
    studies = sorted(path.stem for path in RunsFolder(runs_dir).sweeps.glob("*.json"))
    for name in studies:
        read_study(Path(runs_dir), name)
    mirror = Mirror(tracking_uri, experiment, retry)
    pushed = tuple(mirror.push(record, settle=True) for record in records)
    parents: list[str] = []
    tables: dict[tuple[str, str, str, str], list[tuple[str, str]]] = {}
    for record in records:  # the parents: one per (table, preset, override set, kind), rebuilt from the records
        for key, row in record.tags.items():
            if key.startswith("table.") and record.tags.get("preset"):
                group = (
                    key.removeprefix("table."),
                    record.tags["preset"],
                    record.tags.get("overrides", "[]"),
                    record.tags.get("kind", "train"),
                )
                tables.setdefault(group, []).append((row, record.run_id))
    for (table, preset, overrides, kind), rows in tables.items():
        parent = track_table(table, preset, json.loads(overrides), rows, Path(runs_dir), mirror=mirror, kind=kind)
        parents.append(
            f"table {table_run_key(table, preset, json.loads(overrides), kind)}: {len(rows)} rows, MLflow run {parent}"
        )
    for name in studies:  # the sweeps' parents, from their records under runs/sweeps/
        parent = track_study(name, Path(runs_dir), mirror=mirror, records=records)
        parents.append(f"sweep {name}: MLflow run {parent}")
    return SyncReport(pushed, mirror.retries, tuple(parents))


def add_tags(run_dir: Path, tags: Mapping[str, str]) -> None:
    """Add tags to a run's run.json (under the run's lock: no concurrent update is lost), e.g. the
    table.<name> of another table a finished run is a row of. MLflow gets them at the next sync."""
    from tdsclip.runlock import RunLock

    for key, value in tags.items():
        check_key("tag", key)
        if not isinstance(value, str):
            raise RecordError(f"tag {key!r}: expected a string, got {type(value).__name__}")
    path = Path(run_dir) / RUN_FILE
    with RunLock(run_dir, wait=60):
        run = read_run_json(path)
        merged = {**run["tags"], **{k: v for k, v in tags.items() if k not in ("run_id",)}}
        if merged != run["tags"]:
            write_json_atomic(path, {**run, "tags": merged})


def table_run_key(table: str, preset: str, overrides: Sequence[str], kind: str = "train") -> str:
    """The parent run's identity: a table under a preset with one set of command-line overrides,
    and the kind of its rows' runs (trained, or released checkpoints evaluated: a parent each)."""
    key = f"{table}:{preset}"
    if overrides:
        key += f":{hashlib.sha256(json.dumps(list(overrides)).encode()).hexdigest()[:8]}"
    return key if kind == "train" else f"{key}:{kind}"


def track_table(
    table: str,
    preset: str,
    overrides: Sequence[str],
    rows: Sequence[tuple[str, str]],
    runs_dir: Path,
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    mirror: Mirror | None = None,
    kind: str = "train",
) -> str:
    """The parent run of (table, preset, override set, kind) in MLflow: created if missing, its
    rows' runs hung under it, closed FINISHED when every row finished, FAILED when one failed (else
    left RUNNING), with the end time of its last row. Returns the parent's MLflow id."""
    mirror = mirror or Mirror(tracking_uri, experiment, RetryPolicy(tries=2))
    key = table_run_key(table, preset, overrides, kind)
    found = mirror.find_tagged("table_run", key)
    name = (
        f"{table} ({preset}{'; ' + ' '.join(overrides) if overrides else ''}{'; ' + kind if kind != 'train' else ''})"
    )
    parent = (
        found
        if found is not None
        else mirror.call(
            "create run",
            mirror.client.create_run,
            mirror.experiment_id(),
            run_name=name[:250],
            tags={
                "table_run": key,
                "table": table,
                "preset": preset,
                "overrides": json.dumps(list(overrides)),
                "kind": kind,
            },
        )
    )
    parent_id = parent.info.run_id
    states, ends, tags = [], [], {}
    for number, (row, run_id) in enumerate(rows):
        state = read_state(Path(runs_dir) / run_id)
        states.append(state.state)
        if state.since:
            ends.append(iso_to_ms(state.since))
        tags[f"row.{number:02d}"] = f"{row}: {run_id} ({state.state})"
        child = mirror.find_run(run_id)
        if child is not None:
            child_tags = {f"table.{table}": row}
            if "mlflow.parentRunId" not in child.data.tags:
                child_tags["mlflow.parentRunId"] = parent_id  # a run shared by several tables hangs under the first
            mirror.log_batch(child.info.run_id, tags=child_tags)
    mirror.log_batch(parent_id, tags=tags)
    status = "FAILED" if "failed" in states else "FINISHED" if states and all(s == "finished" for s in states) else None
    if status and parent.info.status != status:
        mirror.set_status(parent_id, status, max(ends) if ends else None)
    return parent_id


# ----------------------------------------------------------------------------- sweep studies

STUDY_STATES = ("finished", "failed")
"""How a study ends (end_study): every trial it needs done, or a worker gave up."""


def read_study(runs_dir: Path, name: str) -> dict[str, Any]:
    """A sweep study's record, runs/sweeps/<name>.json, as `python -m sweeps.run` writes it (study,
    preset, study_name, storage, overrides, n_trials, objective, base) with what end_study adds
    (state, ended, reason, best: objective, value, trial, run_id)."""
    path = RunsFolder(runs_dir).sweep_record(name)
    if not path.is_file():
        raise RecordError(f"{path}: no such study record; expected one written by python -m sweeps.run")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RecordError(f"{path}: not a study record ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("preset"), str):
        raise RecordError(f'{path}: not a study record; expected a JSON object with "preset"')
    if data.get("state") is not None:
        if data["state"] not in STUDY_STATES or not isinstance(data.get("ended"), str):
            raise RecordError(
                f'{path}: "state" {data["state"]!r}: expected one of {", ".join(STUDY_STATES)} with "ended"'
            )
        iso_to_ms(data["ended"])
    return data


def end_study(
    runs_dir: Path,
    name: str,
    state: str,
    *,
    best: Mapping[str, Any] | None = None,
    reason: str = "",
    tracking_uri: str | None = None,
    experiment: str | None = None,
) -> str:
    """Record that a study ended ("finished": it has its trials; "failed": a worker gave up, `reason`
    says why) with its best trial (objective, value, trial, run_id), in its record first (the truth,
    which `sync` rebuilds from), then in MLflow (track_study). Workers that find the study done
    together take turns; a study already ended in `state` keeps its first end time, so the record
    and the parent run agree on one. Returns the parent's MLflow id."""
    if state not in STUDY_STATES:
        raise RecordError(f"study state {state!r}: expected one of {', '.join(STUDY_STATES)}")
    folder = RunsFolder(runs_dir)
    with exclusive(folder.sweep_lock(name)):
        study = read_study(runs_dir, name)
        ended = study["ended"] if study.get("state") == state else now_iso()
        data = {k: v for k, v in study.items() if k not in ("state", "ended", "reason", "best")}
        end = {"state": state, "ended": ended, **({"reason": reason} if reason else {})}
        write_json_atomic(
            folder.sweep_record(name), {**data, **end, **({"best": json_normal("best", dict(best))} if best else {})}
        )
        return track_study(name, runs_dir, tracking_uri=tracking_uri, experiment=experiment)


def track_study(
    name: str,
    runs_dir: Path,
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    mirror: Mirror | None = None,
    records: Sequence[Any] | None = None,
) -> str:
    """The parent run of a sweep study in MLflow, from its record (read_study): created if missing
    (tagged sweep_run=<name>), the runs recorded with tag sweep=<name> hung under it, and closed as
    the record says: FINISHED or FAILED at its end time with the best trial (metric
    best_<objective>, tags best_trial, best_run_id), else RUNNING. Returns the parent's MLflow id."""
    study = read_study(runs_dir, name)
    mirror = mirror or Mirror(tracking_uri, experiment, RetryPolicy(tries=2))
    parent = mirror.find_tagged("sweep_run", name)
    tags = {
        "sweep_run": name,
        "sweep": name,
        "preset": study["preset"],
        "overrides": json.dumps(study.get("overrides", [])),
        "optuna_storage": str(study.get("storage", "")),
        **({"sweep.base": str(study["base"])} if study.get("base") else {}),
    }
    if parent is None:
        parent = mirror.call(
            "create run", mirror.client.create_run, mirror.experiment_id(), run_name=f"sweep {name}", tags=tags
        )
    parent_id = parent.info.run_id
    if records is None:  # run.json alone: a study's runs are found by their tags
        found = [(path, read_run_json(path / RUN_FILE)) for path in RunsFolder(runs_dir).run_dirs()]
        trials = [(path, run["run_id"]) for path, run in found if run["tags"].get("sweep") == name]
    else:
        trials = [(r.run_dir, r.run_id) for r in records if r.tags.get("sweep") == name]
    states: dict[str, int] = {}
    for run_dir, run_id in trials:
        state = read_state(run_dir).state
        states[state] = states.get(state, 0) + 1
        child = mirror.find_run(run_id)
        if child is not None and "mlflow.parentRunId" not in child.data.tags:
            mirror.log_batch(child.info.run_id, tags={"mlflow.parentRunId": parent_id})
    tags["trials"] = f"{len(trials)} runs" + "".join(f", {n} {state}" for state, n in sorted(states.items()))
    metrics = []
    best = study.get("best") or {}
    if best.get("objective") and isinstance(best.get("value"), (int, float)):
        from mlflow.entities import Metric

        key = f"best_{best['objective']}"
        if parent.data.metrics.get(key) != best["value"]:
            metrics.append(Metric(key, float(best["value"]), iso_to_ms(study["ended"]), 0))
        tags.update({"best_trial": str(best.get("trial")), "best_run_id": str(best.get("run_id"))})
    if study.get("state") == "failed":
        tags["failure"] = str(study.get("reason", ""))
    mirror.log_batch(parent_id, tags={k: v for k, v in tags.items() if parent.data.tags.get(k) != v}, metrics=metrics)
    status = {"finished": "FINISHED", "failed": "FAILED"}.get(study.get("state", ""), "RUNNING")
    ended = iso_to_ms(study["ended"]) if status != "RUNNING" else None
    if parent.info.status != status or (ended and parent.info.end_time != ended):
        mirror.set_status(parent_id, status, ended)
    return parent_id


def tag_run(run_dir: Path, tags: Mapping[str, str], *, tracking_uri: str | None = None) -> None:
    """Add tags to a run's record (add_tags), then bring its MLflow run up to date with the record
    (e.g. a sweep's sweep.state=PRUNED on a trial it pruned)."""
    add_tags(run_dir, tags)
    record = load_record(run_dir)
    Mirror(tracking_uri, None, RetryPolicy(tries=3)).push(record, settle=True)


def supersede(run_id: str, *, tracking_uri: str | None = None, experiment: str | None = None) -> bool:
    """Before a forced retrain: tag the run's MLflow run superseded and delete it (MLflow keeps it
    restorable), so the new training starts a fresh MLflow run instead of adding to the old curves.
    Returns whether there was one."""
    mirror = Mirror(tracking_uri, experiment, RetryPolicy(tries=2))
    run = mirror.find_run(run_id)
    if run is None:
        return False
    mirror.log_batch(run.info.run_id, tags={"superseded": now_iso()})
    mirror.call("delete run", mirror.client.delete_run, run.info.run_id)
    return True


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        self.exit(2, f"error: {message} (see python -m tdsclip.track --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m tdsclip.track", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync", help="push local run records to MLflow (idempotent)")
    sync.add_argument("runs_dir", nargs="?", default="runs", type=Path, help="default: runs")
    sync.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db")
    sync.add_argument("--experiment", default=None, help="default: $TDSCLIP_EXPERIMENT, else tdsclip")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "mlflow"):  # schema migration chatter on first open
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # one line per run, ours
    try:
        report = sync_runs(args.runs_dir, args.tracking_uri, args.experiment)
    except RecordError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except MirrorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for run in report.runs:
        print(run.line())
    for parent in report.parents:
        print(f"parent {parent}")
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
