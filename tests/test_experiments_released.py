"""experiments.run table1 --released: Table I's rows evaluated from released checkpoints, through
the real command, with the authors'-format fixture (tests/fixtures/released/): a row with a file is
evaluated and recorded as a run of its own kind, one without is named with what to set while the
others run, a file that does not fit its row is refused before anything is evaluated, and the dry
run shows what the evaluation alone costs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments.run import main
from tdsclip.identity import file_sha256
from tdsclip.locations import released_checkpoint, released_variable
from tdsclip.runstate import read_state
from tdsclip.track import table_run_key

FIXTURE = Path(__file__).parent / "fixtures" / "released" / "tiny-authors-checkpoint.pt"
B16_8F, B16_16F = "TDS-CLIP-B/16 8f SSv1", "TDS-CLIP-B/16 16f SSv1"
B16_8F_VARIABLE = "TDSCLIP_RELEASED_TDS_CLIP_B_16_8F_SSV1"
ROWS = ["--rows", f"{B16_8F},{B16_16F}"]
SMOKE = [
    "--preset",
    "smoke",
    "model.backbone=tdsclip-authors-tiny",  # the row expects the fixture's tiny tower, not smoke's
    "data.synthetic_videos_per_class=4",
]


def six_classes(path: Path) -> Path:
    """The fixture with its classifier cut to the smoke set's 6 classes, still in the authors'
    format (epoch, model_state_dict, optimizer_state_dict)."""
    saved = torch.load(FIXTURE, map_location="cpu", weights_only=True)
    state = dict(saved["model_state_dict"])
    state["fc.weight"], state["fc.bias"] = state["fc.weight"][:6].clone(), state["fc.bias"][:6].clone()
    torch.save({**saved, "model_state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """One evaluation through the real command: B/16 8f has a file (named in the locations file),
    B/16 16f none."""
    root = tmp_path_factory.mktemp("released")
    checkpoint = six_classes(root / "sthv1_b16_f8.pt")
    locations = root / "locations.toml"
    locations.write_text(f'[released]\n"{B16_8F}" = "{checkpoint}"\n')
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    mp.setenv("TDSCLIP_CACHE", str(root / "cache"))
    mp.setenv("TDSCLIP_LOCATIONS", str(locations))
    mp.delenv(B16_8F_VARIABLE, raising=False)
    mp.delenv("TDSCLIP_RELEASED_TDS_CLIP_B_16_16F_SSV1", raising=False)
    runs = root / "runs"
    try:
        yield root, runs, checkpoint, locations, mp
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def evaluated(released):
    import io
    from contextlib import redirect_stdout

    root, runs, checkpoint, locations, _ = released
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["table1", "--released", *ROWS, "--runs-dir", str(runs), *SMOKE])
    return code, out.getvalue()


def test_a_configured_row_is_evaluated_as_a_released_run_and_recorded(released, evaluated):
    root, runs, checkpoint, locations, _ = released
    code, out = evaluated
    assert code == 0, out
    (run_dir,) = [p.parent for p in runs.glob("*/run.json")]  # one run: the row with a file
    record = json.loads((run_dir / "run.json").read_text())
    result = json.loads((run_dir / "result.json").read_text())
    sha = file_sha256(str(checkpoint))
    tags = record["tags"]
    assert (tags["kind"], tags["table"], tags["row"], tags["preset"]) == ("released", "table1", B16_8F, "smoke")
    assert json.loads(tags["overrides"]) == SMOKE[2:] and tags["released_sha256"] == sha
    assert record["params"]["released.sha256"] == sha and record["params"]["model.num_classes"] == 6
    assert result["status"] == "FINISHED" and result["released"]["sha256"] == sha
    assert result["metrics"]["test_videos"] == 6 and 0 <= result["metrics"]["test_top1"] <= 100
    assert result["config"]["data"]["input_size"] == 16  # the file's tower decides it, not smoke's 64
    assert read_state(run_dir).state == "finished"
    # the row without a file is named with the key and the variable to set, and nothing ran for it
    assert (
        f'{B16_16F}: no file configured: set TDSCLIP_RELEASED_TDS_CLIP_B_16_16F_SSV1 or [released] "{B16_16F}" '
        f"in {locations}"
    ) in out


def test_the_report_shows_the_released_row_beside_the_paper(released, evaluated):
    root, runs, checkpoint, _, _ = released
    table = (Path(os.environ["TDSCLIP_REPORTS"]) / "table1.md").read_text()
    main_table = table.split("## Provenance")[0]
    lines = {
        line.split(" | ")[0].lstrip("| "): line for line in main_table.splitlines() if line.startswith("| TDS-CLIP")
    }
    label = f"{B16_8F} [{' '.join(SMOKE[2:])}] (released checkpoint, evaluated here)"
    assert label in lines, list(lines)
    row = lines[label]
    assert "| 60.1 |" in row and row.rstrip(" |").endswith("not comparable")  # ours beside the paper's
    assert lines[B16_8F].rstrip(" |").endswith("not run")  # the trained row is not the released run
    (run_dir,) = [p.parent for p in runs.glob("*/run.json")]
    provenance = next(line for line in table.split("## Provenance")[1].splitlines() if line.startswith(f"| {label}"))
    assert f"sha256 {file_sha256(str(checkpoint))} ({checkpoint.name})" in provenance and run_dir.name in provenance


def test_mlflow_mirrors_the_released_run_under_its_own_parent(released, evaluated):
    from mlflow.tracking import MlflowClient

    root, runs, _, _, _ = released
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    found = client.search_runs([client.get_experiment_by_name("tdsclip").experiment_id])
    (child,) = [r for r in found if r.data.tags.get("kind") == "released" and "run_id" in r.data.tags]
    (parent,) = [
        r for r in found if r.data.tags.get("table_run") == table_run_key("table1", "smoke", SMOKE[2:], "released")
    ]
    assert child.data.tags["mlflow.runName"] == f"table1/{B16_8F} (released)" and child.info.status == "FINISHED"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id and parent.info.status == "FINISHED"
    assert child.data.metrics["test_videos"] == 6


def test_a_second_command_evaluates_nothing_and_the_plan_reads_finished(released, evaluated, capsys, caplog):
    _, runs, _, _, _ = released
    before = sorted(p.name for p in runs.iterdir())
    assert main(["table1", "--released", *ROWS, "--runs-dir", str(runs), *SMOKE]) == 0
    assert "evaluating" not in caplog.text and sorted(p.name for p in runs.iterdir()) == before
    capsys.readouterr()
    assert main(["table1", "--released", "--dry-run", *ROWS, "--runs-dir", str(runs), *SMOKE]) == 0
    (run_dir,) = [p.parent for p in runs.glob("*/run.json")]
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(B16_8F + " "))
    assert f"{run_dir.name}  finished" in line  # the plan's run id is the one the evaluation made


def test_a_file_that_does_not_fit_its_row_is_refused_before_anything_runs(released, evaluated, tmp_path, capsys):
    _, _, _, _, mp = released
    runs = tmp_path / "runs"
    mp.setenv(B16_8F_VARIABLE, str(FIXTURE))  # the variable wins over the locations file
    try:
        assert main(["table1", "--released", *ROWS, "--runs-dir", str(runs), *SMOKE]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"experiments.run: table1 row '{B16_8F}': released checkpoint {FIXTURE} does not fit the row: "
            f"it has 10 classes where the row expects 6 (check {B16_8F_VARIABLE} or [released] in "
            f"{os.environ['TDSCLIP_LOCATIONS']})"
        )
        assert main(["table1", "--released", *ROWS, "--runs-dir", str(runs), "--preset", "smoke"]) == 2
        assert "its CLIP tower is tdsclip-authors-tiny where the row expects tdsclip-tiny" in capsys.readouterr().err
        assert not list(runs.glob("*/run.json"))  # refused before any evaluation started
    finally:
        mp.delenv(B16_8F_VARIABLE)


def test_the_dry_run_shows_eval_only_gpu_hours_and_the_file_per_row(released, tmp_path):
    """Paper preset, no data here: the cost of the multi-view test alone, without torch."""
    from experiments.cost import A100_SUSTAINED_TFLOPS, estimate_evaluation
    from experiments.plan import plan
    from experiments.render import format_hours
    from experiments.spec import FLOPS_CACHE, load, row_config
    from tdsclip import measure_cache

    _, _, checkpoint, _, _ = released
    rows = f"{B16_8F},TDS-CLIP-L/14 8f SSv1"
    code = (
        "import sys; from experiments.run import main; "
        f"code = main(['table1', '--released', '--dry-run', '--rows', {rows!r}, '--runs-dir', {str(tmp_path)!r}]); "
        "bad = [m for m in ('torch', 'mlflow') if m in sys.modules]; assert not bad, bad; sys.exit(code)"
    )
    env = {**os.environ, B16_8F_VARIABLE: str(checkpoint)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    spec = load("table1")
    released_model = row_config(spec, spec.row(B16_8F), "released-code")[0]
    entry = measure_cache.load(FLOPS_CACHE)[measure_cache.key(released_model)]
    paper = row_config(spec, spec.row(B16_8F), "paper")[0]
    hours = estimate_evaluation(paper, entry, 8, A100_SUSTAINED_TFLOPS).hours
    trained = plan(spec, "paper", rows=B16_8F)[0].cost.hours
    assert 0 < hours < trained / 50
    lines = done.stdout.splitlines()
    assert "GPU-h (eval only)" in lines[2]
    row = next(line for line in lines if line.startswith(B16_8F + " "))
    assert f"  {format_hours(hours)}  " in row and f"{checkpoint} (sha256 {file_sha256(str(checkpoint))[:12]})" in row
    assert "(provisional)" in row  # no SSv1 data on this machine: the id waits for its manifest
    l14 = next(line for line in lines if line.startswith("TDS-CLIP-L/14 8f SSv1 "))
    assert "no file configured" in l14 and "none: set TDSCLIP_RELEASED_TDS_CLIP_L_14_8F_SSV1" in l14
    assert (
        f"total {format_hours(hours)} GPU-h eval only" in done.stdout
        and f"instead: {format_hours(trained)} GPU-h" in done.stdout
    )


def test_where_a_rows_file_is_named(tmp_path):
    assert released_variable(B16_8F) == B16_8F_VARIABLE
    assert released_variable("TDS-CLIP-L/14 16f") == "TDSCLIP_RELEASED_TDS_CLIP_L_14_16F"
    toml = tmp_path / "locations.toml"
    toml.write_text(f'[released]\n"{B16_8F}" = "~/from-file.pt"\n')
    env = {"TDSCLIP_LOCATIONS": str(toml)}
    assert released_checkpoint(B16_8F, env).path == os.path.expanduser("~/from-file.pt")
    assert released_checkpoint(B16_8F, {**env, B16_8F_VARIABLE: "/env.pt"}).path == "/env.pt"  # the variable wins
    assert released_checkpoint(B16_16F, env).path == ""


def test_an_unknown_row_in_the_released_section_is_named(tmp_path, monkeypatch, capsys):
    toml = tmp_path / "locations.toml"
    toml.write_text('[released]\n"TDS-CLIP-B/16 8f SSV1" = "/x.pt"\n')
    monkeypatch.setenv("TDSCLIP_LOCATIONS", str(toml))
    assert main(["table1", "--released", "--dry-run", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and f"""[released] "TDS-CLIP-B/16 8f SSV1" is not a row with a released checkpoint; did you mean '{B16_8F}'?"""
        in err
    )


def test_a_class_list_named_for_the_dataset_orders_the_classifier_and_is_part_of_the_run(
    released, evaluated, tmp_path, capsys
):
    from tdsclip.data.synth import class_names

    _, first_runs, _, _, mp = released
    # not alphabetical (the checkpoint's rows in another order), commas dropped as in the authors' lists
    names = [n.replace(",", "") for n in reversed(class_names(6))]
    csv = tmp_path / "classes.csv"
    csv.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(names)))
    mp.setenv("TDSCLIP_RELEASED_CLASSES_SYNTHETIC", str(csv))
    try:
        assert main(["table1", "--released", "--rows", B16_8F, "--runs-dir", str(tmp_path / "runs"), *SMOKE]) == 0
    finally:
        mp.delenv("TDSCLIP_RELEASED_CLASSES_SYNTHETIC")
    (result_file,) = (tmp_path / "runs").glob("*/result.json")
    result = json.loads(result_file.read_text())
    assert result["classes"] == {"source": str(csv), "order": names}
    (first,) = [p.parent.name for p in first_runs.glob("*/run.json")]
    assert result_file.parent.name != first  # another class order, another run
