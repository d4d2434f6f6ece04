"""A table view as Markdown (GitHub tables): the table, its provenance, the paper's other rows."""

from __future__ import annotations

from collections.abc import Sequence

from reports.grid import FigureRef, flat_header, headline, main_grid, provenance_grid, summary_text
from reports.tables import Grid, TableView

BLANK = "–"


def _cell(text: str) -> str:
    return (text or BLANK).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None) -> str:
    numeric = numeric or [False] * len(header)
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _grid(grid: Grid) -> str:
    return table(grid[0], grid[1])


def render(view: TableView, figures: Sequence[FigureRef] = ()) -> str:
    parts = [f"# {view.title}", ""]
    if view.static is not None:
        parts += [summary_text(view), "", _grid(view.static)]
    else:
        groups, rows = main_grid(view)
        header = flat_header(groups)
        numeric = [c.role in ("ours", "paper", "diff") for c in rows[0]] if rows else None
        parts += [headline(view), "", f"**{summary_text(view)}**", ""]
        if view.incomparable:
            parts += [f"> {view.incomparable}", ""]
        parts += [
            table(header, [[c.text for c in r] for r in rows], numeric),
            "",
            "## Provenance",
            "",
            _grid(provenance_grid(view)),
        ]
    if view.references:
        parts += ["", "## Other methods (the paper's numbers)", "", _grid(view.references)]
    for figure in figures:
        parts += ["", f"![{figure.caption}]({figure.png})", "", f"*{figure.caption}* ([PDF]({figure.pdf}))"]
    if view.notes:
        parts += ["", "## Notes", "", *[f"- {n}" for n in view.notes]]
    if view.paper_source:
        parts += ["", f"Paper source: {view.paper_source}"]
    return "\n".join(parts) + "\n"
