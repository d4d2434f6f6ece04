"""The specs and the planner: every table expands and dry-runs in every preset, without torch."""

import json
import subprocess
import sys

import pytest

from experiments import plan as planning
from experiments._reference import read
from experiments.cost import estimate, videos
from experiments.flops import needed
from experiments.run import main
from experiments.spec import NAMES, SpecError, load
from tdsclip import measure_cache
from tdsclip.presets import PRESETS, resolve


@pytest.fixture(autouse=True)
def no_locations(monkeypatch, tmp_path):
    """No user locations file and no dataset variables: plans must still print."""
    monkeypatch.setenv("TDSCLIP_LOCATIONS", str(tmp_path / "none.toml"))
    monkeypatch.setenv("TDSCLIP_CACHE", str(tmp_path / "cache"))
    for name in list(__import__("os").environ):
        if name.startswith(("TDSCLIP_SS", "TDSCLIP_K400", "TDSCLIP_WEIGHTS")):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("name", NAMES)
def test_every_spec_dry_runs_in_every_preset(name, preset, capsys, tmp_path):
    assert main([name, "--dry-run", "--preset", preset, "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    spec = load(name)
    assert spec.title in out
    for row in spec.rows:
        assert row.name in out
    if spec.kind == "measure":  # no training: what each model measures (tests/test_cli.py)
        assert "GFLOPs/view" in out and "?" not in out.split("\n\n")[1]
    elif spec.rows:
        assert (
            ("GPU-h" if preset != "smoke" else "CPU-h") in out and "total" in out and "?" not in out.split("total")[0]
        )


def test_the_dry_run_imports_neither_torch_nor_mlflow(tmp_path):
    code = (
        "import sys; from experiments.run import main; "
        f"main(['table1', '--dry-run', '--runs-dir', {str(tmp_path)!r}]); "
        "bad = [m for m in ('torch', 'mlflow') if m in sys.modules]; assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "TDS-CLIP-L/14 16f SSv2" in result.stdout and "provisional" in result.stdout
    assert "TDSCLIP_SSV2_ROOT" in result.stdout, "the plan names the variable to set"


def test_a_run_shared_by_several_tables_has_one_id():
    def rid(name, row):
        return planning.plan(load(name), "paper", rows=row)[0].run_id

    full = rid("table3", "+ SME-Adapter")
    assert full == rid("table4", "5") == rid("table5", "1.0 / 1.0") == rid("table6", "Pool") == rid("table7", "k=3")
    assert (
        full
        == rid("table8", "320")
        == rid("table9", "1-12 + SME")
        == rid("table11", "Temporal")
        == rid("fig5", "with SME")
    )
    assert full == rid("table1", "TDS-CLIP-B/16 8f SSv1"), "Table I's B/16 8f SSv1 row is the ablations' full model"
    assert rid("table3", "+ TD-Adapter") == rid("table4", "1") == rid("table9", "1-12")
    assert len({rid("table3", r.name) for r in load("table3").rows}) == 3


def test_shared_rows_in_one_plan_are_counted_once():
    runs = planning.plan(load("table9"), "paper", seeds=2)
    assert [p.seed for p in runs[:2]] == [1024, 1025]
    assert len({p.run_id for p in runs}) == len(runs)
    smoke = planning.plan(load("table8"), "smoke")
    assert not any(p.shared_with for p in smoke)


def test_seeds_give_distinct_runs_and_the_cli_override_wins():
    runs = planning.plan(load("table3"), "paper", rows="Baseline", seeds=3, overrides=["train.epochs=2"])
    assert [p.cfg.train.seed for p in runs] == [1024, 1025, 1026]
    assert all(p.cfg.train.epochs == 2 and p.cfg.model.temporal == "conv3d" for p in runs)
    assert len({p.run_id for p in runs}) == 3


def test_smoke_replaces_the_dataset_and_backbone_but_keeps_the_ablation():
    (run,) = planning.plan(load("table11"), "smoke", rows="Cross Path")
    assert run.cfg.data.dataset == "synthetic" and run.cfg.model.backbone == "tdsclip-tiny"
    assert run.cfg.model.sme_placement == "cross"
    assert "data.dataset=ssv1" in run.replaced


def test_cost_follows_the_formula():
    cfg = resolve("paper", ["data.dataset=ssv1"])
    entry = {"gflops_per_view": 180.0, "backbone_gflops_per_view": 140.0, "backbone_gets_gradients": False}
    cost = estimate(cfg, entry, 8, 100.0)
    train_videos, val_videos = videos(cfg)
    assert (train_videos, val_videos) == (86017, 11522)
    per_clip = 140e9 + 3 * 40e9
    expected = 2 * (train_videos * 2 * 40 * per_clip + val_videos * 180e9 * (40 + 6)) / 100e12 / 3600
    assert cost.hours == pytest.approx(expected)
    half = estimate(resolve("paper", ["data.dataset=ssv1", "data.train_fraction=0.5"]), entry, 8, 100.0)
    assert half.train_pflop == pytest.approx(cost.train_pflop / 2, rel=1e-4)


def test_flops_cache_covers_every_row_and_matches_the_model():
    entries = measure_cache.load(planning.FLOPS_CACHE)
    configs = needed()
    assert set(configs) <= set(entries), "run python -m experiments.flops"
    checked = [k for k, cfg in configs.items() if cfg.model.backbone == "tdsclip-tiny"][:6]
    checked += [k for k, cfg in configs.items() if cfg.model.backbone != "tdsclip-tiny"][:2]
    for key in checked:
        assert measure_cache.measure_entry(configs[key]) == entries[key], key


@pytest.mark.parametrize(
    "argv, message",
    [
        (["table33", "--dry-run"], "unknown table 'table33'; did you mean 'table3'?"),
        (["results", "--dry-run"], "unknown table 'results'; expected one of table1"),
        (["table3", "--rows", "Basline", "--dry-run"], "table3 has no row 'Basline'; expected one of: Baseline"),
        (["table3", "--dry-run", "model.side_widht=3"], "did you mean 'model.side_width'"),
        (["table3", "--dry-run", "--preset", "smok"], "unknown preset 'smok'"),
        (
            ["table3", "--dry-run", "train.micro_batch=1", "data.num_sample=1"],
            "train.micro_batch=1 x data.num_sample=1 is one clip per forward on each process",
        ),
    ],
)
def test_bad_names_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cells_that_lost_their_separators_are_read_back():
    assert read("832", "0.26") == ("8x3x2", "0.2x6")
    assert read("32310", "0.630") == ("32x3x10", "0.6x30")
    assert read("1631", "0.71") == ("16x3x1", "0.71 (as printed)")


def test_list_names_all_fifteen(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES) and len(NAMES) == 15


def test_table13_is_rendered_from_the_presets(capsys):
    assert main(["table13"]) == 0
    out = capsys.readouterr().out
    assert "0.0001" in out and "3 spatial 4 temporal" in out and "rand-m7-n4-mstd0.5-inc1" in out


def test_spec_errors_are_value_errors():
    with pytest.raises(SpecError):
        load("fig7")
    assert json.dumps([r.paper for r in load("table5").rows])
