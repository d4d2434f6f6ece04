"""Where everything under a runs folder lives, and what state each run is in: one module that
every reader and writer uses (tdsclip.train, experiments, Slurm status, sweeps, reports).

    runs/                              RunsFolder(root)
      <run_id>/run.json                the record (tdsclip/records.py): params, tags, created
      <run_id>/metrics.jsonl           one line per logged step
      <run_id>/result.json             the result: written once, when the run finished
      <run_id>/state.json              the last transition: running / failed / stopped / pruned
      <run_id>/failure.txt             the traceback of a failed run
      <run_id>/lock.json               the lock of the process training it (tdsclip/runlock.py)
      <run_id>/latest.pt, best.pt      checkpoints (tdsclip/train/checkpoint.py)
      <run_id>/train.log               its process's output when a table runs rows in parallel (--jobs)
      measurements/<key>.json          Table XII's measured rows
      figures/<table>-<preset>-<key>/  Fig. 5's maps
      sweeps/<study>-<preset>.json     a sweep's record; sweeps/<study>-<preset>/ its workers' files
      slurm/<table>-<preset>/          a table's Slurm submissions (jobs.json, code snapshot, logs)
      local/<table>-<preset>/          a table's parallel local jobs (--jobs): each row's job and outcome

States (`RunState.state`):

    not started   no folder, or a folder with nothing of a run in it
    running       a live process holds the run's lock (host, pid, since, last heartbeat)
    finished      result.json says FINISHED
    failed        state.json says failed: reason (one line), time, where the traceback is
    stopped       stopped by a signal (state.json: signal), or interrupted without a word
                  (killed, crashed: a record or checkpoint but no live lock); resumable
    pruned        a sweep stopped it after a validation; resumable

The default runs folder is runs/ or $TDSCLIP_RUNS; the default report folder reports/out or
$TDSCLIP_REPORTS: named here once, so no package asks another for them.
"""

from __future__ import annotations

import os
import socket
import traceback as tb
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from tdsclip.records import METRICS_FILE, RESULT_FILE, RUN_FILE, RecordError, now_iso, read_json, write_json_atomic
from tdsclip.runlock import read_holder

State = Literal["not started", "running", "finished", "failed", "stopped", "pruned"]
STATES: tuple[State, ...] = ("not started", "running", "finished", "failed", "stopped", "pruned")
STATE_FILE = "state.json"
FAILURE_FILE = "failure.txt"
CHECKPOINT_FILE = "latest.pt"
"""The checkpoint a run resumes from (tdsclip.train.checkpoint.LATEST is this name)."""


def default_runs_dir() -> Path:
    return Path(os.environ.get("TDSCLIP_RUNS") or "runs")


def default_reports_dir() -> Path:
    """reports/out, or $TDSCLIP_REPORTS (the test suite points it at a temporary folder)."""
    return Path(os.environ.get("TDSCLIP_REPORTS") or "reports/out")


@dataclass(frozen=True)
class RunsFolder:
    """Every path under a runs folder, named once."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def run(self, run_id: str) -> Path:
        return self.root / run_id

    def measurement(self, key: str) -> Path:
        return self.root / "measurements" / f"{key}.json"

    def figures(self, table: str, preset: str, key: str) -> Path:
        return self.root / "figures" / f"{table}-{preset}-{key}"

    def slurm(self, table: str, preset: str) -> Path:
        """A table's Slurm submissions: jobs.json, the code snapshot, submitit's files."""
        return self.root / "slurm" / f"{table}-{preset}"

    def log(self, run_id: str) -> Path:
        """The output of the process training the run, when a table runs its rows in parallel."""
        return self.root / run_id / "train.log"

    def local(self, table: str, preset: str) -> Path:
        """A table's parallel local jobs: the job each row's process reads and the outcome it writes."""
        return self.root / "local" / f"{table}-{preset}"

    @property
    def sweeps(self) -> Path:
        return self.root / "sweeps"

    def sweep_record(self, name: str) -> Path:
        return self.sweeps / f"{name}.json"

    def sweep_folder(self, name: str) -> Path:
        return self.sweeps / name

    def sweep_lock(self, name: str) -> Path:
        """Held while a study's end is written (two workers may end it at once)."""
        return self.sweep_folder(name) / "record.lock"

    def run_dirs(self) -> list[Path]:
        """Folders holding a run record (run.json), sorted by name; none when the folder is missing."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if (p / RUN_FILE).is_file())


# ----------------------------------------------------------------------------- state


@dataclass(frozen=True)
class RunState:
    """One run's state as read from disk; the fields that do not apply to the state are empty."""

    state: State
    since: str = ""
    """When the state began (ISO time): the lock's, the failure's, the stop's, the result's."""
    host: str = ""
    pid: int = 0
    heartbeat: str = ""
    reason: str = ""
    """failed: the error in one line; stopped: why (the signal, or what is known of an interruption)."""
    traceback: str = ""
    """failed: the file holding the traceback."""
    signal: str = ""
    resumable: bool = False

    def describe(self) -> str:
        """One line for a terminal, a report cell or a tag."""
        if self.state == "running":
            return f"running on {self.host} (pid {self.pid}) since {self.since}, heartbeat {self.heartbeat}"
        if self.state == "failed":
            where = f"; traceback in {self.traceback}" if self.traceback else ""
            return f"failed at {self.since}: {self.reason}{where}"
        if self.state in ("stopped", "pruned"):
            how = f" by {self.signal}" if self.signal else ""
            resume = " (the same command resumes it)" if self.resumable else ""
            return f"{self.state}{how}{': ' + self.reason if self.reason else ''}{resume}"
        return self.state


def _holder_state(run_dir: Path) -> RunState | None:
    holder = read_holder(run_dir)
    if holder is None or not holder.alive():
        return None
    return RunState("running", since=holder.since, host=holder.host, pid=holder.pid, heartbeat=holder.heartbeat_iso)


def read_state(run_dir: Path) -> RunState:
    """The run's state from its folder (see the module docstring); never raises on a run's files:
    an unreadable result or state file is a failed run saying which file."""
    run_dir = Path(run_dir)
    if (run_dir / RESULT_FILE).exists():
        try:
            result = read_json(run_dir / RESULT_FILE)
        except RecordError as error:
            return RunState("failed", reason=str(error))
        if result.get("status", "FINISHED") == "FINISHED":
            return RunState("finished", since=str(result.get("finished", "")))
        return RunState(
            "failed",
            since=str(result.get("finished", "")),
            reason=str(result.get("error") or f"result.json says {result.get('status')}"),
        )
    running = _holder_state(run_dir)
    if running is not None:
        return running
    if (run_dir / STATE_FILE).exists():
        try:
            data = read_json(run_dir / STATE_FILE)
        except RecordError as error:
            return RunState("failed", reason=str(error))
        state = data.get("state")
        if state in ("failed", "stopped", "pruned"):
            fields = {k: data[k] for k in ("since", "reason", "traceback", "signal", "resumable") if k in data}
            return RunState(state, **fields)
        if state == "running":  # its holder is gone (the lock was released, or is stale)
            return RunState(
                "stopped",
                since=str(data.get("since", "")),
                host=str(data.get("host", "")),
                pid=int(data.get("pid", 0)),
                resumable=True,
                reason=f"interrupted: its process ({data.get('host')}, pid {data.get('pid')}) ended "
                "without a word (killed or crashed)",
            )
    if (run_dir / RUN_FILE).exists() or (run_dir / CHECKPOINT_FILE).exists() or (run_dir / METRICS_FILE).exists():
        return RunState("stopped", resumable=True, reason="interrupted (killed or crashed)")
    return RunState("not started")


def _write(run_dir: Path, state: RunState) -> None:
    data = {k: v for k, v in asdict(state).items() if v not in ("", 0, False) or k == "state"}
    write_json_atomic(Path(run_dir) / STATE_FILE, data)


def mark_running(run_dir: Path) -> None:
    _write(run_dir, RunState("running", since=now_iso(), host=socket.gethostname(), pid=os.getpid()))


def mark_failed(run_dir: Path, error: BaseException) -> RunState:
    """Record a failure as such: one line of reason, the traceback beside it."""
    run_dir = Path(run_dir)
    trace = run_dir / FAILURE_FILE
    trace.write_text("".join(tb.format_exception(error)), encoding="utf-8")
    lines = str(error).strip().splitlines()
    state = RunState(
        "failed", since=now_iso(), reason=f"{type(error).__name__}: {lines[0] if lines else ''}", traceback=str(trace)
    )
    _write(run_dir, state)
    return state


def mark_stopped(run_dir: Path, signal_name: str, *, pruned: bool = False, reason: str = "") -> RunState:
    state = RunState(
        "pruned" if pruned else "stopped", since=now_iso(), signal=signal_name, resumable=True, reason=reason
    )
    _write(run_dir, state)
    return state


def clear(run_dir: Path) -> None:
    """Forget a run's transitions (a finished run's result.json is the state from then on)."""
    for name in (STATE_FILE, FAILURE_FILE):
        try:
            (Path(run_dir) / name).unlink()
        except FileNotFoundError:
            pass


def as_dict(state: RunState) -> dict[str, Any]:
    return {k: v for k, v in asdict(state).items() if v not in ("", 0, False) or k == "state"}
