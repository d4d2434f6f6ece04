"""The training loop end to end on in-memory clips: records, resume, signals, DDP, failures."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_fixture import build, tiny_config

from tdsclip.train import checkpoint as ckpt
from tdsclip.train.loop import TrainingError
from tdsclip.train.run import run_config

pytestmark = pytest.mark.slow  # every test trains, most in subprocesses (SIGKILL, signals, two gloo ranks)

FIXTURE = Path(__file__).with_name("train_fixture.py")


def script(runs: Path, *overrides: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(FIXTURE), str(runs), *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{runs}/mlflow.db", **(env or {})},
    )


def finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode in (0, 3, 4), err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def only_run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if p.is_dir() and (p / "run.json").exists()]
    return run


def trained_state(run: Path) -> dict:
    return ckpt.load(run / ckpt.LATEST)["model"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run, in a subprocess, single thread; its log (stderr, a pipe as under
    Slurm) kept in log.txt beside the run."""
    runs = tmp_path_factory.mktemp("reference")
    process = script(runs, "train.checkpoint_every=1", "--log")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    (runs / "log.txt").write_text(err)
    return runs, json.loads(out.strip().splitlines()[-1])


def test_the_log_shows_progress_through_the_final_multi_view_test(reference):
    """Why: the final multi-view test printed a start and an end line only, and hours of testing a
    large dataset went by without a word. Off a terminal: a plain line every 10% (or minute)."""
    log = (reference[0] / "log.txt").read_text()
    lines = [
        line.split("INFO tdsclip.train.views: ", 1)[1]
        for line in log.splitlines()
        if "final test: " in line and "tdsclip.train.views" in line
    ]
    done = [int(line.split("final test: ")[1].split("/")[0]) for line in lines]
    assert len(done) >= 4 and done == sorted(done) and lines[-1].startswith("final test: 8/8 videos (100%)"), log[
        -3000:
    ]
    assert all(" videos/s, ETA " in line for line in lines), lines
    assert log.index("final test: 8 videos x 2 views") < log.index(lines[0]) < log.index("final test: done")


def test_a_terminal_shows_a_progress_bar_through_the_final_multi_view_test(tmp_path):
    """On a terminal (a pseudo-terminal here): a tqdm bar, and no plain progress lines."""
    import fcntl
    import pty
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 40 rows x 120 columns
    process = subprocess.Popen(
        [sys.executable, str(FIXTURE), str(tmp_path / "runs"), "train.epochs=1", "--log"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"},
    )
    os.close(secondary)
    screen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        screen += chunk
    os.close(primary)
    assert process.wait(timeout=600) == 0, screen[-3000:]
    text = screen.decode(errors="replace")
    assert "final test: 100%" in text and "8/8" in text, text[-3000:]
    assert "final test: 8/8 videos (100%)" not in text, "a terminal gets the bar, not the log lines"


def test_a_run_writes_its_records_and_a_second_call_returns_at_once(reference, tmp_path, monkeypatch):
    runs, outcome = reference
    run = only_run(runs)
    result = json.loads(Path(outcome["path"]).read_text())
    assert outcome["status"] == "finished" and Path(outcome["path"]) == run / "result.json"
    assert result["status"] == "FINISHED" and result["run_id"] == run.name and result["steps"] == 12
    assert 0 <= result["metrics"]["test_top1"] <= 100 and result["metrics"]["test_videos"] == 8
    assert result["protocol"]["test"].startswith("2 views per video")
    for name in ("latest.pt", "best.pt", "views.npz", "metrics.jsonl", "run.json"):
        assert (run / name).exists(), name
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2] and all("val_top1" in e["metrics"] for e in epochs)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{runs}/mlflow.db")
    before = (run / "result.json").stat().st_mtime_ns
    again = run_config(tiny_config("train.checkpoint_every=1"), preset="test", runs_dir=runs, data_builder=build)
    assert again.status == "finished" and again.path == run / "result.json"
    assert (run / "result.json").stat().st_mtime_ns == before, "a finished run is not trained again"


def test_sigkill_then_resume_equals_an_uninterrupted_run_bit_for_bit(reference, tmp_path):
    ref_runs, ref_outcome = reference
    kill_at = 1 + int(torch.randint(2, 10, (1,), generator=torch.Generator().manual_seed(2026)))
    runs = tmp_path / "runs"
    process = script(runs, "train.checkpoint_every=1", "--signal-at", str(kill_at), "SIGKILL")
    process.communicate(timeout=600)
    assert process.returncode == -signal.SIGKILL, "the run was not killed"
    killed_at = ckpt.load(only_run(runs) / ckpt.LATEST)["step"]
    assert killed_at == kill_at < 12 and not (only_run(runs) / "result.json").exists()
    resumed = finish(script(runs, "train.checkpoint_every=1"))
    assert resumed["status"] == "finished"
    ours, theirs = trained_state(only_run(runs)), trained_state(only_run(ref_runs))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours), f"killed at step {killed_at}: weights differ"
    ours_result = json.loads(Path(resumed["path"]).read_text())
    ref_result = json.loads(Path(ref_outcome["path"]).read_text())
    assert ours_result["metrics"] == ref_result["metrics"]


def test_stop_signal_checkpoints_exits_and_resumes(reference, tmp_path):
    runs = tmp_path / "runs"
    process = script(runs, "train.checkpoint_every=1", "--signal-at", "1", "SIGUSR2")
    stopped = finish(process)
    assert process.returncode == 3 and stopped["status"] == "stopped"
    step = ckpt.load(Path(stopped["path"]))["step"]
    assert 1 <= step < 12 and not (only_run(runs) / "result.json").exists()
    resumed = finish(script(runs, "train.checkpoint_every=1"))
    assert resumed["status"] == "finished"
    ours, theirs = trained_state(only_run(runs)), trained_state(only_run(reference[0]))
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_ranks_equal_one_process_accumulating_two_micro_batches(tmp_path):
    steps = ["train.epochs=1", "train.val_every=0", "train.batch_size=4", "train.micro_batch=2"]
    assert finish(script(tmp_path / "single", *steps))["status"] == "finished"
    port = str(free_port())
    ranks = [
        script(
            tmp_path / "ddp",
            *steps,
            env={
                "RANK": str(r),
                "WORLD_SIZE": "2",
                "LOCAL_RANK": str(r),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
            },
        )
        for r in range(2)
    ]
    outcomes = [finish(p) for p in ranks]
    assert all(o["status"] == "finished" for o in outcomes)
    one, two = trained_state(only_run(tmp_path / "single")), trained_state(only_run(tmp_path / "ddp"))
    weights = [k for k in one if "running_" not in k and "num_batches_tracked" not in k]
    assert len(weights) > 50
    for key in weights:
        assert torch.allclose(one[key], two[key], atol=1e-5, rtol=1e-4), key

    def loss(run: Path) -> list[float]:
        return [json.loads(line)["metrics"]["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert loss(only_run(tmp_path / "single")) == pytest.approx(loss(only_run(tmp_path / "ddp")), rel=1e-5)


def test_a_prune_decision_of_rank_0_stops_every_rank_after_that_epoch(tmp_path):
    port = str(free_port())
    ranks = [
        script(
            tmp_path,
            "train.epochs=3",
            "train.val_every=1",
            "--prune-at",
            "2",
            env={
                "RANK": str(r),
                "WORLD_SIZE": "2",
                "LOCAL_RANK": str(r),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
            },
        )
        for r in range(2)
    ]
    outcomes = [finish(p) for p in ranks]
    assert [p.returncode for p in ranks] == [4, 4] and all(o["status"] == "pruned" for o in outcomes)
    calls = (tmp_path / "hook-calls-rank0.txt").read_text().splitlines()
    assert [int(line.split()[0]) for line in calls] == [1, 2], "called once per validated epoch, on rank 0"
    assert not (tmp_path / "hook-calls-rank1.txt").exists(), "rank 1 obeys rank 0's decision without deciding"
    run = only_run(tmp_path)
    assert ckpt.load(run / ckpt.LATEST)["epoch"] == 2 and not (run / "result.json").exists()
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    cfg = tiny_config("train.checkpoint_every=1")
    from train_fixture import build as build_data

    from tdsclip.train.sampling import StepBatches

    order = [
        i
        for batch in StepBatches(24, seed=5, epoch=0, batch_size=4, micro_batch=2, rank=0, world_size=1)
        for _, i in batch
    ]
    poisoned = order[4 * 3]  # the first video of step 4
    with pytest.raises(
        TrainingError, match=r"non-finite loss \(nan\) at step 4 \(epoch 1\); the last checkpoint .*latest.pt is intact"
    ):
        run_config(cfg, preset="test", runs_dir=tmp_path, data_builder=lambda c, e: build_data(c, e, nan_at=poisoned))
    assert ckpt.load(only_run(tmp_path) / ckpt.LATEST)["step"] == 3
