"""`python -m experiments.run NAME --jobs N`: rows at once, each a real process of its own.

Why: the demo trained Table III's three smoke rows one after another (most of its 10 minutes with
one core idle), and a workstation with several GPUs trained a table on one of them.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import plan as planning
from experiments import pool
from experiments.run import main
from experiments.spec import load
from tdsclip import runstate
from tdsclip.train import checkpoint as ckpt

MINIMAL = [
    "train.epochs=1",
    "train.val_every=1",
    "train.batch_size=4",
    "train.micro_batch=2",
    "data.synthetic_videos_per_class=4",
]
ROWS = "Baseline,+ TD-Adapter"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the CPU layout on any machine (GPUs: the layout tests)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("TDSCLIP_CACHE", str(tmp_path / "cache"))
    return tmp_path


def final_plan(runs_dir: Path, overrides=MINIMAL, rows=ROWS):
    """The plan's final run ids (the synthetic data read, as the parallel executor does first)."""
    spec = load("table3")
    runs = planning.plan(spec, "smoke", rows=rows, overrides=overrides, runs_dir=runs_dir)
    planning.read_data(runs)
    return spec, planning.with_final_ids(runs, runs_dir)


# ----------------------------------------------------------------------------- what each job is given


def test_cpu_jobs_share_the_cores_and_never_outnumber_the_pending_rows():
    # a core or less each: the data is read in the training process (a worker would take turns with it)
    assert pool.layout(3, 3, [], 0, cores=2) == [pool.Slot((), 1, inline_data=True)] * 3
    assert pool.layout(2, 3, [], 0, cores=8) == [pool.Slot((), 4)] * 2
    assert pool.layout(4, 2, [], 0, cores=8) == [pool.Slot((), 4)] * 2, "2 rows: 2 jobs of 4 threads"
    assert pool.layout(1, 5, [], 0, cores=16) == [pool.Slot((), 16)]
    with pytest.raises(ValueError, match="--jobs 0: expected >= 1"):
        pool.layout(0, 3, [], 0, cores=2)


def test_gpu_jobs_get_their_own_gpus_and_a_row_of_k_gpus_gets_k():
    eight = [str(i) for i in range(8)]
    # paper rows train on 8 GPUs: one job takes all of them (DDP), eight jobs one each
    assert pool.layout(1, 3, eight, 8, cores=16) == [pool.Slot(tuple(eight), 2)]
    assert [s.gpus for s in pool.layout(8, 8, eight, 8, cores=16)] == [(g,) for g in eight]
    # three jobs on 8 GPUs: 2 GPUs each (the two left over idle), threads shared over 6 processes
    slots = pool.layout(3, 3, eight, 8, cores=12)
    assert [s.gpus for s in slots] == [("0", "1"), ("2", "3"), ("4", "5")] and {s.threads for s in slots} == {2}
    # more jobs than GPUs: one GPU each, as many jobs as GPUs; a CPU preset (0 GPUs per run) takes one
    assert [s.gpus for s in pool.layout(6, 6, ["4", "7"], 0, cores=8)] == [("4",), ("7",)]
    # a batch that 3 processes cannot split (128 = 16 x k x accumulation): 2 GPUs each instead
    slots = pool.layout(1, 1, ["0", "1", "2"], 8, cores=6, fits=lambda k: 128 % (16 * k) == 0)
    assert slots == [pool.Slot(("0", "1"), 3)]


def test_the_environment_each_process_starts_with():
    base = {"PATH": "/bin", "MLFLOW_RUN_ID": "parent", "RANK": "3", "WORLD_SIZE": "4", "MASTER_ADDR": "node1"}
    cpu = pool.child_environ(base, pool.Slot((), 1))
    assert cpu == {"PATH": "/bin", "OMP_NUM_THREADS": "1"}, "no inherited MLflow run or DDP place"
    single = pool.child_environ(base, pool.Slot(("5",), 4))
    assert single["CUDA_VISIBLE_DEVICES"] == "5" and single["OMP_NUM_THREADS"] == "4" and "RANK" not in single
    ranks = [pool.child_environ(base, pool.Slot(("2", "3"), 2), rank, port=29511) for rank in (0, 1)]
    for rank, env in enumerate(ranks):
        assert env["CUDA_VISIBLE_DEVICES"] == "2,3", "each rank sees the job's GPUs; LOCAL_RANK picks its own"
        assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"]) == (str(rank), str(rank), "2")
        assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("127.0.0.1", "29511")


def test_visible_gpus_and_the_gpus_flag():
    assert pool.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert pool.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert pool.visible_gpus({"CUDA_VISIBLE_DEVICES": "1,-1,0"}) == ["1"], "CUDA stops at an invalid entry"
    assert pool.visible_gpus({}, count=lambda: 3) == ["0", "1", "2"]
    # --gpus: indexes of the visible devices, mapped to what the children's CUDA_VISIBLE_DEVICES needs
    assert pool.parse_gpus("1,0", ["4", "6"]) == ["6", "4"]
    with pytest.raises(ValueError, match=r"^--gpus 0,2: '2' is not a GPU index; expected comma-separated indexes 0-1"):
        pool.parse_gpus("0,2", ["4", "6"])
    with pytest.raises(ValueError, match="GPU 0 is named twice"):
        pool.parse_gpus("0,0", ["4", "6"])
    with pytest.raises(ValueError, match="no CUDA device is visible"):
        pool.parse_gpus("0", [])


def test_gpus_on_a_machine_without_them_is_a_one_line_error(isolated, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # none visible, on any machine
    code = main(["table3", "--preset", "smoke", "--runs-dir", str(isolated / "runs"), "--jobs", "2", "--gpus", "0"])
    assert code == 2
    assert (
        capsys.readouterr().err
        == "experiments.run: --gpus 0: no CUDA device is visible here (CUDA_VISIBLE_DEVICES, torch)\n"
    )


def test_jobs_under_slurm_is_a_one_line_error_and_tables_that_train_nothing_say_so(isolated, capsys):
    """--jobs was silently ignored under Slurm and for tables that train nothing."""
    runs = str(isolated / "runs")
    assert main(["table3", "--preset", "smoke", "--runs-dir", runs, "--executor", "slurm", "--jobs", "2"]) == 2
    assert capsys.readouterr().err == (
        "experiments.run: --jobs and --gpus share this machine between rows (the local executor); "
        "under --executor slurm every row is a Slurm job of its own already: drop them\n"
    )
    assert main(["table13", "--runs-dir", runs, "--jobs", "3"]) == 0
    assert "note: table13 trains nothing (its rows are presets); --jobs 3 does not apply" in capsys.readouterr().out


# ----------------------------------------------------------------------------- real processes


def test_two_rows_at_once_one_failing_the_other_finishes(isolated, capsys, caplog):
    """The '+ TD-Adapter' row's folder holds a corrupt checkpoint (a disk error in an earlier run):
    that row fails, recorded as failed; the Baseline trains beside it and finishes; the summary and
    MLflow say so, and the report is built."""
    from mlflow.tracking import MlflowClient

    caplog.set_level(logging.INFO, "experiments")
    runs_dir = isolated / "runs"
    _, (baseline, td) = final_plan(runs_dir)
    (runs_dir / td.run_id).mkdir(parents=True)
    (runs_dir / td.run_id / ckpt.LATEST).write_bytes(b"not a checkpoint")
    code = main(["table3", "--preset", "smoke", "--runs-dir", str(runs_dir), "--rows", ROWS, "--jobs", "2", *MINIMAL])
    out, err = capsys.readouterr()
    lines = caplog.text  # the terminal's lines: one when a row starts, one when it ends
    assert code == 1, "a failed row fails the command"
    assert runstate.read_state(runs_dir / baseline.run_id).state == "finished"
    failed = runstate.read_state(runs_dir / td.run_id)
    assert failed.state == "failed" and failed.reason.startswith("CheckpointError: cannot read checkpoint")
    assert f"+ TD-Adapter: {failed.reason}" in out, "the summary names the failure"
    assert "Traceback" not in err + lines, err + lines
    assert "table3 [1/2] Baseline (seed 1024): finished in" in lines and "(CPU time " in lines
    assert "table3 [2/2] + TD-Adapter (seed 1024): failed after" in lines
    assert "Traceback" in (runs_dir / td.run_id / "train.log").read_text(), "the traceback is in the row's log"
    result = json.loads((runs_dir / baseline.run_id / "result.json").read_text())
    assert result["torch_threads"] == max(1, pool.cores() // 2), "the cores shared out, recorded with the result"
    one_core_each = pool.cores() // 2 <= 1
    assert result["config"]["data"]["num_workers"] == (0 if one_core_each else baseline.cfg.data.num_workers)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    (tracked,) = client.search_runs(
        [client.get_experiment_by_name("tdsclip").experiment_id], f"tags.run_id = '{baseline.run_id}'"
    )
    assert tracked.info.status == "FINISHED" and tracked.data.tags["table.table3"] == "Baseline"
    assert out.rstrip().endswith("table3.html"), "the report is built after the rows"


def test_ctrl_c_stops_every_row_with_a_checkpoint(isolated):
    """Ctrl-C (SIGINT to the parent only, as a terminal sends it to the foreground process, whose
    children here run in sessions of their own) reaches each row once: both checkpoint and stop."""
    runs_dir = isolated / "runs"
    longer = [*MINIMAL[1:], "train.epochs=200", "train.log_every=1"]
    _, planned = final_plan(runs_dir, longer)
    parent = subprocess.Popen(
        [sys.executable, "-m", "experiments.run", "table3", "--preset", "smoke", "--runs-dir", str(runs_dir)]
        + ["--rows", ROWS, "--jobs", "2", *longer],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        deadline = time.monotonic() + 240
        metrics = [runs_dir / p.run_id / "metrics.jsonl" for p in planned]
        while not all(m.exists() and m.stat().st_size for m in metrics):  # both are past their first step
            assert parent.poll() is None and time.monotonic() < deadline, parent.communicate()[1][-3000:]
            time.sleep(0.2)
        parent.send_signal(signal.SIGINT)
        out, err = parent.communicate(timeout=120)
    finally:
        parent.kill()
    assert "Traceback" not in err, err[-3000:]
    assert "SIGINT: 2 running row(s) checkpoint at their next step and exit; Ctrl-C again aborts them" in err
    assert err.count("stopped after") == 2
    for p in planned:
        state = runstate.read_state(runs_dir / p.run_id)
        assert (state.state, state.signal, state.resumable) == ("stopped", "SIGINT", True), p.row.name
        assert ckpt.load(runs_dir / p.run_id / ckpt.LATEST)["step"] >= 1
        assert "SIGINT: stopping at the next step boundary" in (runs_dir / p.run_id / "train.log").read_text()


def test_a_two_gpu_slot_runs_one_row_as_a_ddp_job(isolated, monkeypatch):
    """A row given two GPUs starts two ranks with torchrun's variables; without CUDA they meet over
    gloo on the CPU, which exercises the same launch: one run, world size 2, one log per rank."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    gpus = tuple(pool.visible_gpus()[:2]) or ("0", "1")
    if len(gpus) < 2:
        pytest.skip("one GPU here: a two-GPU job needs two (without CUDA the test runs on the CPU)")
    runs_dir = isolated / "runs"
    spec, (planned,) = final_plan(runs_dir, rows="Baseline")
    tags = planning.record_tags(spec, planned, "smoke", MINIMAL)
    ended = pool.run_rows("table3", "smoke", [(planned, tags)], runs_dir, [pool.Slot(gpus, 1)])
    assert ended[planned.run_id].status == "finished", (runs_dir / planned.run_id / "train.log").read_text()[-3000:]
    result = json.loads((runs_dir / planned.run_id / "result.json").read_text())
    assert result["world_size"] == 2 and result["torch_threads"] == 1
    assert (runs_dir / planned.run_id / "train.rank1.log").exists()
