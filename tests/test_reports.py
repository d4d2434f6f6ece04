"""The report builder against run records written by the real Tracker: every cell and summary count
checked against what the records say, MLflow as a source gives the same tables, index.html is
self-contained, and mistakes are one-line errors."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from experiments.plan import measured, plan, record_tags
from experiments.spec import load
from reports import latex, markdown
from reports.build import build, main
from reports.sources import LocalSource, MlflowSource
from reports.tables import build_table, find_runs, maps_folder
from tdsclip.track import RetryPolicy, Tracker, environment_tags, sync_runs

FAST = RetryPolicy(tries=2, first_delay=0.05)
MANIFEST = "0123456789abcdef01234567"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """A runs folder with finished, failed, interrupted (stopped) and multi-seed rows (preset paper, whose run ids
    are provisional here: no data is located), written by Tracker into a sqlite MLflow store."""
    root = tmp_path_factory.mktemp("reports")
    patch = pytest.MonkeyPatch()
    patch.setenv("TDSCLIP_LOCATIONS", str(root / "none.toml"))
    patch.setenv("TDSCLIP_CACHE", str(root / "cache"))
    runs, uri = root / "runs", f"sqlite:///{root}/tracker.db"

    made: dict[str, dict[str, str]] = {}  # run id -> the table tags experiments.run gives it

    def ids(name: str, preset: str = "paper", seeds: int = 1) -> dict[tuple[str, int], str]:
        planned = plan(load(name), preset, seeds=seeds, runs_dir=runs)
        for p in planned:
            made.setdefault(p.run_id, {}).update(record_tags(load(name), p, preset, []))
        return {(p.row.name, p.seed): p.run_id for p in planned}

    def write(run_id: str, metrics: dict | None, status: str = "FINISHED", preset: str = "paper") -> None:
        tracker = Tracker(
            runs / run_id,
            run_id,
            params={"train.seed": 1},
            tracking_uri=uri,
            retry=FAST,
            tags={**made[run_id], "run_id": run_id, "preset": preset, "data_manifest": MANIFEST},
        )
        tracker.log_metrics({"train/loss": 1.5}, step=1, epoch=1)
        if metrics is None:  # started, checkpointed, interrupted
            (runs / run_id / "latest.pt").write_bytes(b"checkpoint")
            tracker.close("KILLED")
        else:
            tracker.finish({"preset": preset, "metrics": metrics}, status=status)

    t3, t4, t7, f5 = ids("table3"), ids("table4"), ids("table7"), ids("fig5")
    write(t3["Baseline", 1024], {"val_top1_best": 58.3, "test_top1": 57.0, "test_videos": 11522.0})
    write(t3["+ TD-Adapter", 1024], {"val_top1_best": 57.9, "test_videos": 11522.0})
    write(t4["3", 1024], None)
    write(t7["k=5", 1024], {"val_top1_best": 12.0}, status="FAILED")
    for (row, seed), rid in ids("table8", seeds=3).items():
        if row == "128":
            write(rid, {"val_top1_best": {1024: 57.0, 1025: 57.4, 1026: 57.8}[seed]})
    # Table I's B/16 8f SSv1 row is the full model of the ablations (Tables III, IV, VII, VIII, ...)
    write(
        ids("table1")["TDS-CLIP-B/16 8f SSv1", 1024],
        {"test_top1": 61.0, "test_top5": 83.0, "val_top1_best": 59.6, "test_videos": 11522.0},
    )
    write(ids("table3", "smoke")["Baseline", 1024], {"val_top1_best": 80.0}, preset="smoke")
    # Fig. 5's rows: TD only is Table III's "+ TD-Adapter" run, with SME the full model (both written above)
    assert set(f5.values()) <= {t3["+ TD-Adapter", 1024], ids("table1")["TDS-CLIP-B/16 8f SSv1", 1024]}
    fig5 = maps_folder(runs, load("fig5"), "paper", plan(load("fig5"), "paper", runs_dir=runs))
    fig5.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(
        fig5 / "maps.npz",
        frames=rng.integers(0, 255, (2, 4, 16, 16, 3), dtype=np.uint8),
        boxes=np.tile(np.array([2.0, 3.0, 9.0, 11.0]), (2, 4, 1)),
        labels=np.arange(2),
        maps_0=rng.random((2, 4, 16, 16), dtype=np.float32),
        maps_1=rng.random((2, 4, 16, 16), dtype=np.float32),
    )
    (fig5 / "summary.json").write_text(
        json.dumps(
            {
                "method": "L2 norm",
                "rows": {
                    "without SME": {"run_id": "a", "box_mass": 0.25, "array": "maps_0"},
                    "with SME": {"run_id": "b", "box_mass": 0.5, "array": "maps_1"},
                },
            }
        )
    )
    yield root, runs
    patch.undo()


def _params(name: str, runs: Path) -> dict[str, str]:
    planned = plan(load(name), "paper", runs_dir=runs)
    return {p.row.name: f"{m['trainable_params'] / 1e6:.2f}" for p, m in zip(planned, measured(planned))}


def _cells(view, key: str) -> dict[str, tuple[str, str, str, str]]:
    return {
        r.name: (r.values[key].ours_text, r.values[key].paper_text, r.values[key].diff_text, r.values[key].status)
        for r in view.rows
    }


EXPECTED = {  # table: ({row: (ours, paper, difference, status)} for top-1, summary counts without zeros)
    "table3": (
        {
            "Baseline": ("58.3", "58.1", "+0.2", "reproduced"),
            "+ TD-Adapter": ("57.9", "59.1", "-1.2", "off"),
            "+ SME-Adapter": ("59.6", "59.4", "+0.2", "reproduced"),
        },
        {"reproduced": 2, "off": 1},
    ),
    "table4": (
        {
            "1": ("57.9", "58.0", "-0.1", "reproduced"),
            "3": ("", "58.5", "", "stopped"),
            "5": ("59.6", "59.4", "+0.2", "reproduced"),
        },
        {"reproduced": 2, "stopped": 1},
    ),
    "table7": (
        {
            "k=3": ("59.6", "59.4", "+0.2", "reproduced"),
            "k=5": ("", "59.2", "", "failed"),
            "k=7": ("", "58.8", "", "not run"),
        },
        {"reproduced": 1, "failed": 1, "not run": 1},
    ),
    "table8": (
        {
            "128": ("57.4 ± 0.4", "57.4", "+0.0", "reproduced"),
            "320": ("59.6", "59.4", "+0.2", "reproduced"),
            "512": ("", "58.2", "", "not run"),
        },
        {"reproduced": 2, "not run": 1},
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_cell_and_count_follows_the_records(records, name):
    _, runs = records
    view = build_table(load(name), "paper", LocalSource(runs), runs)
    cells, summary = EXPECTED[name]
    assert _cells(view, "top1") == cells
    assert {k: v for k, v in view.summary.items() if v} == summary
    for row in view.rows:
        assert row.status == cells[row.name][3]
    params = _params(name, runs)
    text = markdown.render(view)
    for row, (ours, paper, diff, status) in cells.items():  # the Markdown row, cell by cell
        line = f"| {row} | {ours or '–'} | {paper} | {diff or '–'} | {status} | {params[row]} | {status} |"
        assert line in text, (line, text)
    assert ", ".join(f"{v} {k}" for k, v in summary.items()) in text


def test_a_multi_view_row_is_judged_within_one_point_and_its_provenance_is_the_records(records):
    _, runs = records
    view = build_table(load("table1"), "paper", LocalSource(runs), runs)
    row = view.rows[0]
    assert row.name == "TDS-CLIP-B/16 8f SSv1"
    assert (row.values["top1"].diff, row.values["top1"].status) == (0.9, "reproduced")
    assert (row.values["top5"].diff, row.values["top5"].status) == (-2.4, "off")
    assert row.status == "off" and view.summary["off"] == 1 and view.summary["not run"] == 7
    p = row.provenance
    assert p.seeds == (1024,) and p.seeds_done == 1 and p.preset == "paper" and p.manifest == MANIFEST[:12]
    assert p.protocol == "3x2 views, val split" and p.videos == "11,522 / 11,522 official"
    assert p.git == environment_tags()["git_sha"][:10] + ("-dirty" if environment_tags()["git_dirty"] == "true" else "")
    assert p.run_ids == (plan(load("table1"), "paper", runs_dir=runs)[0].run_id,)
    assert row.values["tflops"].paper == "0.2x6" and row.values["tflops"].ours.endswith("x6")


def test_seeds_are_found_from_the_records_as_the_plan_numbers_them(records):
    """Each row shows the seeds its records hold (the records say their table, row and seed)."""
    _, runs = records
    spec = load("table8")
    found = find_runs(spec, "paper", LocalSource(runs))
    planned = {(p.row.name, p.seed): p.run_id for p in plan(spec, "paper", seeds=3, runs_dir=runs)}
    assert [(p.row.name, p.seed, p.run_id) for p in found] == [
        *[("128", s, planned["128", s]) for s in (1024, 1025, 1026)],
        ("320", 1024, planned["320", 1024]),
        ("512", 1024, ""),
    ]
    row, shared, _ = build_table(spec, "paper", LocalSource(runs), runs).rows
    assert row.provenance.seeds_text == "1024, 1025, 1026 (3/3 done)"
    assert row.values["top1"].spread == pytest.approx(0.4) and row.values["top1"].n == 3
    assert shared.provenance.seeds_text == "1024" and shared.values["top1"].spread is None
    asked = build_table(spec, "paper", LocalSource(runs), runs, seeds=3).rows[1]  # --seeds 3: the missing ones say so
    assert asked.provenance.seeds_text == "1024, 1025, 1026 (1/3 done)"


def test_smoke_results_are_not_comparable_never_off(records):
    _, runs = records
    view = build_table(load("table3"), "smoke", LocalSource(runs), runs)
    assert _cells(view, "top1")["Baseline"] == ("80.0", "58.1", "+21.9", "not comparable")
    assert view.summary["not comparable"] == 1 and view.summary["off"] == 0
    assert "not comparable" in view.incomparable


def test_mlflow_as_the_source_gives_the_same_tables(records):
    root, runs = records
    uri = f"sqlite:///{root}/synced.db"
    sync_runs(runs, uri, retry=FAST)
    mlflow = MlflowSource(uri)
    for name in ("table1", *EXPECTED):
        spec = load(name)
        ours = build_table(spec, "paper", LocalSource(runs), runs)
        mirrored = build_table(spec, "paper", mlflow, runs)
        assert markdown.render(replace(mirrored, records="")) == markdown.render(replace(ours, records=""))
        assert mirrored.summary == ours.summary


def test_index_html_is_self_contained_and_every_link_resolves(records, tmp_path):
    _, runs = records
    built = build(preset="paper", out=tmp_path, runs_dir=runs)
    pages = sorted(tmp_path.glob("*.html"))
    assert {p.name for p in pages} == {"index.html", *(f"{b.view.name}.html" for b in built)}
    for page in pages:
        text = page.read_text()
        assert not re.search(r"https?:", text, re.IGNORECASE), page.name
        for link in re.findall(r'(?:href|src)="([^"]*)"', text):
            if link.startswith("#"):
                assert f'id="{link[1:]}"' in text, (page.name, link)
                continue
            target = (tmp_path / link).resolve()
            assert target.is_file() and tmp_path.resolve() in target.parents, (page.name, link)
    index = (tmp_path / "index.html").read_text()
    assert index.count('<img src="figures/') == 11  # tables 3-9, 11, 12 and figures 5, 6
    assert 'href="#table3">Table III' in index
    for name in ("fig5", "fig6", "table4", "table12"):
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"


def test_latex_escapes_specials_and_uses_booktabs(records):
    _, runs = records
    assert (
        latex.escape(r"a_b & 5% #1 {x} ~ ^ \ ± Δ")
        == r"a\_b \& 5\% \#1 \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{} $\pm$ $\Delta$"
    )
    text = latex.render(build_table(load("table8"), "paper", LocalSource(runs), runs))
    assert r"\toprule" in text and r"\cmidrule(lr){2-5}" in text and r"\bottomrule" in text
    assert r"128 & 57.4 $\pm$ 0.4 & 57.4 & +0.0 & reproduced" in text
    assert r"Top-1 (\%)" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["table99"], "reports.build: unknown table 'table99'; did you mean 'table9'?"),
        (["nosuch"], "reports.build: unknown table 'nosuch'; expected one of table1, "),
        (
            ["table3", "--format", "md,pdf"],
            "reports.build: --format: expected a comma-separated subset of md,tex,html, got 'md,pdf'",
        ),
        (["table3", "--source", "wandb"], "reports.build: --source: expected one of records, mlflow, got 'wandb'"),
        (
            ["table3", "--preset", "fast"],
            "reports.build: unknown preset 'fast'; expected one of paper, released-code, smoke",
        ),
    ],
)
def test_mistakes_are_one_line_errors(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path), "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv", [["table13"], ["table12", "--rows", "Baseline,w/ TD-Adapter"]])
def test_experiments_run_ends_with_the_tables_report(argv, tmp_path, capsys, monkeypatch):
    from experiments.run import main as run

    monkeypatch.setenv("TDSCLIP_REPORTS", str(tmp_path / "out"))
    monkeypatch.setenv("TDSCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    assert run([*argv, "--preset", "smoke", "--runs-dir", str(tmp_path / "runs")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == str(tmp_path / "out" / f"{argv[0]}.html")
    page = Path(last).read_text()
    assert 'href="index.html"' in page and (tmp_path / "out" / "index.html").is_file()  # the whole report, rebuilt
    if argv[0] == "table12":  # measured on the CPU here: the two rows measured, the others not run
        view_md = (tmp_path / "out" / "table12.md").read_text()
        assert "**5 rows: 2 not comparable, 3 not run**" in view_md
        assert (tmp_path / "out" / "figures" / "table12.png").is_file()


def test_the_command_line_takes_names_and_overrides_in_any_order(records, tmp_path, capsys):
    _, runs = records
    argv = [
        "table3",
        "--preset",
        "paper",
        "train.epochs=3",
        "--runs-dir",
        str(runs),
        "table4",
        "--format",
        "md",
        "--out",
        str(tmp_path),
        "--no-figures",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == str(tmp_path) and out[0].startswith("table3   3 rows: 3 not run")  # other epochs, other runs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table3.md", "table4.md"]


def test_the_report_finds_runs_by_their_records_whatever_the_overrides_and_presets(tmp_path, capsys, monkeypatch):
    """Why: `reports.build --preset smoke` showed "3 not run" beside finished smoke runs made with
    overrides (it re-planned without them), and the default preset paper hid every smoke run."""
    monkeypatch.setenv("TDSCLIP_LOCATIONS", str(tmp_path / "none.toml"))
    monkeypatch.setenv("TDSCLIP_CACHE", str(tmp_path / "cache"))
    runs, uri, spec = tmp_path / "runs", f"sqlite:///{tmp_path}/mlflow.db", load("table3")
    smoke = plan(spec, "smoke", overrides=["train.epochs=1"], runs_dir=runs)
    for p in smoke[:2]:
        tracker = Tracker(
            runs / p.run_id,
            p.run_id,
            params={"train.seed": p.seed},
            tracking_uri=uri,
            retry=FAST,
            tags={**record_tags(spec, p, "smoke", ["train.epochs=1"]), "run_id": p.run_id},
        )
        tracker.finish({"metrics": {"val_top1_best": 40.0}})
    paper = plan(spec, "paper", runs_dir=runs)[0]
    Tracker(
        runs / paper.run_id,
        paper.run_id,
        params={"train.seed": 1},
        tracking_uri=uri,
        retry=FAST,
        tags={**record_tags(spec, paper, "paper", []), "run_id": paper.run_id},
    ).finish({"metrics": {"val_top1_best": 58.0}})

    assert main(["table3", "--runs-dir", str(runs), "--out", str(tmp_path / "out"), "--no-figures"]) == 0
    assert "**3 rows: 1 reproduced, 2 not run**" in (tmp_path / "out" / "table3.md").read_text()  # paper: first
    text = (tmp_path / "out" / "smoke" / "table3.md").read_text()
    assert "**3 rows: 2 not comparable, 1 not run**" in text
    assert text.count("train.epochs=1") >= 2, "the overrides the runs were made with are on the page"
    assert f"run records in {runs}" in text, "the page says which runs folder it was built from"
    index = (tmp_path / "out" / "index.html").read_text()
    assert (
        'href="smoke/index.html"' in index
        and 'href="../index.html"' in (tmp_path / "out" / "smoke" / "index.html").read_text()
    )

    assert (
        main(
            [
                "table3",
                "--preset",
                "smoke",
                "--runs-dir",
                str(runs),
                "--out",
                str(tmp_path / "only"),
                "--no-figures",
                "--format",
                "md",
            ]
        )
        == 0
    )
    assert "2 not comparable, 1 not run" in (tmp_path / "only" / "table3.md").read_text()
    assert (
        main(
            [
                "table3",
                "--preset",
                "smoke",
                "train.epochs=2",
                "--runs-dir",
                str(runs),
                "--out",
                str(tmp_path / "other"),
                "--no-figures",
                "--format",
                "md",
            ]
        )
        == 0
    )
    assert "3 rows: 3 not run" in (tmp_path / "other" / "table3.md").read_text(), "another override set: its own runs"
