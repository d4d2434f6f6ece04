"""Several rows of a table at once on this machine: `python -m experiments.run NAME --jobs N`.

Each pending row is its own process, `python -m experiments.pool JOB.json`, which calls the same
`tdsclip.train.run.run_config` as a row run in-process: it takes the run's lock and records the
run's state and result through tdsclip/runstate.py and tdsclip/track.py, so records, MLflow and
the report are the same as with one job. What each process is given is decided by `layout`:

  CPU     cores (this process's CPU affinity) shared out: threads per job = cores // jobs,
          at least 1; set as OMP_NUM_THREADS and torch.set_num_threads (result.json: torch_threads);
          a job with one core (or less) reads its data in-process (Slot.inline_data)
  CUDA    each job its own GPU(s) through CUDA_VISIBLE_DEVICES (--gpus: indexes of the visible
          devices, default all); a row of a preset that trains on k GPUs (8 for paper) gets
          min(k, GPUs // jobs) of them and runs DDP over them, one process per GPU (RANK,
          WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT, as torchrun sets them); the global batch is
          the same on any GPU count (gradient accumulation), so the recipe is too.

Each process's output goes to runs/<run_id>/train.log (other ranks: train.rank<R>.log); the
terminal gets one line when a row starts and one when it ends. A failing row does not stop the
others. The processes run in sessions of their own, so a terminal's Ctrl-C reaches this process
only, which passes it on once to each: every row checkpoints at its next step and exits (state
stopped); a second Ctrl-C is passed on as well and aborts them (the last checkpoints stay).
SIGTERM and SIGHUP are passed on as SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from experiments.plan import Planned

log = logging.getLogger("experiments")

DDP_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
"""What tdsclip.train.distributed reads; a single-process job gets none of them (nor Slurm's ranks,
whose reading needs MASTER_ADDR), so a table run inside a Slurm allocation does not join its ranks."""
STOPPED, ABORTED = 3, 130
"""Exit codes of a row's process: stopped by a signal (checkpointed), aborted by a second Ctrl-C."""
KILL_AFTER_S = 60.0
"""A DDP job whose rank failed: the other ranks get SIGTERM, then SIGKILL after this long (they may
hang in a collective waiting for the dead rank)."""


# ----------------------------------------------------------------------------- what each job gets


@dataclass(frozen=True)
class Slot:
    """What one job is given: its GPUs (CUDA_VISIBLE_DEVICES entries, () on the CPU) and the torch
    threads of each of its processes (one process per GPU, one on the CPU)."""

    gpus: tuple[str, ...]
    threads: int
    inline_data: bool = False
    """A CPU job with a single core to itself reads its data in the training process
    (data.num_workers=0): a data worker would only take turns with it on that core, and handing
    each batch over costs CPU time (16% of a smoke row's). Not part of the run's identity, and
    sampling is seeded per sample: the result is the same."""

    @property
    def processes(self) -> int:
        return max(1, len(self.gpus))


def parse_gpus(text: str, visible: Sequence[str]) -> list[str]:
    """--gpus "0,2": indexes of the visible devices -> their CUDA_VISIBLE_DEVICES entries."""
    if not visible:
        raise ValueError(f"--gpus {text}: no CUDA device is visible here (CUDA_VISIBLE_DEVICES, torch)")
    chosen: list[str] = []
    for word in text.split(","):
        word = word.strip()
        if not word.isdigit() or int(word) >= len(visible):
            raise ValueError(
                f"--gpus {text}: {word!r} is not a GPU index; expected comma-separated indexes 0-{len(visible) - 1}"
            )
        if visible[int(word)] in chosen:
            raise ValueError(f"--gpus {text}: GPU {word} is named twice")
        chosen.append(visible[int(word)])
    return chosen


def visible_gpus(environ: dict[str, str] | None = None, count: Callable[[], int] | None = None) -> list[str]:
    """The CUDA devices this process sees, as CUDA_VISIBLE_DEVICES entries for its children: the
    parent's own CUDA_VISIBLE_DEVICES when set (CUDA stops at the first invalid entry, as here),
    else 0..n-1 with n = torch.cuda.device_count() (torch imported only then)."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        entries = []
        for word in environ["CUDA_VISIBLE_DEVICES"].split(","):
            word = word.strip()
            if not word or word.startswith("-"):
                break
            entries.append(word)
        return entries
    if count is None:
        import torch

        count = torch.cuda.device_count
    return [str(i) for i in range(count())]


def layout(
    jobs: int,
    pending: int,
    gpus: Sequence[str],
    gpus_per_run: int,
    cores: int,
    fits: Callable[[int], bool] = lambda k: True,
) -> list[Slot]:
    """The jobs that run at once and what each gets. `gpus_per_run`: the preset's GPUs per run (0:
    a CPU preset, which still takes one GPU each when there are GPUs); `fits(k)`: whether every row
    can train on k processes (train.batch_size divisible by micro_batch x k)."""
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: expected >= 1")
    n = max(1, min(jobs, pending))
    if not gpus:
        return [Slot((), max(1, cores // n), inline_data=cores // n <= 1)] * n
    k = max(1, min(max(1, gpus_per_run), len(gpus) // n))
    while k > 1 and not fits(k):
        k -= 1
    n = min(n, len(gpus) // k)
    threads = max(1, cores // (n * k))
    return [Slot(tuple(gpus[i * k : (i + 1) * k]), threads) for i in range(n)]


def child_environ(base: dict[str, str], slot: Slot, rank: int = 0, port: int = 0) -> dict[str, str]:
    """The environment of rank `rank` of a job in `slot`: its threads, its GPUs, its DDP place."""
    env = {k: v for k, v in base.items() if k not in DDP_VARIABLES and k != "MLFLOW_RUN_ID"}
    env["OMP_NUM_THREADS"] = str(slot.threads)
    if slot.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(slot.gpus)
    if slot.processes > 1:
        world = str(slot.processes)
        env.update(
            RANK=str(rank),
            WORLD_SIZE=world,
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE=world,
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
    return env


def cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- the parent


@dataclass
class Finished:
    """How a row's process ended, as its outcome file and the run's state on disk say."""

    status: str  # "finished" | "stopped" | "failed"
    run_id: str
    path: Path | None = None
    error: str = ""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    """CPU time of the row's process(es) and their data workers (rank 0's outcome; 0 if unknown)."""


@dataclass
class _Job:
    number: int
    planned: Planned
    slot: int
    processes: list[subprocess.Popen]
    logs: list
    outcome: Path
    started: float = field(default_factory=time.monotonic)
    killed_at: float = 0.0


class _Signals:
    """Records the stop signals this process gets; `forward` passes each on once to the rows'
    processes. The handler only records: the loop forwards, so a row started while a signal came
    gets it too."""

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self) -> None:
        self.received: list[str] = []
        self.forwarded = 0
        self.previous = {getattr(signal, n): signal.signal(getattr(signal, n), self._handle) for n in self.NAMES}

    def _handle(self, signum: int, frame) -> None:  # noqa: ARG002 - signal protocol
        self.received.append(signal.Signals(signum).name)

    def forward(self, processes: Sequence[subprocess.Popen]) -> list[str]:
        """Pass the signals received since the last call on; returns them."""
        new = self.received[self.forwarded :]
        self.forwarded += len(new)
        for name in new:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGINT if name == "SIGINT" else signal.SIGTERM)
        return new

    def restore(self) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def run_rows(
    table: str,
    preset: str,
    pending: Sequence[tuple[Planned, dict[str, str]]],
    runs_dir: Path,
    slots: Sequence[Slot],
    wait: bool = False,
) -> dict[str, Finished]:
    """Train each (planned run, its record tags) in its own process, len(slots) at a time; returns
    how each ended, by planned run id. Rows not started before a stop signal are left out."""
    from tdsclip.runstate import RunsFolder

    folder = RunsFolder(runs_dir).local(table, preset)
    folder.mkdir(parents=True, exist_ok=True)
    queue = list(enumerate(pending, 1))
    free = list(range(len(slots)))
    running: list[_Job] = []
    done: dict[str, Finished] = {}
    signals, announced = _Signals(), 0
    try:
        while queue or running:
            while queue and free and not signals.received:
                number, (planned, tags) = queue.pop(0)
                job = _start(table, preset, number, len(pending), planned, tags, slots, free.pop(0), runs_dir, wait)
                running.append(job)
            for name in signals.forward([p for job in running for p in job.processes]):
                _say_stop(table, name, announced, len(running), len(queue))
                announced += 1
                queue.clear()
            for job in list(running):
                codes = [p.poll() for p in job.processes]
                if None in codes:
                    if any(c not in (None, 0, STOPPED, ABORTED) for c in codes):
                        _end_other_ranks(job)
                    continue
                running.remove(job)
                free.append(job.slot)
                for handle in job.logs:
                    handle.close()
                done[job.planned.run_id] = ended = _ended(job, codes, runs_dir)
                _say_end(table, job, len(pending), ended, RunsFolder(runs_dir).log(job.planned.run_id))
            time.sleep(0.2)
    finally:
        for job in running:  # only on an error in this process: no row is left training unseen
            for process in job.processes:
                if process.poll() is None:
                    process.terminate()
        signals.restore()
    return done


def _start(
    table: str,
    preset: str,
    number: int,
    total: int,
    planned: Planned,
    tags: dict[str, str],
    slots: Sequence[Slot],
    slot: int,
    runs_dir: Path,
    wait: bool,
) -> _Job:
    """Write the row's job file and start its process(es), output to the run folder's log."""
    from tdsclip.config import apply_overrides, to_dict
    from tdsclip.records import write_json_atomic
    from tdsclip.runstate import RunsFolder

    runs = RunsFolder(Path(runs_dir).resolve())
    given = slots[slot]
    cfg = planned.cfg
    if given.inline_data and cfg.data.num_workers:
        cfg = apply_overrides(cfg, {"data.num_workers": 0})
    job_file = runs.local(table, preset) / f"{planned.run_id}.json"
    outcome = job_file.with_suffix(".outcome.json")
    outcome.unlink(missing_ok=True)
    write_json_atomic(
        job_file,
        {
            "config": to_dict(cfg),
            "preset": preset,
            "runs_dir": str(runs.root),
            "tags": tags,
            "wait": wait,
            "threads": given.threads,
            "outcome": str(outcome),
        },
    )
    log_path = runs.log(planned.run_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    port = _free_port() if given.processes > 1 else 0
    base = dict(os.environ)
    code = str(Path(__file__).resolve().parents[1])  # the children import the code this process runs
    base["PYTHONPATH"] = os.pathsep.join(p for p in (code, base.get("PYTHONPATH", "")) if p)
    processes, logs = [], []
    for rank in range(given.processes):
        handle = (log_path if rank == 0 else log_path.with_name(f"train.rank{rank}.log")).open("a", encoding="utf-8")
        logs.append(handle)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "experiments.pool", str(job_file)],
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=child_environ(base, given, rank, port),
                start_new_session=True,  # a terminal's Ctrl-C reaches the parent only; it passes it on once
            )
        )
    where = (
        f"GPU {','.join(given.gpus)}" + (f" (DDP, {given.processes} processes)" if given.processes > 1 else "")
        if given.gpus
        else "CPU" + (", data read in-process" if given.inline_data else "")
    )
    log.info(
        "%s [%d/%d] %s (seed %d): started, %s, %d thread%s, pid %d, log %s",
        table,
        number,
        total,
        planned.row.name,
        planned.seed,
        where,
        given.threads,
        "" if given.threads == 1 else "s",
        processes[0].pid,
        log_path,
    )
    return _Job(number, planned, slot, processes, logs, outcome)


def _end_other_ranks(job: _Job) -> None:
    """A rank of a DDP job failed: the others would wait for it in their next collective."""
    now = time.monotonic()
    if not job.killed_at:
        job.killed_at = now
        for process in job.processes:
            if process.poll() is None:
                process.terminate()
    elif now - job.killed_at > KILL_AFTER_S:
        for process in job.processes:
            if process.poll() is None:
                process.kill()


def _exit(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


def _ended(job: _Job, codes: list[int], runs_dir: Path) -> Finished:
    """How the row ended: its outcome file (rank 0's word), else the exit codes."""
    seconds = time.monotonic() - job.started
    try:
        said = json.loads(job.outcome.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        said = {}
    rid = job.planned.run_id
    if said.get("status") == "failed":
        return Finished("failed", rid, error=said.get("error", ""), seconds=seconds)
    bad = [(rank, code) for rank, code in enumerate(codes) if code not in (0, STOPPED, ABORTED)]
    if bad:
        rank, code = bad[0]
        who = "its process" if len(codes) == 1 else f"rank {rank}"
        return Finished("failed", rid, error=f"{who} {_exit(code)} (see its log)", seconds=seconds)
    if said.get("status") == "finished":
        return Finished(
            "finished", said.get("run_id", rid), Path(said["path"]), seconds=seconds, cpu_seconds=said.get("cpu_s", 0)
        )
    from tdsclip.runstate import CHECKPOINT_FILE

    checkpoint = Path(runs_dir) / rid / CHECKPOINT_FILE
    return Finished("stopped", rid, checkpoint if checkpoint.exists() else None, seconds=seconds)


def _say_stop(table: str, name: str, before: int, running: int, queued: int) -> None:
    if before == 0:
        log.warning(
            "%s: %s: %d running row(s) checkpoint at their next step and exit%s%s",
            table,
            name,
            running,
            f"; {queued} not started" if queued else "",
            "; Ctrl-C again aborts them" if name == "SIGINT" else "",
        )
    else:
        log.warning("%s: %s again: passed on to %d running row(s)", table, name, running)


def _say_end(table: str, job: _Job, total: int, ended: Finished, log_path: Path) -> None:
    what = {
        "finished": f"finished in {_duration(ended.seconds)}"
        + (f" (CPU time {_duration(ended.cpu_seconds)})" if ended.cpu_seconds else ""),
        "stopped": f"stopped after {_duration(ended.seconds)}; the same command resumes it",
        "failed": f"failed after {_duration(ended.seconds)}: {ended.error} (log {log_path})",
    }[ended.status]
    level = logging.ERROR if ended.status == "failed" else logging.INFO
    log.log(
        level, "%s [%d/%d] %s (seed %d): %s", table, job.number, total, job.planned.row.name, job.planned.seed, what
    )


# ----------------------------------------------------------------------------- a row's process


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def main(argv: Sequence[str] | None = None) -> int:
    """python -m experiments.pool JOB.json: train the job's run as run_config does in-process, and
    write how it ended to the job's outcome file (rank 0). Exit 0 finished, 3 stopped, 130 aborted,
    1 failed (the traceback in the log)."""
    import argparse
    import traceback

    parser = argparse.ArgumentParser(
        prog="python -m experiments.pool",
        description="One row of `experiments.run NAME --jobs N`, started by it: train the job file's run.",
    )
    parser.add_argument("job", type=Path, help="the job file experiments.run wrote (JSON)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    job = json.loads(args.job.read_text(encoding="utf-8"))
    # Before torch is imported: a stop during start-up ends the process through its finally blocks.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from tdsclip.records import write_json_atomic

    rank0 = os.environ.get("RANK", "0") == "0"

    def say(**outcome: object) -> None:
        if rank0:
            used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
            cpu = round(sum(u.ru_utime + u.ru_stime for u in used), 1)  # data workers: once they are reaped
            write_json_atomic(Path(job["outcome"]), {**outcome, "cpu_s": cpu})

    try:
        import torch

        torch.set_num_threads(int(job["threads"]))
        from tdsclip.config import from_dict
        from tdsclip.train.run import run_config

        outcome = run_config(
            from_dict(job["config"]),
            preset=job["preset"],
            runs_dir=Path(job["runs_dir"]),
            tags=job["tags"],
            wait=job["wait"],
        )
    except KeyboardInterrupt:
        print("stopped before training began, or aborted by a second Ctrl-C", file=sys.stderr)
        say(status="stopped")
        return ABORTED
    except Exception as error:  # noqa: BLE001 - the row fails, recorded; the parent reports it
        traceback.print_exc()
        say(status="failed", error=_one_line(error))
        return 1
    if outcome.status != "finished":
        say(status="stopped", signal=outcome.signal)
        return STOPPED
    say(status="finished", path=str(outcome.path), run_id=outcome.path.parent.name)
    print(outcome.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
