"""Sweep studies in the report: one page per study with its optimisation history, the parameters'
importances, each trial's per-epoch values (Optuna's matplotlib visualisation) and the best
trials, linked from index.html.

Studies are found through the records `python -m sweeps.run` leaves in runs/sweeps/*.json (the
study's name, storage URL and overrides); the trials are read from the Optuna storage.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from html import escape
from pathlib import Path

from reports.grid import FigureRef
from tdsclip.runstate import RunsFolder

log = logging.getLogger("reports")
BEST_SHOWN = 10


@dataclass(frozen=True)
class StudyPage:
    name: str
    file: str
    """The page, relative to the output folder."""
    summary: str


def records(runs_dir: Path) -> list[dict]:
    """Every study started from this runs folder (unreadable records are skipped with a warning)."""
    found = []
    for path in sorted(RunsFolder(runs_dir).sweeps.glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            log.warning("%s: not a sweep record (%s); skipped", path, error)
    return found


def _figure(plot, study, out: Path, name: str, caption: str) -> FigureRef | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reports.charts import save

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's matplotlib plots are marked experimental
            axes = plot(study)
    except (ValueError, RuntimeError) as error:  # e.g. importances need two finished trials
        log.info("%s: %s", name, error)
        return None
    figure = axes.figure
    figure.set_size_inches(7.0, 4.0)
    figure.set_layout_engine("constrained")  # long config keys as tick labels must not be cut
    ref = save(figure, out, name, caption)
    plt.close(figure)
    return ref


def _trials_table(trials, objective: str) -> str:
    keys = sorted({k for t in trials for k in t.params})
    head = "".join(f"<th>{escape(h)}</th>" for h in ("trial", "state", objective, *keys, "run"))
    rows = []
    for t in trials:
        value = f"{t.value:.4g}" if t.value is not None else "-"
        params = "".join(
            f'<td class="ours">{escape(f"{t.params[k]:.4g}" if isinstance(t.params.get(k), float) else str(t.params.get(k, "-")))}</td>'
            for k in keys
        )
        rows.append(
            f'<tr><td>{t.number}</td><td>{escape(t.state.name)}</td><td class="ours">{value}</td>{params}'
            f"<td><code>{escape(str(t.user_attrs.get('run_id', '-')))}</code></td></tr>"
        )
    return f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render(record: dict, out: Path) -> StudyPage:
    """out/sweep-<study>.html and its figures under out/figures/."""
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as plots

    from reports.html import figures_html, page

    name = record["study_name"]
    study = optuna.load_study(study_name=name, storage=record["storage"])
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    direction = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = sorted(finished, key=lambda t: t.value, reverse=direction)[:BEST_SHOWN]
    objective = study.user_attrs.get("objective", "value")
    states = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    summary = ", ".join(f"{n} {s}" for s, n in states.items() if n) or "no trials"
    if best:
        summary += f"; best {objective} {best[0].value:.4g} (trial {best[0].number})"
    figures = [
        f
        for f in (
            _figure(
                plots.plot_optimization_history,
                study,
                out,
                f"sweep-{name}-history",
                f"{name}: {objective} per trial and the best so far",
            ),
            _figure(
                plots.plot_param_importances,
                study,
                out,
                f"sweep-{name}-importances",
                f"{name}: parameter importances (fANOVA over the finished trials)",
            ),
            _figure(
                plots.plot_intermediate_values,
                study,
                out,
                f"sweep-{name}-epochs",
                f"{name}: validation top-1 per epoch of every trial (pruned ones stop early)",
            ),
        )
        if f is not None
    ]
    base = study.user_attrs.get("base", ["?", "?"])
    body = (
        f'<p class="meta"><a href="index.html">All tables, figures and sweeps</a></p>'
        f"<h1>Sweep {escape(name)}</h1>"
        f'<p class="meta">From {escape(base[0])} row {escape(base[1])!s} under preset {escape(str(record.get("preset")))}'
        f"; overrides: {escape(' '.join(record.get('overrides', [])) or 'none')}; storage {escape(record['storage'])}"
        f"; MLflow parent run {escape(str(record.get('mlflow_parent_run_id')))}</p>"
        f"<p>{escape(summary)}</p>"
        f"{figures_html(figures)}"
        f"<h2>Best trials</h2>{_trials_table(best, objective) if best else '<p>No finished trial yet.</p>'}"
        f"<h2>All trials</h2>{_trials_table(trials, objective)}"
    )
    file = f"sweep-{name}.html"
    out.mkdir(parents=True, exist_ok=True)
    (out / file).write_text(page(f"Sweep {name}", body), encoding="utf-8")
    return StudyPage(name, file, summary)


def render_all(runs_dir: Path, out: Path) -> list[StudyPage]:
    """A page per study found under runs_dir; a study that cannot be read is skipped with a warning."""
    pages = []
    for record in records(runs_dir):
        try:
            pages.append(render(record, out))
        except Exception as error:  # noqa: BLE001 - one unreadable study must not stop the report
            log.warning(
                "sweep %s: cannot be read from %s (%s); skipped", record.get("study_name"), record.get("storage"), error
            )
    return pages


def section(pages: list[StudyPage]) -> str:
    """index.html's list of sweeps."""
    if not pages:
        return ""
    items = "".join(f'<li><a href="{escape(p.file)}">{escape(p.name)}</a>: {escape(p.summary)}</li>' for p in pages)
    return f'<h2 id="sweeps">Sweeps</h2><ul class="notes">{items}</ul>'


def report_for_study(record: dict) -> Path:
    """What `python -m sweeps.run` ends with: the study's page."""
    from tdsclip.runstate import default_reports_dir

    out = default_reports_dir()
    return out / render(record, out).file
