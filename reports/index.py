"""index.html: every table and figure on one page, opening with a summary per table.

The page is self-contained: inline style, figures as local files under figures/, links only to
files in the same folder, no http(s) reference (a test checks all three).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape

from reports import html, studies
from reports import status as st
from reports.grid import FigureRef
from reports.studies import StudyPage
from reports.tables import TableView

VOCABULARY = (
    (st.REPRODUCED, "ours within the tolerance of the paper's value (difference as printed)"),
    (st.OFF, "ours outside the tolerance"),
    (
        st.NOT_COMPARABLE,
        "not a reproduction attempt: smoke preset (synthetic data, tiny ViT), or CPU memory vs the paper's GPU memory",
    ),
    (st.NO_PAPER, "the paper prints no value for this cell"),
    (st.RUNNING, "a live process trains it now (it holds the run's lock)"),
    (st.STOPPED, "stopped by a signal, pruned, or interrupted (killed, crashed): the same command resumes it"),
    (st.FAILED, "the run ended with a failure, or its record cannot be read"),
    (st.NOT_RUN, "no record of this row's run"),
    (st.NOT_VALIDATED, "the run finished without validating (e.g. fewer epochs than the validation interval)"),
    (st.NOT_MEASURED, "the run finished without recording this metric"),
)


def summary_table(views: Sequence[TableView]) -> str:
    head = "".join(f"<th>{escape(s)}</th>" for s in ("Table or figure", "Rows", *st.ROW_STATUSES))
    body = []
    for view in views:
        link = f'<a href="#{escape(view.name)}">{escape(view.title)}</a>'
        if view.static is not None:
            kind = "rendered from the presets" if view.kind == "presets" else "the paper's table, nothing to run"
            body.append(
                f'<tr><td>{link}</td><td class="ours">{len(view.static[1])}</td>'
                f'<td colspan="{len(st.ROW_STATUSES)}" class="paper">{escape(kind)}</td></tr>'
            )
            continue
        cells = "".join(
            f'<td class="status">{html.badge(s, str(n))}</td>' if n else "<td></td>" for s, n in view.summary.items()
        )
        body.append(f'<tr><td>{link}</td><td class="ours">{len(view.rows)}</td>{cells}</tr>')
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def legend() -> str:
    items = "".join(f"<li>{html.badge(s)} {escape(text)}</li>" for s, text in VOCABULARY)
    tolerances = "Tolerances: each table's own (its spec's), printed under its title."
    return f'<ul class="notes legend">{items}</ul><p class="meta">{escape(tolerances)}</p>'


def render(
    views: Sequence[TableView],
    figures: dict[str, list[FigureRef]],
    files: dict[str, list[str]],
    preset: str,
    source: str,
    sweeps: Sequence[StudyPage] = (),
    others: Sequence[tuple[str, str]] = (),
) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"<h1>TDS-CLIP: the paper's tables, regenerated from our runs</h1>"
        f'<p class="meta">Preset {escape(preset)} · read from {escape(source)} · built {when} by '
        f"<code>python -m reports.build</code></p>"
    )
    if others:
        links = " · ".join(f'<a href="{escape(link)}">{escape(name)}</a>' for name, link in others)
        header += f'<p class="meta">Other presets with runs: {links}</p>'
    sections = "\n".join(html.section(v, figures.get(v.name, ()), files.get(v.name, ())) for v in views)
    body = f"{header}<h2>Summary</h2>{summary_table(views)}{legend()}{studies.section(list(sweeps))}\n{sections}"
    return html.page("TDS-CLIP reproduction report", body)
