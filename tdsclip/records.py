"""The on-disk format of a run record, and safe ways to write and read it.

    runs/<run_id>/run.json        {"run_id", "params", "tags", "created"}     written atomically
    runs/<run_id>/metrics.jsonl   one {"step", "epoch", "time", "metrics"} per line, appended + fsynced
    runs/<run_id>/result.json     the result dict + "run_id", "status", "finished", written atomically

These files are the source of truth of a run; MLflow only mirrors them. `tdsclip.track.Tracker`
is the one writer; `sync` and the reports read them through `load_record`. A crash can at worst
cut off the last line of metrics.jsonl (no newline yet): readers skip such a torn tail, and a
resumed Tracker trims it before appending. "created"/"finished" are ISO 8601 UTC times, "time" is
Unix seconds; a diverged metric is kept as NaN/Infinity, the way Python's json writes them.
"""

from __future__ import annotations

import json
import numbers
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tdsclip.atomic import atomic_write

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""A run id names a directory and is matched in MLflow filter strings: keep it to these characters."""
KEY_PATTERN = re.compile(r"[\w\-. :/]+")
MAX_KEY_LENGTH = 250
"""MLflow's rules for param, tag and metric names (alphanumerics, _ - . space : /, <= 250 chars)."""


class RecordError(ValueError):
    """A bad value or a malformed record file; the message is one line naming it."""


def now_iso() -> str:
    """The current UTC time, the form of "created" and "finished"."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def iso_to_ms(text: str) -> int:
    """An ISO 8601 time (as written by now_iso) in Unix milliseconds, MLflow's timestamps."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# ----------------------------------------------------------------------------- validation


def check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise RecordError(
            f"run_id: expected letters, digits, '.', '_' or '-' (not starting with a symbol), got {run_id!r}"
        )
    return run_id


def check_key(kind: str, key: object) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
        raise RecordError(
            f"{kind} name {key!r}: expected 1-{MAX_KEY_LENGTH} characters of letters, "
            "digits, '_', '-', '.', ' ', ':' or '/' (MLflow's rule)"
        )
    return key


def check_number(kind: str, key: str, value: object) -> float:
    """A real number (int, float, numpy scalar), not a bool or a tensor; NaN and inf are kept."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RecordError(
            f"{kind} {key!r}: expected a number, got {type(value).__name__} {value!r:.80} (call .item() on tensors)"
        )
    return float(value)


def check_step(step: object, epoch: object) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise RecordError(f"step: expected an int >= 0, got {step!r}")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise RecordError(f"epoch: expected an int >= 0 or None, got {epoch!r}")


def json_normal(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` as it will read back from JSON (tuples become lists); non-JSON values are errors."""
    if not isinstance(data, Mapping):
        raise RecordError(f"{kind}: expected a dict, got {type(data).__name__}")
    try:
        return json.loads(json.dumps(dict(data)))
    except (TypeError, ValueError) as error:
        raise RecordError(f"{kind}: expected JSON-serialisable values ({error})") from None


# ----------------------------------------------------------------------------- writing


def writable_folder(folder: Path, what: str, choose: str) -> Path:
    """`folder`, made if missing; a read-only or impossible one is a one-line RecordError naming it
    and how to choose another."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RecordError(
            f"{what} {str(folder)!r} cannot be created ({error.strerror}); choose another with {choose}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RecordError(f"{what} {str(folder)!r} is not writable; choose another with {choose}")
    return folder


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to a temp file beside `path`, fsync, rename: readers see the old or the new file."""
    text = json.dumps(data, indent=2) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def append_jsonl(path: Path, entry: Mapping[str, Any]) -> None:
    """Append one JSON line with a single write, then flush and fsync."""
    line = json.dumps(entry, separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def trim_torn_tail(path: Path) -> int:
    """Drop the bytes after the last newline (a line cut off by a crash); returns how many."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep == len(data):
        return 0
    with open(path, "rb+") as handle:
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    return len(data) - keep


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class MetricEntry:
    """One line of metrics.jsonl."""

    step: int
    epoch: int | None
    time: float
    metrics: dict[str, float]


@dataclass(frozen=True)
class RunRecord:
    """A run directory as read from disk; `result` is None while the run is unfinished."""

    run_dir: Path
    run_id: str
    params: dict[str, Any]
    tags: dict[str, str]
    created: str
    metrics: tuple[MetricEntry, ...]
    result: dict[str, Any] | None

    @property
    def last_step(self) -> int:
        """The step final result metrics are logged at: the largest step logged, else 0."""
        return max((entry.step for entry in self.metrics), default=0)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise RecordError(f"{path}: not valid JSON ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_run_json(path: Path) -> dict[str, Any]:
    """run.json, checked: run_id, params (object), tags (object of strings), created (ISO time)."""
    data = read_json(path)
    for key, kind in (("run_id", str), ("params", dict), ("tags", dict), ("created", str)):
        if not isinstance(data.get(key), kind):
            raise RecordError(
                f'{path}: expected "{key}" to be a JSON {"string" if kind is str else "object"}, '
                f"got {data.get(key)!r:.80}"
            )
    try:
        check_run_id(data["run_id"])
        iso_to_ms(data["created"])
    except (RecordError, ValueError) as error:
        raise RecordError(f"{path}: {error}") from None
    if not all(isinstance(v, str) for v in data["tags"].values()):
        raise RecordError(f'{path}: expected "tags" to map names to strings')
    return data


def _metric_entry(raw: object) -> MetricEntry:
    if not isinstance(raw, dict) or not isinstance(raw.get("metrics"), dict):
        raise RecordError('expected an object with "step", "epoch", "time", "metrics"')
    check_step(raw.get("step"), raw.get("epoch"))
    when = raw.get("time")
    if isinstance(when, bool) or not isinstance(when, (int, float)):
        raise RecordError(f'"time": expected Unix seconds, got {when!r}')
    values = {check_key("metric", k): check_number("metric", k, v) for k, v in raw["metrics"].items()}
    return MetricEntry(raw["step"], raw.get("epoch"), float(when), values)


def read_metrics(path: Path) -> tuple[MetricEntry, ...]:
    """All complete lines of metrics.jsonl (a torn last line is skipped); bad lines are errors."""
    if not path.exists():
        return ()
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")[:-1]  # the part after the last newline is torn or empty
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entries.append(_metric_entry(json.loads(line)))
        except (ValueError, RecordError) as error:
            raise RecordError(f"{path}:{number}: {str(error).splitlines()[0]}") from None
    return tuple(entries)


def load_record(run_dir: Path) -> RunRecord:
    """Read and check a run directory's record."""
    run_dir = Path(run_dir)
    run = read_run_json(run_dir / RUN_FILE)
    result_path = run_dir / RESULT_FILE
    result = read_json(result_path) if result_path.exists() else None
    if result is not None:
        if result.get("run_id") != run["run_id"]:
            raise RecordError(
                f'{result_path}: expected "run_id" {run["run_id"]!r} as in run.json, got {result.get("run_id")!r}'
            )
        try:
            iso_to_ms(result["finished"])
        except (KeyError, TypeError, ValueError):
            raise RecordError(
                f'{result_path}: expected "finished" to be an ISO 8601 time, got {result.get("finished")!r}'
            ) from None
    return RunRecord(
        run_dir, run["run_id"], run["params"], run["tags"], run["created"], read_metrics(run_dir / METRICS_FILE), result
    )


def find_records(runs_dir: Path) -> list[Path]:
    """The run directories under `runs_dir` (sub-folders holding run.json), sorted by name."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise RecordError(f"runs directory {str(runs_dir)!r} does not exist or is not a directory")
    return sorted(p for p in runs_dir.iterdir() if (p / RUN_FILE).is_file())


def final_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of the result's top-level "metrics" dict (others are not metrics)."""
    metrics = result.get("metrics")
    if not isinstance(metrics, Mapping):
        return {}
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(k, str)
        and KEY_PATTERN.fullmatch(k)
        and len(k) <= MAX_KEY_LENGTH
        and isinstance(v, numbers.Real)
        and not isinstance(v, bool)
    }
