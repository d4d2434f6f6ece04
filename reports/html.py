"""A table view as HTML: a section (used by index.html) or a page of its own.

Pages are self-contained: the style is inline, figures are local files beside the page, and there is
no http(s) reference anywhere, so the output folder opens from disk anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from reports.grid import Cell, FigureRef, Group, headline, main_grid, provenance_grid, summary_text
from reports.tables import Grid, TableView

BLANK = "–"

STYLE = """
body { font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; color: #1d2327;
       margin: 0 auto; padding: 24px 32px 64px; max-width: 1320px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 40px 0 4px; padding-top: 12px; border-top: 1px solid #d0d7de; }
h3 { font-size: 14px; margin: 18px 0 6px; color: #444; }
p.meta, p.headline { color: #57606a; margin: 2px 0 10px; }
p.summary { font-weight: 600; margin: 6px 0 10px; }
p.warning { background: #eef2f8; border-left: 4px solid #8aa4c8; padding: 6px 10px; margin: 8px 0; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { padding: 4px 9px; border-bottom: 1px solid #e3e6e8; text-align: left; vertical-align: top; }
thead th { border-bottom: 2px solid #8c959f; background: #f6f8fa; font-weight: 600; }
thead tr.sub th { font-weight: normal; color: #57606a; background: #fafbfc; }
th.group { text-align: center; border-bottom: 1px solid #c9d1d9; }
td.ours, td.paper, td.diff { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.ours { font-weight: 600; } td.paper { color: #57606a; }
td.name { font-weight: 600; white-space: nowrap; }
table.provenance, table.others { font-size: 12px; } table.provenance td { font-family: "DejaVu Sans Mono", monospace; }
table.provenance td:first-child { font-family: inherit; font-weight: 600; }
span.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; white-space: nowrap; }
.s-reproduced { background: #dafbe1; color: #116329; } .s-off { background: #ffebe9; color: #a40e26; }
.s-not-comparable { background: #eef2f8; color: #3b5478; } .s-no-paper-value { background: #f3f4f6; color: #57606a; }
.s-running, .s-stopped { background: #fff8c5; color: #7d4e00; } .s-failed { background: #a40e26; color: #fff; }
.s-not-run { background: #f6f8fa; color: #8c959f; border: 1px dashed #c9d1d9; } .s-not-validated, .s-not-measured { background: #fff1e5; color: #953800; }
figure { margin: 12px 0 20px; } figure img { max-width: 100%; border: 1px solid #e3e6e8; }
figcaption { color: #57606a; font-size: 13px; max-width: 1000px; }
ul.notes { color: #57606a; font-size: 13px; } a { color: #0969da; }
nav.files { font-size: 12px; color: #57606a; }
details { margin: 10px 0; } details summary { cursor: pointer; color: #444; font-weight: 600; font-size: 14px; }
"""


def badge(status: str, label: str | None = None) -> str:
    """The status as a coloured label (or another label in the status's colour)."""
    text = status if label is None else label
    return f'<span class="badge s-{status.replace(" ", "-")}">{escape(text)}</span>' if status else ""


def _td(cell: Cell) -> str:
    if cell.role == "status":
        return f'<td class="status">{badge(cell.status)}</td>'
    text = escape(cell.text) if cell.text else BLANK
    return f'<td class="{cell.role}">{text}</td>' if cell.role else f"<td>{text}</td>"


def grouped_table(groups: Sequence[Group], rows: Sequence[Sequence[Cell]], css: str = "results") -> str:
    top = []
    for g in groups:
        title = escape(g.title)
        top.append(f'<th class="group" colspan="{g.width}">{title}</th>' if g.subs else f'<th rowspan="2">{title}</th>')
    head = "<tr>" + "".join(top) + "</tr>"
    if any(g.subs for g in groups):
        head += '<tr class="sub">' + "".join(f"<th>{escape(s)}</th>" for g in groups for s in g.subs) + "</tr>"
    else:
        head = head.replace(' rowspan="2"', "")
    body = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in rows)
    return f'<table class="{css}"><thead>{head}</thead><tbody>{body}</tbody></table>'


def plain_table(grid: Grid, css: str) -> str:
    return grouped_table([Group(h) for h in grid[0]], [[Cell(c) for c in r] for r in grid[1]], css)


def figures_html(figures: Sequence[FigureRef]) -> str:
    return "".join(
        f'<figure><img src="{escape(f.png)}" alt="{escape(f.caption)}"><figcaption>{escape(f.caption)} '
        f'<a href="{escape(f.pdf)}">PDF</a></figcaption></figure>'
        for f in figures
    )


def section(view: TableView, figures: Sequence[FigureRef] = (), files: Sequence[str] = (), heading: str = "h2") -> str:
    """The table's section: title, summary, the table, figures, provenance, the paper's other rows, notes."""
    parts = [f'<section id="{escape(view.name)}"><{heading}>{escape(view.title)}</{heading}>']
    if view.static is not None:
        parts += [f'<p class="summary">{escape(summary_text(view))}</p>', plain_table(view.static, "static")]
    else:
        groups, rows = main_grid(view)
        parts += [
            f'<p class="headline">{escape(headline(view))}</p>',
            f'<p class="summary">{escape(summary_text(view))}</p>',
        ]
        if view.incomparable and any(r.state == "done" for r in view.rows):
            parts.append(f'<p class="warning">{escape(view.incomparable)}</p>')
        parts.append(grouped_table(groups, rows))
    parts.append(figures_html(figures))
    if view.static is None:
        parts += ["<h3>Provenance</h3>", plain_table(provenance_grid(view), "provenance")]
    if view.references:  # the paper's own rows: at hand, folded so that ours stay in view
        parts.append(
            f"<details><summary>Other methods: {len(view.references[1])} rows, the paper's numbers</summary>"
            f"{plain_table(view.references, 'others')}</details>"
        )
    if view.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in view.notes) + "</ul>")
    if view.paper_source:
        parts.append(f'<p class="meta">Paper source: {escape(view.paper_source)}</p>')
    if files:
        parts.append(
            '<nav class="files">Files: '
            + " · ".join(f'<a href="{escape(f)}">{escape(f)}</a>' for f in files)
            + "</nav>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def render(view: TableView, figures: Sequence[FigureRef] = (), files: Sequence[str] = (), index: bool = True) -> str:
    """A page for one table; with `index`, a link back to index.html (which holds the same section)."""
    back = '<p class="meta"><a href="index.html">All tables and figures</a></p>' if index else ""
    return page(view.title, back + section(view, figures, files, heading="h1"))
