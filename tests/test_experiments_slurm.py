"""A table on the real single-node Slurm: submitted as arrays, followed with --status, reported."""

import json

import pytest
from slurm_cluster import wait

from experiments.run import main

pytestmark = pytest.mark.slurm

ROWS = ["--rows", "Baseline,+ TD-Adapter"]
SMALL = ["train.epochs=2", "data.synthetic_videos_per_class=8", "train.batch_size=8", "train.micro_batch=8"]


def test_a_smoke_table_on_slurm_lands_in_records_mlflow_and_the_report(slurm_cluster, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    runs = tmp_path / "runs"
    common = [
        "table3",
        "--preset",
        "smoke",
        "--runs-dir",
        str(runs),
        *ROWS,
        *SMALL,
        f"data.cache_dir={slurm_cluster.cache}",
    ]
    assert main([*common, "--executor", "slurm", "--profile", "local", "--dry-run"]) == 0
    assert "#SBATCH" in capsys.readouterr().out
    assert main([*common, "--executor", "slurm", "--profile", "local"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    jobs = [line.split()[0] for line in printed]
    assert len(jobs) == 3 and "report" in printed[-1]
    states = wait(jobs, timeout=400)
    assert all(state.state == "COMPLETED" for state in states.values()), states
    assert main([*common, "--status"]) == 0
    status = capsys.readouterr().out
    assert status.count("COMPLETED") == 3 and "epoch 2" in status, status
    record = json.loads((runs / "slurm" / "table3-smoke" / "jobs.json").read_text())
    for row in record["rows"]:
        assert json.loads((runs / row["run_id"] / "result.json").read_text())["status"] == "FINISHED"
    client = MlflowClient(slurm_cluster.mlflow_uri)
    tagged = client.search_runs(
        [client.get_experiment_by_name("tdsclip").experiment_id], filter_string="tags.`table.table3` = 'Baseline'"
    )
    assert {r.data.tags["run_id"] for r in tagged} >= {record["rows"][0]["run_id"]}
    assert main([*common, "--dry-run"]) == 0
    assert capsys.readouterr().out.count(" finished ") == 2, "the table's rows are done: a re-run submits nothing"
