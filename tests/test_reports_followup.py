"""Reports: the data fingerprint in the provenance, no None on a page, specs' own chart and tolerance,
released-checkpoint rows (issues 16, 18, 19 follow-ups)."""

from __future__ import annotations

import pytest

from experiments.plan import plan, record_tags
from experiments.spec import load
from reports import markdown
from reports.sources import LocalSource
from reports.tables import build_table
from tdsclip.track import RetryPolicy, Tracker

SUMMARY = "train 12 of 12 listed videos; val 12 of 13 listed videos; val all 12 videos differ by exactly +1 frame"


def finish(runs, spec, planned, preset, result):
    Tracker(
        runs / planned.run_id,
        planned.run_id,
        params={"train.seed": planned.seed},
        tracking_uri=f"sqlite:///{runs.parent}/mlflow.db",
        retry=RetryPolicy(tries=2, first_delay=0.05),
        tags={**record_tags(spec, planned, preset, []), "run_id": planned.run_id},
    ).finish(result)


@pytest.fixture
def places(tmp_path, monkeypatch):
    monkeypatch.setenv("TDSCLIP_LOCATIONS", str(tmp_path / "none.toml"))
    monkeypatch.setenv("TDSCLIP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "runs"


def test_the_provenance_shows_the_data_fingerprint_and_a_row_on_other_data_says_so(places):
    """Why (issue 18): a 1-point gap had no first suspect: the page never said which copy of the data a row used."""
    spec = load("table3")
    first, second = plan(spec, "paper", runs_dir=places)[:2]
    finish(
        places,
        spec,
        first,
        "paper",
        {
            "metrics": {"val_top1_best": 58.0},
            "data": {"fingerprint": {"summary": SUMMARY, "differs_from_reference": True}},
        },
    )
    finish(
        places,
        spec,
        second,
        "paper",
        {
            "metrics": {"val_top1_best": 59.0},
            "data": {"fingerprint": {"summary": "train 5 of 5", "differs_from_reference": None}},
        },
    )
    view = build_table(spec, "paper", LocalSource(places), places)
    assert view.rows[0].provenance.data == SUMMARY and view.rows[0].provenance.differs
    assert view.rows[1].provenance.data == "train 5 of 5" and not view.rows[1].provenance.differs
    text = markdown.render(view)
    assert "Data fingerprint" in text and f"DIFFERS from its reference: {SUMMARY}" in text
    assert f"Baseline: evaluated on data that differs from its reference: {SUMMARY}" in text
    assert "+ TD-Adapter: evaluated on data" not in text


def test_a_run_that_never_validated_says_so_in_the_terminal_the_report_and_the_chart(places, tmp_path):
    """Why (issue 19): with train.epochs=1 under a preset validating every 2 epochs the terminal showed
    `None` and the report said "no paper value" for a row the paper has."""
    from dataclasses import replace

    from experiments.local import Outcome
    from experiments.render import format_static, format_summary
    from reports import charts

    spec = load("table3")
    first, second = plan(spec, "paper", runs_dir=places)[:2]
    finish(places, spec, first, "paper", {"metrics": {"val_top1_best": None, "test_videos": 12.0}})
    text = format_summary(
        spec,
        "paper",
        [
            Outcome(first, first.run_id, {"metrics": {"val_top1_best": None}}),
            Outcome(
                replace(second, row=replace(second.row, paper={})), second.run_id, {"metrics": {"val_top1_best": 59.0}}
            ),
        ],
    )
    assert "None" not in text and "not validated | 58.1" in text and "59 | -" in text
    assert "None" not in format_static(load("table10"))

    view = build_table(spec, "paper", LocalSource(places), places)
    cell = view.rows[0].values["top1"]
    assert (cell.ours_text, cell.status, view.rows[0].status) == ("not validated", "not validated", "not validated")
    assert view.summary["not validated"] == 1 and view.summary["no paper value"] == 0
    page = markdown.render(view)
    assert "| Baseline | not validated | 58.1 |" in page and "None" not in page
    figure = charts.ablation(view, tmp_path / "out")
    assert (tmp_path / "out" / figure.png).stat().st_size > 0


def test_a_new_table_brings_its_own_chart_and_tolerance(places, tmp_path):
    """Why (issue 19): reports/ named the tables that get a chart and the tables judged within one point,
    so a new table needed an edit in reports/."""
    from dataclasses import replace

    from experiments.spec import SpecError
    from reports.build import draw

    spec = replace(load("table3"), name="table99", title="A new ablation", tolerance=2.0)
    assert spec.chart == "ablation" and load("table1").tolerance == 1.0 and load("table12").chart == "memory"
    planned = plan(spec, "paper", runs_dir=places)[1]
    finish(places, spec, planned, "paper", {"metrics": {"val_top1_best": 57.5}})
    view = build_table(spec, "paper", LocalSource(places), places)
    assert view.rows[1].values["top1"].diff == -1.6 and view.rows[1].status == "reproduced"
    assert view.tolerance == "±2 points"
    assert [f.png for f in draw(spec, view, tmp_path)] == ["figures/table99.png"]
    assert draw(replace(spec, chart="none"), view, tmp_path / "none") == []
    strict = build_table(replace(spec, tolerance=0.5), "paper", LocalSource(places), places)
    assert strict.rows[1].status == "off"
    with pytest.raises(SpecError, match=r"^table99: chart 'pie'; expected one of none, ablation, memory"):
        replace(spec, chart="pie")
