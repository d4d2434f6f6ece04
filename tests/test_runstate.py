"""Run state on disk and the lock per run, with real runs and real processes: a failed run reads
as failed everywhere, two processes never train one run, Ctrl-C and SIGTERM stop cleanly, the
last epoch is always validated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_fixture import build, tiny_config

from tdsclip import runstate
from tdsclip.identity import run_id
from tdsclip.runlock import LOCK_FILE, RunLock, RunLocked, read_holder
from tdsclip.train import checkpoint as ckpt
from tdsclip.train.loop import StopRequest, TrainingError
from tdsclip.train.run import run_config

FIXTURE = Path(__file__).with_name("train_fixture.py")
MANIFEST = "in-memory-clips-v1"  # train_fixture.build's


@pytest.fixture(scope="module", autouse=True)
def mlflow_env(tmp_path_factory):
    """One sqlite store for the module (its schema is made once: that costs seconds per store)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db")
    yield
    patch.undo()


def fixture(runs: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(FIXTURE), str(runs), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


HOLDER = (
    "import sys, time; from pathlib import Path; from tdsclip.runlock import RunLock\n"
    "lock = RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(600)"
)


def hold(run_dir: Path, env: dict | None = None) -> subprocess.Popen:
    """A second real process holding the run's lock until it is killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout.readline().strip() == "held"
    return process


# ----------------------------------------------------------------------------- failed


def test_a_failed_run_is_written_as_failed_and_reads_failed_everywhere(tmp_path):
    """Why: a failed run left only run.json; --dry-run said 'not started', the report 'running'."""
    from experiments.plan import run_status
    from reports.sources import LocalSource

    cfg = tiny_config("train.checkpoint_every=1")
    with pytest.raises(TrainingError):
        run_config(cfg, preset="test", runs_dir=tmp_path / "runs", data_builder=lambda c, e: build(c, e, nan_at=3))
    run = tmp_path / "runs" / run_id(cfg, MANIFEST)
    state = runstate.read_state(run)
    assert state.state == "failed" and state.reason.startswith("TrainingError: non-finite loss")
    assert "Traceback" in Path(state.traceback).read_text() and not (run / LOCK_FILE).exists()
    assert run_status(run) == "failed"
    view = LocalSource(tmp_path / "runs").get(run.name)
    assert view.state == "failed" and "non-finite loss" in view.error and "traceback in" in view.detail


def test_states_of_a_runs_folder(tmp_path):
    run = tmp_path / "r"
    assert runstate.read_state(run).state == "not started"
    run.mkdir()
    (run / "run.json").write_text("{}")
    interrupted = runstate.read_state(run)
    assert interrupted.state == "stopped" and interrupted.resumable and "killed or crashed" in interrupted.reason
    runstate.mark_running(run)  # no lock: its process is gone
    assert runstate.read_state(run).state == "stopped"
    with RunLock(run):
        live = runstate.read_state(run)
        assert live.state == "running" and live.pid == os.getpid() and live.heartbeat
    runstate.mark_stopped(run, "SIGTERM")
    assert runstate.read_state(run).describe() == "stopped by SIGTERM (the same command resumes it)"


# ----------------------------------------------------------------------------- the lock


@pytest.mark.slow  # trains in a subprocess
def test_a_second_process_refuses_naming_the_holder_then_takes_over_a_sigkilled_one(tmp_path):
    """Why: two `experiments.run ... --rows Baseline` at once trained one run into one folder."""
    runs = tmp_path / "runs"
    run = runs / run_id(tiny_config(), MANIFEST)
    holder = hold(run)
    try:
        second = fixture(runs)
        _, err = second.communicate(timeout=300)
        assert second.returncode == 5, err[-2000:]
        (line,) = [line for line in err.splitlines() if line.startswith("refused:")]
        assert f"pid {holder.pid}" in line and "host " in line and "since " in line
        assert not (run / "metrics.jsonl").exists(), "the refused process wrote nothing into the run"

        waiting = fixture(runs, "--wait", env={"TDSCLIP_LOCK_HEARTBEAT_S": "0.2"})
        time.sleep(3)
        assert waiting.poll() is None, "it waits while the holder lives"
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        out, err = waiting.communicate(timeout=300)
        assert waiting.returncode == 0, err[-2000:]
        assert f"took over the lock of a dead holder (host {os.uname().nodename}, pid {holder.pid}" in err
        assert f"pid {holder.pid} is gone" in err and json.loads(out.splitlines()[-1])["status"] == "finished"
        assert runstate.read_state(run).state == "finished" and not (run / LOCK_FILE).exists()
    finally:
        holder.kill()


def test_a_killed_holder_not_yet_reaped_by_its_parent_is_dead(tmp_path):
    """Why: a sweep worker killed mid-trial stayed a zombie until the launcher, waiting for its
    workers in order, reaped it; its pid still answered, so the trial's retry waited out the
    5-minute heartbeat limit."""
    run = tmp_path / "run"
    holder = hold(run)
    try:
        holder.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{holder.pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the killed holder never became a zombie"
            time.sleep(0.05)
        with RunLock(run) as lock:  # at once: no wait, no stale heartbeat needed
            assert lock.took_over.pid == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_holder_on_another_host_is_dead_only_once_its_heartbeat_is_stale(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text(
        json.dumps({"host": "node-elsewhere", "pid": 1, "since": "2026-01-01T00:00:00", "token": "abc"})
    )
    with pytest.raises(
        RunLocked,
        match=r"^run run is being trained by another process \(host node-elsewhere, "
        r"pid 1, since 2026-01-01T00:00:00, last heartbeat .*--wait",
    ):
        RunLock(run).acquire()
    monkeypatch.setenv("TDSCLIP_LOCK_STALE_S", "60")
    old = time.time() - 61
    os.utime(run / LOCK_FILE, (old, old))
    with RunLock(run) as lock:
        assert lock.took_over.host == "node-elsewhere" and read_holder(run).token == lock.token
    assert not (run / LOCK_FILE).exists()


# ----------------------------------------------------------------------------- stop signals


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_ctrl_c_and_sigterm_checkpoint_and_say_so_in_one_line(tmp_path, name):
    """Why: Ctrl-C printed a 30-line traceback and lost the epoch in progress; SIGTERM likewise."""
    runs = tmp_path / "runs"
    process = fixture(runs, "train.checkpoint_every=1", "--signal-at", "1", name)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 3 and "Traceback" not in err, err[-2000:]
    assert json.loads(out.splitlines()[-1])["status"] == "stopped"
    (run,) = [p for p in runs.iterdir() if (p / "run.json").exists()]
    assert ckpt.load(run / ckpt.LATEST)["step"] == 2, "checkpointed at the next step boundary"
    state = runstate.read_state(run)
    assert (state.state, state.signal, state.resumable) == ("stopped", name, True)
    assert f"{name}: stopping at the next step boundary" in err


@pytest.mark.slow  # trains in a subprocess
def test_sigterm_to_the_process_group_reaches_the_data_worker_too_and_still_stops_cleanly(tmp_path):
    """Why: `kill -- -PGID`, `pkill -f` and Slurm (at a time limit or scancel, to every process of the
    step) send SIGTERM to the data worker too; it died of it, and the trainer stopped with
    'DataLoader worker ... is killed by signal: Terminated' and a traceback instead of a checkpoint.
    (A terminal's Ctrl-C reaches the worker as well; torch's worker loop already swallows that one.)"""
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [
            sys.executable,
            str(FIXTURE),
            str(runs),
            "train.checkpoint_every=1",
            "data.num_workers=1",
            "--signal-at",
            "1",
            "SIGTERM",
            "--to-group",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    out, err = process.communicate(timeout=300)
    assert process.returncode == 3 and "Traceback" not in err, err[-2000:]
    (run,) = [p for p in runs.iterdir() if (p / "run.json").exists()]
    assert runstate.read_state(run).state == "stopped"


@pytest.mark.slow  # trains in a subprocess
def test_a_second_ctrl_c_aborts_at_once_and_the_run_reads_stopped(tmp_path):
    runs = tmp_path / "runs"
    process = fixture(runs, "train.checkpoint_every=1", "--signal-at", "1", "SIGINT", "--twice")
    process.communicate(timeout=300)
    assert process.returncode != 0
    (run,) = [p for p in runs.iterdir() if (p / "run.json").exists()]
    state = runstate.read_state(run)
    assert state.state == "stopped" and "aborted by a second Ctrl-C" in state.reason
    assert ckpt.load(run / ckpt.LATEST)["step"] == 1


def test_stop_request_second_sigint_raises():
    before = signal.getsignal(signal.SIGINT)
    stop = StopRequest("SIGUSR2")
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.signal == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGINT) is before


# ----------------------------------------------------------------------------- validation


@pytest.mark.slow  # trains in a subprocess
def test_the_last_epoch_is_validated_even_off_the_validation_period(tmp_path, caplog):
    """Why: train.epochs=1 under a preset validating every 2 epochs never validated (None)."""
    caplog.set_level("INFO", logger="tdsclip.train.loop")
    outcome = run_config(
        tiny_config("train.epochs=1", "train.val_every=2"), preset="test", runs_dir=tmp_path, data_builder=build
    )
    assert outcome.status == "finished" and "val_top1_best" in outcome.result["metrics"]
    (line,) = outcome.path.with_name("metrics.jsonl").read_text().splitlines()
    assert "val_top1" in json.loads(line)["metrics"]
    assert any(
        r.getMessage().startswith("epoch 1/1: train loss ")
        and "val top-1 " in r.getMessage()
        and "ETA " in r.getMessage()
        for r in caplog.records
    )


def test_slurm_status_progress_skips_a_torn_last_line_of_metrics(tmp_path):
    """Why: --status crashed on a torn last line of metrics.jsonl, which readers may skip."""
    from experiments.cluster import _progress

    (tmp_path / "metrics.jsonl").write_text('{"step":3,"epoch":1,"time":1.0,"metrics":{"loss":1.0}}\n{"step":6,"ep')
    assert _progress(tmp_path) == "epoch 1 step 3"


@pytest.mark.parametrize("command", ["tdsclip.train", "reports.build", "experiments.run"])
def test_an_unwritable_folder_is_a_one_line_error(command, capsys, tmp_path, monkeypatch):
    """Why: a read-only runs or output folder gave a traceback. /sys refuses new folders even to root."""
    monkeypatch.setenv("TDSCLIP_REPORTS", str(tmp_path / "out"))
    if command == "tdsclip.train":
        from tdsclip.train.__main__ import main

        code = main(["--preset", "smoke", "--runs-dir", "/sys/tdsclip-runs"])
        wanted = "error: runs folder '/sys/tdsclip-runs' cannot be created (Operation not permitted); choose another"
    elif command == "reports.build":
        from reports.build import main

        code = main(["table3", "--out", "/sys/tdsclip-out", "--runs-dir", str(tmp_path)])
        wanted = "reports.build: output folder '/sys/tdsclip-out' cannot be created (Operation not permitted)"
    else:
        from experiments.run import main

        code = main(["table3", "--preset", "smoke", "--runs-dir", "/sys/tdsclip-runs"])
        wanted = "experiments.run: runs folder '/sys/tdsclip-runs' cannot be created (Operation not permitted)"
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(wanted) and "\n" not in err, err


@pytest.mark.slurm  # runs Slurm's sinfo against a controller that is not there
def test_an_unreachable_slurm_controller_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    """Why: --executor slurm without a controller printed sbatch's errors twice and left a snapshot
    and pickles behind. A slurm.conf naming a port nothing listens on, as a stopped cluster is."""
    from experiments.run import main

    conf = tmp_path / "slurm.conf"
    conf.write_text(
        "ClusterName=nowhere\nSlurmctldHost=localhost\nSlurmctldPort=6\nMessageTimeout=2\n"
        "NodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName=debug Nodes=localhost Default=YES\n"
    )
    monkeypatch.setenv("SLURM_CONF", str(conf))
    runs = tmp_path / "runs"
    assert (
        main(
            [
                "table3",
                "--preset",
                "smoke",
                "--rows",
                "Baseline",
                "--executor",
                "slurm",
                "--profile",
                "local",
                "--runs-dir",
                str(runs),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("experiments.run: the Slurm controller cannot be reached (") and "\n" not in err, err
    assert "Unable to contact slurm controller" in err and str(conf) in err
    assert not (runs / "slurm").exists(), "no snapshot, no pickles"
