"""A table view laid out as header groups and rows of text cells, once for every output format.

Markdown flattens the groups into one header row, LaTeX turns them into \\multicolumn headers with
\\cmidrule, HTML into a two-row header; the cells (and their statuses, which HTML colours) are the
same in all three, so the formats cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from reports.tables import NO_DIFFERENCE, ColumnView, Grid, TableView

DELTA = "Δ"


@dataclass(frozen=True)
class Group:
    """A column header over its sub-columns (none: a single column)."""

    title: str
    subs: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return max(1, len(self.subs))


@dataclass(frozen=True)
class Cell:
    text: str
    status: str = ""
    role: str = ""
    """name | ours | paper | diff | status | '' (a plain cell), for styling."""


def _has_paper(view: TableView, column: ColumnView) -> bool:
    return any(row.values[column.key].paper is not None for row in view.rows)


def _subs(view: TableView, column: ColumnView) -> tuple[str, ...]:
    if column.kind == "compared":
        return ("ours", "paper", DELTA, "status")
    if column.kind == "measured" and _has_paper(view, column):
        return ("ours", "paper") if column.metric in NO_DIFFERENCE else ("ours", "paper", DELTA)
    return ()


def main_grid(view: TableView) -> tuple[list[Group], list[list[Cell]]]:
    """Row name, each column (ours, paper, difference, status as it applies), the row's status."""
    groups = [Group("Row")] + [Group(c.header, _subs(view, c)) for c in view.columns] + [Group("Row status")]
    rows = []
    for row in view.rows:
        cells = [Cell(row.name, role="name")]
        for column, group in zip(view.columns, groups[1:-1]):
            value = row.values[column.key]
            if column.kind == "paper":
                cells.append(Cell(value.paper_text, role="paper"))
            elif not group.subs:
                cells.append(Cell(value.ours_text, role="ours"))
            else:
                by_sub = {
                    "ours": Cell(value.ours_text, role="ours"),
                    "paper": Cell(value.paper_text, role="paper"),
                    DELTA: Cell(value.diff_text, role="diff"),
                    "status": Cell(value.status, value.status, "status"),
                }
                cells += [by_sub[sub] for sub in group.subs]
        cells.append(Cell(row.status, row.status, "status"))
        rows.append(cells)
    return groups, rows


PROVENANCE = (
    "Row",
    "Seeds",
    "Run id",
    "Released checkpoint",
    "Preset",
    "Overrides",
    "Protocol and views",
    "Data manifest",
    "Data fingerprint",
    "Videos evaluated",
    "Git SHA",
)


def provenance_grid(view: TableView) -> Grid:
    """Where each row's numbers come from; columns empty in every row are left out."""
    rows = []
    for row in view.rows:
        p = row.provenance
        run_ids = ", ".join(p.run_ids) + (" (provisional)" if p.provisional else "")
        rows.append(
            (
                row.name,
                p.seeds_text,
                run_ids,
                p.released,
                p.preset,
                p.overrides,
                p.protocol,
                p.manifest,
                ("DIFFERS from its reference: " if p.differs else "") + p.data,
                p.videos,
                p.git,
            )
        )
    keep = [i for i, name in enumerate(PROVENANCE) if name in ("Row", "Run id") or any(r[i] for r in rows)]
    return tuple(PROVENANCE[i] for i in keep), tuple(tuple(r[i] for i in keep) for r in rows)


def flat_header(groups: list[Group]) -> list[str]:
    """One header row: 'Top-1 (%) ours', 'paper', 'Δ', 'status' for a compared column."""
    out = []
    for group in groups:
        if not group.subs:
            out.append(group.title)
        else:
            out += [f"{group.title} {group.subs[0]}", *group.subs[1:]]
    return out


def headline(view: TableView) -> str:
    """One line under the title: preset, protocol, tolerance and where the runs were read."""
    parts = [f"preset {view.preset}"]
    if view.protocol:
        parts.append(f"protocol: {view.protocol}")
    if view.tolerance:
        parts.append(f"reproduced within {view.tolerance}")
    if view.records:
        parts.append(f"read from {view.records}")
    return "; ".join(parts)


def summary_text(view: TableView) -> str:
    """'3 rows: 2 reproduced, 1 not run' (static tables: what they are)."""
    if view.static is not None:
        return f"{len(view.static[1])} rows, nothing to run ({'rendered from the presets' if view.kind == 'presets' else 'from the paper'})"
    counts = {k: v for k, v in view.summary.items() if v}
    return f"{len(view.rows)} rows: " + ", ".join(f"{v} {k}" for k, v in counts.items())


@dataclass(frozen=True)
class FigureRef:
    """A figure a table's page shows: PNG and PDF paths relative to the output folder, a caption."""

    png: str
    pdf: str
    caption: str
