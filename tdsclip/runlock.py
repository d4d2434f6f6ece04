"""One process trains a run at a time: a lock file per run that works on a network filesystem.

    with RunLock(run_dir, wait=False):     # RunLocked names the holder (host, pid, since)
        train ...

The lock is runs/<run_id>/lock.json, created with O_CREAT | O_EXCL (atomic on local filesystems
and on NFS v3 and later; `flock` is not relied on: many network filesystems ignore it or lock per
host). It holds the holder's host, pid, start time and a random token; its modification time is
the heartbeat, touched every HEARTBEAT_S seconds by a thread of the holder.

A lock whose holder is dead is taken over, with a warning naming the old holder:
  - same host: the holder's pid is gone;
  - any host: the heartbeat is older than STALE_AFTER_S seconds (hosts sharing a runs folder
    must keep their clocks within that of each other; NTP does).
A takeover itself is serialised by a second O_EXCL file (lock.json.takeover), so two processes
finding the same stale lock cannot both take it. $TDSCLIP_LOCK_STALE_S and
$TDSCLIP_LOCK_HEARTBEAT_S change the two limits (tests; very slow filesystems).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tdsclip.records import now_iso

log = logging.getLogger(__name__)

LOCK_FILE = "lock.json"

HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0
"""Ten missed heartbeats: a holder this silent is dead (or frozen) and its run is taken over."""
TAKEOVER_STALE_S = 60.0
POLL_S = 2.0


def heartbeat_s() -> float:
    return float(os.environ.get("TDSCLIP_LOCK_HEARTBEAT_S") or HEARTBEAT_S)


def stale_after_s() -> float:
    return float(os.environ.get("TDSCLIP_LOCK_STALE_S") or STALE_AFTER_S)


class RunLocked(RuntimeError):
    """Another live process holds the run; the message is one line naming it."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    since: str
    token: str
    heartbeat: float
    """Unix time of the last heartbeat (the lock file's mtime)."""

    @property
    def heartbeat_iso(self) -> str:
        return datetime.fromtimestamp(self.heartbeat, timezone.utc).isoformat(timespec="seconds")

    def dead_because(self) -> str:
        """Why the holder counts as dead ('' while it is alive)."""
        silent = time.time() - self.heartbeat
        if silent > stale_after_s():
            return f"no heartbeat for {silent:.0f} s (limit {stale_after_s():.0f} s)"
        if self.host == socket.gethostname() and not pid_running(self.pid):
            return f"pid {self.pid} is gone"
        return ""

    def alive(self) -> bool:
        return not self.dead_because()

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {self.since}"


def pid_running(pid: int) -> bool:
    """Whether `pid` is a process of this host that still runs. A zombie (killed or exited, not yet
    reaped by its parent: a launcher waiting for its children in order) does not: it holds nothing
    and never touches its heartbeat again."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    try:  # Linux: the state letter follows the parenthesised command name in /proc/<pid>/stat
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True  # no /proc (macOS): os.kill's answer stands


def read_holder(run_dir: Path) -> Holder | None:
    """The lock's holder, or None when there is no lock. A lock file still being written (empty or
    torn) reads as a holder with an unknown pid, alive until its heartbeat is stale."""
    path = Path(run_dir) / LOCK_FILE
    try:
        mtime = path.stat().st_mtime
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    return Holder(
        str(data.get("host", "?")),
        int(data.get("pid", 0) or 0),
        str(data.get("since", "?")),
        str(data.get("token", "")),
        mtime,
    )


def _create_exclusive(path: Path, text: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return True


class RunLock:
    """The lock of one run folder, held from __enter__ (or acquire) to __exit__ (or release).

    wait: False refuses at once when a live process holds the run; True waits for it; a number
    waits at most that many seconds."""

    def __init__(self, run_dir: Path, *, wait: bool | float = False) -> None:
        self.run_dir, self.path = Path(run_dir), Path(run_dir) / LOCK_FILE
        self.wait = wait
        self.token = secrets.token_hex(8)
        self.took_over: Holder | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        deadline = None if self.wait is True else time.monotonic() + (0.0 if self.wait is False else float(self.wait))
        text = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": now_iso(), "token": self.token})
        while True:
            if _create_exclusive(self.path, text):
                break
            holder = read_holder(self.run_dir)
            if holder is None:
                continue  # released between our two looks
            why = holder.dead_because()
            if why:
                self._take_over(holder, why)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                raise RunLocked(
                    f"run {self.run_dir.name} is being trained by another process ({holder.describe()}, "
                    f"last heartbeat {holder.heartbeat_iso}); wait for it with --wait, or stop that process"
                )
            time.sleep(POLL_S if deadline is None else min(POLL_S, max(0.05, deadline - time.monotonic())))
        self._thread = threading.Thread(target=self._beat, name=f"lock-{self.run_dir.name}", daemon=True)
        self._thread.start()
        return self

    def _take_over(self, holder: Holder, why: str) -> None:
        """Remove a dead holder's lock, once: under the takeover file, and only if it is still the same lock."""
        guard = self.path.with_name(LOCK_FILE + ".takeover")
        try:
            if time.time() - guard.stat().st_mtime > TAKEOVER_STALE_S:
                guard.unlink(missing_ok=True)  # left by a process that died while taking over
        except FileNotFoundError:
            pass
        if not _create_exclusive(guard, str(os.getpid())):
            time.sleep(0.1)
            return
        try:
            again = read_holder(self.run_dir)
            if again is not None and again.token == holder.token and again.dead_because():
                self.path.unlink(missing_ok=True)
                self.took_over = holder
                log.warning(
                    "run %s: took over the lock of a dead holder (%s): %s", self.run_dir.name, holder.describe(), why
                )
        finally:
            guard.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(heartbeat_s()):
            holder = read_holder(self.run_dir)
            if holder is None or holder.token != self.token:
                log.error(
                    "run %s: lost its lock (%s); another process may be training it",
                    self.run_dir.name,
                    "removed" if holder is None else holder.describe(),
                )
                return
            try:
                os.utime(self.path)
            except OSError as error:
                log.warning("run %s: heartbeat failed (%s)", self.run_dir.name, error)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        holder = read_holder(self.run_dir)
        if holder is not None and holder.token == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
