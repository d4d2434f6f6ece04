"""Every table and figure runs in the smoke preset at minimal size, shared runs are trained once,
the runs are tagged in MLflow, and a re-run trains nothing."""

import json

import pytest

from experiments.run import main
from experiments.spec import NAMES
from tdsclip.track import table_run_key

pytestmark = pytest.mark.slow  # trains every table and figure in the smoke preset

MINIMAL = [
    "train.epochs=1",
    "train.val_every=1",
    "train.batch_size=4",
    "train.micro_batch=4",
    "data.synthetic_videos_per_class=4",
]
ROWS = {
    "table1": "TDS-CLIP-B/16 8f SSv1",
    "table2": "TDS-CLIP-B/16 8f",
    "table3": "+ SME-Adapter",
    "table4": "3",
    "table5": "1.0 / 1.0",
    "table6": "Pool",
    "table7": "k=3",
    "table8": "128",
    "table9": "1-12 + SME",
    "table11": "Temporal",
    "table12": "Baseline,w/ SME-Adapter",
    "fig5": "without SME,with SME",
    "fig6": "TDS-CLIP-B/16 5%",
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    mp.setenv("TDSCLIP_CACHE", str(root / "cache"))
    outputs = {}
    try:
        for name in NAMES:
            rows = ["--rows", ROWS[name]] if name in ROWS else []
            code = main([name, "--preset", "smoke", "--runs-dir", str(root / "runs"), *rows, *MINIMAL])
            outputs[name] = code
        yield root, outputs
    finally:
        mp.undo()


def _runs(root):
    return sorted(p.parent.name for p in (root / "runs").glob("*/result.json"))


def test_every_table_and_figure_runs_in_smoke(smoke):
    root, codes = smoke
    assert codes == {name: 0 for name in NAMES}
    # distinct trainings: the full model (shared by tables 3, 4, 6-9, 11 and fig5), Table I's and
    # II's rows (other test views), Table V's (beta 1 where smoke uses 2), fig6's 5% subset and
    # fig5's model without SME
    runs = _runs(root)
    assert len(runs) == 6, runs
    for rid in runs:
        result = json.loads((root / "runs" / rid / "result.json").read_text())
        assert result["status"] == "FINISHED" and result["metrics"]["test_videos"] == 6
    measurements = [json.loads(p.read_text()) for p in (root / "runs" / "measurements").glob("*.json")]
    assert len(measurements) == 2 and all(m["memory_bytes"] > 0 for m in measurements)


def test_a_rerun_trains_nothing_and_reports_finished(smoke, capsys):
    root, _ = smoke
    before = _runs(root)
    rows = ["--rows", "+ TD-Adapter,+ SME-Adapter"]  # fig5 trained the first, the ablations the second
    assert main(["table3", "--preset", "smoke", "--runs-dir", str(root / "runs"), *rows, *MINIMAL]) == 0
    assert "training" not in capsys.readouterr().err
    assert _runs(root) == before
    assert main(["table3", "--preset", "smoke", "--runs-dir", str(root / "runs"), "--dry-run", *rows, *MINIMAL]) == 0
    assert capsys.readouterr().out.count(" finished ") == 2


def test_runs_are_tagged_with_their_tables_in_mlflow(smoke):
    from mlflow.tracking import MlflowClient

    root, _ = smoke
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tdsclip").experiment_id])
    by_id = {r.data.tags.get("run_id"): r for r in runs if r.data.tags.get("run_id")}
    parents = {r.data.tags["table_run"]: r for r in runs if "table_run" in r.data.tags}
    # one parent per (table, preset, override set): these runs had the MINIMAL overrides
    assert {table_run_key(name, "smoke", MINIMAL) for name in ("table3", "table11", "fig6")} <= set(parents)
    full = next(r for r in by_id.values() if r.data.tags.get("table.table3") == "+ SME-Adapter")
    assert full.data.tags["table.table11"] == "Temporal" and full.data.tags["table.table4"] == "3"
    assert full.data.tags["mlflow.parentRunId"] in {p.info.run_id for p in parents.values()}


def test_fig5_saves_both_rows_maps_on_the_same_clips(smoke):
    import numpy as np

    root, _ = smoke
    (folder,) = (root / "runs" / "figures").glob("fig5-smoke-*")
    summary = json.loads((folder / "summary.json").read_text())
    arrays = np.load(folder / "maps.npz")
    assert set(summary["rows"]) == {"without SME", "with SME"}  # which has more mass: tests/test_learning.py
    for row in summary["rows"].values():
        assert 0 < row["box_mass"] < 1 and arrays[row["array"]].shape == (24, 8, 64, 64)
    assert arrays["frames"].shape == (24, 8, 64, 64, 3) and arrays["boxes"].shape == (24, 8, 4)


def test_seeds_give_mean_and_spread(smoke, capsys):
    root, _ = smoke
    args = ["table8", "--preset", "smoke", "--rows", "128", "--seeds", "2", "--runs-dir", str(root / "runs"), *MINIMAL]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "128: Top-1 (%)" in out and "over 2 seeds" in out
