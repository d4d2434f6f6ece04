"""The command line a researcher expects (issue 20.2): the list with titles, "did you mean", every
missing location at once with what to set, `--help` without torch or MLflow, a measuring table's
plan that shows what it measures, tables that fit the terminal, and the smoke note the right way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks.commands import commands
from experiments.render import grid
from experiments.run import main
from experiments.spec import NAMES, load
from tdsclip import locations
from tdsclip.config import ConfigError
from tdsclip.presets import resolve


@pytest.fixture(autouse=True)
def no_locations(monkeypatch, tmp_path):
    """No user locations file and no dataset variables; output not to a terminal unless a test says so."""
    monkeypatch.setenv("TDSCLIP_LOCATIONS", str(tmp_path / "none.toml"))
    monkeypatch.setenv("TDSCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")  # should a run start after all
    monkeypatch.delenv("COLUMNS", raising=False)
    for name in list(os.environ):
        if name.startswith(("TDSCLIP_SS", "TDSCLIP_K400", "TDSCLIP_WEIGHTS")):
            monkeypatch.delenv(name)


# ----------------------------------------------------------------------------- names


def test_no_name_lists_the_tables_and_figures_with_their_titles(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        line = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert load(name).title in line


def test_a_misspelt_name_gets_did_you_mean_in_one_line(capsys):
    assert main(["tabel3", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown table 'tabel3'; did you mean 'table3'?" in err
    assert main(["figure5"]) == 2
    assert "did you mean 'fig5'?" in capsys.readouterr().err


# ----------------------------------------------------------------------------- locations


def test_every_missing_location_is_reported_at_once_with_its_variable_and_key(tmp_path):
    cfg = resolve("paper", ["data.dataset=ssv2"])
    file = tmp_path / "none.toml"
    with pytest.raises(locations.LocationsError) as caught:
        locations.fill(cfg, require_weights=True, environ={"TDSCLIP_LOCATIONS": str(file)})
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and str(file) in message
    for env, key in [
        ("TDSCLIP_SSV2_ROOT", "[datasets.ssv2] root"),
        ("TDSCLIP_SSV2_TRAIN", "[datasets.ssv2] train"),
        ("TDSCLIP_SSV2_VAL", "[datasets.ssv2] val"),
        ("TDSCLIP_SSV2_LABELS", "[datasets.ssv2] labels"),
        ("TDSCLIP_WEIGHTS_VIT_B_16", '[weights] "ViT-B-16"'),
    ]:
        assert f"{env} or {key}" in message
    assert {m.config_key for m in caught.value.missing} == {
        "data.root",
        "data.train_annotations",
        "data.val_annotations",
        "data.labels",
        "model.weights",
    }
    assert isinstance(caught.value, ConfigError)


def test_a_plan_lists_all_its_missing_locations_once(capsys, tmp_path):
    assert main(["table1", "--dry-run", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for dataset in ("SSV1", "SSV2"):
        for part in ("ROOT", "TRAIN", "VAL", "LABELS"):
            assert out.count(f"TDSCLIP_{dataset}_{part} ") == 1, (dataset, part)
    assert out.count("TDSCLIP_WEIGHTS_VIT_B_16") == 1 and out.count("TDSCLIP_WEIGHTS_VIT_L_14") == 1
    assert '[weights] "ViT-L-14"' in out and "[datasets.ssv2] train" in out


def test_running_without_locations_names_what_to_set_as_tdsclip_train_does(capsys, monkeypatch, tmp_path):
    """The bug: experiments.run trained each row and failed it with 'data.train_annotations is empty',
    where tdsclip.train names the variable and the file key."""
    from tdsclip.train.__main__ import main as train

    frames = tmp_path / "frames"
    frames.mkdir()
    monkeypatch.setenv("TDSCLIP_SSV1_ROOT", str(frames))
    argv = ["--rows", "Baseline", "model.weights=random", "--runs-dir", str(tmp_path / "runs")]
    assert main(["table3", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert train(["data.dataset=ssv1", "model.weights=random", "--runs-dir", str(tmp_path / "runs")]) == 2
    train_err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is empty" not in err
    for hint in ("TDSCLIP_SSV1_TRAIN or [datasets.ssv1] train", "TDSCLIP_SSV1_VAL", "TDSCLIP_SSV1_LABELS"):
        assert hint in err and hint in train_err
    assert "TDSCLIP_SSV1_ROOT" not in err, "the root is set"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "nothing was started"


# ----------------------------------------------------------------------------- --help


HEAVY = ("torch", "mlflow")
PROBE = """
import json, runpy, sys
before = set(sys.modules)
module = sys.argv[1]
sys.argv = [module, *sys.argv[2:]]
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
except SystemExit:
    pass
added = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in {heavy!r})
print("\\nLOADED " + json.dumps(added), file=sys.stderr)
"""


def _loaded_by(*argv: str) -> list[str]:
    """The torch / mlflow modules running `python -m argv...` loads beyond what the interpreter's
    start (with the environment's .pth files) already has."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=set(HEAVY)), *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next((ln for ln in result.stderr.splitlines() if ln.startswith("LOADED ")), None)
    assert line is not None, result.stderr
    assert "usage" in result.stdout.lower() or "python -m" in result.stdout, result.stdout
    return json.loads(line.removeprefix("LOADED "))


ISSUE_COMMANDS = {
    "experiments.run",
    "sweeps.run",
    "reports.build",
    "tdsclip.train",
    "tdsclip.evaluate",
    "tdsclip.data",
    "tdsclip.measure",
    "tdsclip.track",
    "tdsclip.model.released",
    "benchmarks.run",
}


def test_the_commands_are_found():
    found = set(commands())
    assert ISSUE_COMMANDS <= found, ISSUE_COMMANDS - found
    assert not any(c.startswith("tests") for c in found)


@pytest.mark.parametrize("command", commands())
def test_help_imports_neither_torch_nor_mlflow(command):
    loaded = _loaded_by(command, "--help")
    assert not loaded, f"python -m {command} --help imports {sorted({m.split('.')[0] for m in loaded})}"


@pytest.mark.parametrize(
    "argv", [("tdsclip.model.released", "convert", "--help"), ("tdsclip.data", "extract", "--help")]
)
def test_subcommand_help_imports_neither_torch_nor_mlflow(argv):
    assert not _loaded_by(*argv)


# ----------------------------------------------------------------------------- what a plan prints


def test_a_measuring_table_shows_what_it_measures_not_training_hours(capsys, tmp_path):
    assert main(["table12", "--dry-run", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "GPU-h" not in out and "GPU-hours" not in out and "epochs" not in out
    assert "no training" in out and "params" in out and "GFLOPs" in out and "memory" in out
    assert "not measured" in out
    assert "TDSCLIP_" not in out, "measuring needs neither data nor weights"
    for row in load("table12").rows:
        assert row.name in out


def test_long_tables_fit_the_terminal(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["table13", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    words = " ".join(out.split())
    for cell in ("rand-m7-n4-mstd0.5-inc1", "k400 ViT-L-14", "RandomResizedCrop", "1e-3 | 1e-4"):
        assert cell in words or cell.replace(" ", "") in out.replace("\n", "").replace(" ", "")
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["table1", "--dry-run"]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 80


def test_a_grid_folds_its_columns_and_wraps_its_cells_to_the_width():
    header = ["name", *(f"column {i}" for i in range(6))]
    rows = [["first row", *(f"a cell with several words number {i}" for i in range(6))], ["second", *"abcdef"]]
    wide = grid(header, rows, width=None)
    assert len(wide.splitlines()) == 4, "no width: one line per row"
    narrow = grid(header, rows, width=60)
    assert max(len(line) for line in narrow.splitlines()) <= 60
    for i in range(6):
        assert f"column {i}" in narrow
        assert "number" in narrow
    assert narrow.count("first row") >= 2, "each fold repeats the first column"


def test_output_to_a_file_keeps_one_line_per_row(capsys):
    """Not a terminal and no COLUMNS: rows stay whole, for grep."""
    assert main(["table13", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert any(len(line) > 300 for line in out.splitlines())


def test_the_smoke_note_says_what_runs_in_place_of_the_spec(capsys, tmp_path):
    assert main(["table3", "--dry-run", "--preset", "smoke", "--runs-dir", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "decides data.dataset=ssv1" not in out
    assert (
        "preset smoke runs data.dataset=synthetic, model.backbone=tdsclip-tiny in place of the spec's "
        "data.dataset=ssv1, model.backbone=ViT-B-16" in out
    )
    from reports.build import main as build

    out_dir = tmp_path / "out"
    assert (
        build(["table3", "--preset", "smoke", "--runs-dir", str(tmp_path), "--out", str(out_dir), "--no-figures"]) == 0
    )
    report = " ".join((out_dir / "table3.md").read_text().split())
    assert "decides data.dataset=ssv1" not in report
    assert "preset smoke runs data.dataset=synthetic, model.backbone=tdsclip-tiny in place of the spec's" in report
