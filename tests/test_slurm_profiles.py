"""Slurm dispatch without a cluster: profiles and their errors, sbatch parameters, rank arithmetic
for several nodes, the code snapshot the jobs import."""

import json
import subprocess

import pytest
from helpers import REPO, run_python

from slurm.job import dist_environ, master_port
from slurm.profiles import ProfileError, Resources, gpus_per_job, load_profile, sbatch_parameters
from slurm.snapshot import RECORD, job_setup, take_snapshot
from slurm.submit import _expand, _gpus, sbatch_script


def test_profiles_are_selected_by_name_and_overridden_by_key_value():
    a100 = load_profile("a100", ["partition=gpu", "account=proj42", "timeout_min=2880", "setup=module load cuda"])
    assert (a100.gpus_per_node, a100.tasks_per_node, a100.signal, a100.stop_signal) == (8, 8, "USR2", "SIGUSR2")
    assert (a100.partition, a100.account, a100.timeout_min, a100.setup) == (
        "gpu",
        "proj42",
        2880,
        ("module load cuda",),
    )
    local = load_profile("local")
    assert (local.gpus_per_node, local.tasks_per_node) == (0, 1)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["partiton=gpu"], "profile a100: unknown profile key 'partiton'; did you mean 'partition'?"),
        (["mem_per_gpu_gb=80"], "profile a100: unknown profile key 'mem_per_gpu_gb'; did you mean 'mem_per_task_gb'?"),
        (["gpus_per_node=eight"], "profile a100: gpus_per_node: expected int, got 'eight'"),
        (["exclusive=maybe"], "profile a100: exclusive: expected bool, got 'maybe'"),
        (["tasks_per_node=4"], "profile a100: tasks_per_node=4: expected one task per GPU, i.e. 8"),
        (["signal=SIGUSR2"], "profile a100: signal: expected USR2 or USR1, got 'SIGUSR2'"),
        (["signal=TERM"], "profile a100: signal: expected USR2 or USR1, got 'TERM'"),
        (["timeout_min=4"], "profile a100: signal_delay_s=300: expected between 0 and the time limit (240 s)"),
    ],
)
def test_a_bad_override_is_a_one_line_error_naming_it(overrides, message):
    with pytest.raises(ProfileError) as error:
        load_profile("a100", overrides)
    assert str(error.value) == message


def test_the_user_file_changes_profiles_and_adds_new_ones(tmp_path, monkeypatch):
    path = tmp_path / "slurm.toml"
    path.write_text(
        '[a100]\npartition = "gpu"\nqos = "high"\n\n[h100]\nconstraint = "h100"\ncpus_per_task = 12\n'
        '\n[tiny]\nbase = "local"\narray_parallelism = 1\n'
    )
    monkeypatch.setenv("TDSCLIP_SLURM_PROFILES", str(path))
    assert (load_profile("a100").partition, load_profile("a100").qos) == ("gpu", "high")
    h100 = load_profile("h100", ["qos=normal"])
    assert (h100.name, h100.gpus_per_node, h100.constraint, h100.cpus_per_task, h100.qos) == (
        "h100",
        8,
        "h100",
        12,
        "normal",
    )
    assert (load_profile("tiny").gpus_per_node, load_profile("tiny").array_parallelism) == (0, 1)
    with pytest.raises(ProfileError, match=r"^unknown Slurm profile 'a10'; expected one of a100, local, h100, tiny"):
        load_profile("a10")
    path.write_text('[a100]\npartion = "gpu"\n')
    with pytest.raises(
        ProfileError,
        match=rf"^profiles file {path} \[a100\]: unknown profile key 'partion'; did you mean 'partition'\?$",
    ):
        load_profile("a100")
    path.write_text('[new]\nbase = "v100"\n')
    with pytest.raises(ProfileError, match=r"\[new\]: unknown base 'v100'; expected one of a100, local$"):
        load_profile("a100")


def test_sbatch_parameters_ask_for_whole_a100_nodes_and_the_signal_before_the_limit(tmp_path):
    profile = load_profile("a100", ["partition=gpu", "account=proj42", "qos=normal", "constraint=a100_80gb"])
    params = sbatch_parameters(profile, 2, Resources("ViT-L-14", timeout_min=2880))
    assert params == {
        "job_name": "tdsclip-ViT-L-14",
        "nodes": 2,
        "ntasks_per_node": 8,
        "gpus_per_node": 8,
        "cpus_per_task": 16,
        "mem": f"{8 * 100 * 1024}M",
        "time": 2880,
        "signal_delay_s": 300,
        "array_parallelism": 8,
        "additional_parameters": {"signal": "USR2@300"},
        "setup": [],
        "partition": "gpu",
        "account": "proj42",
        "qos": "normal",
        "constraint": "a100_80gb",
    }
    script = sbatch_script(profile, 2, Resources("ViT-L-14", timeout_min=2880), 12, tmp_path)
    for line in (
        "--array=0-11%8",
        "--nodes=2",
        "--ntasks-per-node=8",
        "--gpus-per-node=8",
        "--cpus-per-task=16",
        "--signal=USR2@300",
        "--time=2880",
        "--partition=gpu",
        "--account=proj42",
        "--constraint=a100_80gb",
    ):
        assert f"#SBATCH {line}\n" in script, line
    assert "tdsclip-ViT-B-16" in str(sbatch_parameters(profile, 1, Resources("ViT-B-16")))
    assert gpus_per_job(profile, 2) == 16 and gpus_per_job(load_profile("local"), 1) == 0
    with pytest.raises(ProfileError, match="nodes: expected >= 1, got 0"):
        sbatch_parameters(profile, 0, Resources("x"))
    with pytest.raises(
        ProfileError, match=r"^x: time limit 5 min leaves no time before the signal \(300 s before the limit\)$"
    ):
        sbatch_parameters(profile, 1, Resources("x", timeout_min=5))


def slurm_task(procid: int, **extra: str) -> dict[str, str]:
    """What Slurm sets for task `procid` of 2 nodes x 8 tasks (block distribution)."""
    return {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "gpu[007-008]",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NTASKS": "16",
        "SLURM_PROCID": str(procid),
        "SLURM_LOCALID": str(procid % 8),
        "SLURM_NODEID": str(procid // 8),
        **extra,
    }


def test_rank_and_world_of_every_task_of_a_two_node_job():
    tasks = [dist_environ(slurm_task(p)) for p in range(16)]
    assert [t["RANK"] for t in tasks] == [str(p) for p in range(16)]
    assert {t["WORLD_SIZE"] for t in tasks} == {"16"} and {t["LOCAL_WORLD_SIZE"] for t in tasks} == {"8"}
    assert [t["LOCAL_RANK"] for t in tasks] == [str(p % 8) for p in range(16)]
    assert {t["MASTER_ADDR"] for t in tasks} == {"gpu007"}, "rendezvous on the first node"
    assert len({t["MASTER_PORT"] for t in tasks}) == 1, "every task agrees on the port"
    assert dist_environ(slurm_task(3, SLURM_RESTART_COUNT="1"))["MASTER_PORT"] != tasks[3]["MASTER_PORT"]
    assert 20000 <= master_port("4242", 0) < 60000
    with pytest.raises(RuntimeError, match=r"SLURM_JOB_NODELIST='gpu007': expected 2 node\(s\)"):
        dist_environ(slurm_task(0, SLURM_JOB_NODELIST="gpu007"))
    with pytest.raises(RuntimeError, match="expected the same number of tasks on every node"):
        dist_environ(slurm_task(0, SLURM_NTASKS="15"))
    with pytest.raises(RuntimeError, match=r"SLURM_PROCID=None: expected an integer from Slurm"):
        dist_environ({k: v for k, v in slurm_task(0).items() if k != "SLURM_PROCID"})


def test_sacct_fields_pending_array_members_and_gpus():
    assert _expand("12_[3-5,8%2]") == ["12_3", "12_4", "12_5", "12_8"]
    assert _expand("12_7") == ["12_7"] and _expand("13") == ["13"]
    assert _gpus("billing=128,cpu=128,gres/gpu=8,mem=800G,node=1") == 8 and _gpus("cpu=1,mem=2G,node=1") == 0


def test_the_snapshot_holds_the_tree_and_jobs_import_it_not_the_working_directory(tmp_path):
    snapshot = take_snapshot(tmp_path / "code")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert snapshot.git_sha == head and json.loads((snapshot.path / RECORD).read_text())["git_sha"] == head
    assert (snapshot.path / "tdsclip" / "config.py").read_bytes() == (REPO / "tdsclip" / "config.py").read_bytes()
    assert not (snapshot.path / ".git").exists() and not (snapshot.path / ".venv").exists()
    assert snapshot.tags()["git_sha"] == head and snapshot.tags()["code_snapshot"] == str(snapshot.path)
    lines = job_setup(snapshot)
    # What the batch script does, in the repository as working directory: the snapshot wins, the
    # start-up hook (.pth) included.
    code = "import tdsclip, tdsclip.config, slurm.job; print(tdsclip.__file__, slurm.job.__file__, sep='\\n')"
    env = {"PYTHONPATH": str(snapshot.path), "PYTHONSAFEPATH": "1"}
    assert lines == [f'export PYTHONPATH={snapshot.path}"${{PYTHONPATH:+:$PYTHONPATH}}"', "export PYTHONSAFEPATH=1"]
    done = run_python(code, **env)
    assert done.returncode == 0, done.stderr
    assert all(line.startswith(str(snapshot.path)) for line in done.stdout.split()), done.stdout


LATE_SIGNAL = """
import os, signal, sys, time
sys.path.insert(0, "tests")
import tdsclip.train.data, train_fixture
tdsclip.train.data.build_run_data = train_fixture.build  # in-memory clips; job, trainer and signals are real
from slurm.job import TrainJob
from tdsclip.config import to_dict

def submitits_handler(signum, frame):  # what submitit's checkpoint_and_try_requeue does, in short
    print("requeued", flush=True)
    os._exit(255)

signal.signal(signal.SIGUSR2, submitits_handler)
config = to_dict(train_fixture.tiny_config("train.epochs=1"))
result = TrainJob(config, "test", sys.argv[1] if len(sys.argv) > 1 else os.environ["RUNS"])()
print("top-1", result["metrics"]["test_top1"], flush=True)
os.kill(os.getpid(), signal.SIGUSR2)  # the time limit's warning, just after the run completed

class Late:
    def __del__(self):  # ... or while Python shuts down (it resets its handlers to the default)
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(0.2)

late = Late()
"""


def test_a_stop_signal_after_the_run_completed_neither_requeues_it_nor_kills_the_task(tmp_path):
    """Slurm's warning signal can come after the run has finished: while submitit pickles the
    result or Python shuts down. It must not requeue a finished run, nor kill the task (Python
    resets its handlers to the default at exit, and USR2's default ends the process: the job is
    then FAILED with exit code 12 although its run completed)."""
    slurm = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": "7",
        "SLURM_PROCID": "0",
        "SLURM_NTASKS": "1",
        "SLURM_LOCALID": "0",
    }
    slurm |= {"SLURM_JOB_NODELIST": "localhost", "SLURM_JOB_NUM_NODES": "1", "SLURM_RESTART_COUNT": "0"}
    done = run_python(
        LATE_SIGNAL, RUNS=str(tmp_path / "runs"), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db", **slurm
    )
    assert "top-1" in done.stdout, done.stderr[-2000:]
    assert "requeued" not in done.stdout, "a finished run was requeued"
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
