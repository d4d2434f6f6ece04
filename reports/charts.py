"""Charts of a table view, ours beside the paper's, as PNG and PDF (matplotlib, no pyplot state).

- single-knob ablations (Tables III-IX, XI): top-1 per setting, ours (mean, seed spread as error
  bars) and the paper's, as two lines over the settings;
- Table XII: memory as ratios to the baseline row, ours and the paper's as paired bars;
- Fig. 6: our top-1 per training fraction, one line per model; the paper gives only TDS-CLIP's
  gaps at 5%, drawn as points that far below our TDS-CLIP 5% point.

Rows that have not run are left out of the lines and marked "(not run)" on the axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from experiments.spec import Spec
from reports import status as st
from reports.grid import FigureRef
from reports.tables import RowView, TableView, Value

OURS, PAPER, OTHER = "#1f6feb", "#8c959f", "#cf222e"
KNOBS = {
    "table3": "component",
    "table4": "local frames m",
    "table5": "fusion rate alpha / beta (RGB / SME)",
    "table6": "TD-Adapter core",
    "table7": "pooling kernel k",
    "table8": "side-network width d",
    "table9": "TD-Adapter layers",
    "table11": "SME-Adapter location",
}
"""The knob each single-knob ablation varies (the chart's x axis)."""


def figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return fig, fig.add_subplot()


def save(fig, out: Path, name: str, caption: str) -> FigureRef:
    """figures/<name>.png and .pdf under `out` (fixed metadata, so a rebuild gives the same PDF)."""
    folder = out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", metadata={"Software": None})
    fig.savefig(
        folder / f"{name}.pdf", metadata={"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None}
    )
    return FigureRef(f"figures/{name}.png", f"figures/{name}.pdf", caption)


def _compared(view: TableView) -> str:
    return next(c.key for c in view.columns if c.kind == "compared")


def _label(row: RowView) -> str:
    """The row's name, with why it has no point (its state, or not validated / not measured)."""
    if row.state != "done":
        return f"{row.name}\n({row.state})"
    return f"{row.name}\n({row.status})" if row.status in (st.NOT_VALIDATED, st.NOT_MEASURED) else row.name


def _points(values: Sequence[Value], paper: bool = False) -> tuple[list[int], list[float], list[float]]:
    xs, ys, errs = [], [], []
    for x, v in enumerate(values):
        y = v.paper if paper else v.ours
        if isinstance(y, float):
            xs.append(x)
            ys.append(y)
            errs.append(0.0 if paper or v.spread is None else v.spread)
    return xs, ys, errs


def _annotate(ax, xs: Sequence[float], ys: Sequence[float], places: int, color: str, below: bool = False) -> None:
    for x, y in zip(xs, ys):
        ax.annotate(
            f"{y:.{places}f}",
            (x, y),
            textcoords="offset points",
            xytext=(8, -12 if below else 6),
            fontsize=8,
            color=color,
        )


def ablation(view: TableView, out: Path) -> FigureRef:
    """Top-1 per setting: ours (error bars: seed spread) and the paper's."""
    key = _compared(view)
    values = [r.values[key] for r in view.rows]
    fig, ax = figure(max(5.0, 1.3 * len(view.rows) + 2.0), 3.6)
    px, py, _ = _points(values, paper=True)
    ox, oy, oe = _points(values)
    ax.plot(px, py, "s--", color=PAPER, label="paper")
    _annotate(ax, px, py, 1, PAPER, below=True)
    if ox:
        ax.errorbar(
            ox, oy, yerr=oe if any(oe) else None, fmt="o-", color=OURS, capsize=3, label=f"ours ({view.preset})"
        )
        _annotate(ax, ox, oy, 1, OURS)
    ax.set_xticks(range(len(view.rows)), [_label(r) for r in view.rows], fontsize=9)
    ax.set_xlim(-0.5, len(view.rows) - 0.5)
    ax.margins(y=0.25)
    ax.set_xlabel(KNOBS.get(view.name, "setting"))
    ax.set_ylabel(next(c.header for c in view.columns if c.key == key))
    ax.set_title(view.title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=9, loc="best")
    note = f" {view.incomparable}." if view.incomparable else ""
    return save(fig, out, view.name, f"{view.title}: our top-1 beside the paper's.{note}")


def memory(view: TableView, out: Path) -> FigureRef:
    """Table XII: ratio to the baseline row, ours beside the paper's."""
    values = [r.values["ratio"] for r in view.rows]
    fig, ax = figure(7.0, 3.6)
    xs = range(len(view.rows))
    ours = [v.ours if isinstance(v.ours, float) else 0.0 for v in values]
    paper = [v.paper if isinstance(v.paper, float) else 0.0 for v in values]
    bars = ax.bar([x - 0.2 for x in xs], ours, 0.4, color=OURS, label=f"ours ({view.preset})")
    ax.bar_label(bars, labels=[v.ours_text for v in values], fontsize=8)
    bars = ax.bar([x + 0.2 for x in xs], paper, 0.4, color=PAPER, label="paper")
    ax.bar_label(bars, labels=[v.paper_text for v in values], fontsize=8)
    ax.set_xticks(list(xs), [_label(r) for r in view.rows], fontsize=9)
    ax.axhline(1.0, color="#57606a", linewidth=0.8, linestyle=":")
    ax.set_ylabel("memory / baseline's")
    ax.set_title(view.title, fontsize=11)
    ax.margins(y=0.15)
    ax.legend(fontsize=9)
    what = f" Ours: {view.protocol}." if view.protocol else ""
    return save(fig, out, view.name, f"{view.title}: memory as a ratio to the baseline row.{what}")


def data_efficiency(spec: Spec, view: TableView, out: Path) -> FigureRef:
    """Fig. 6: top-1 per training fraction per model; the paper's gaps at 5% below our TDS-CLIP 5% point."""
    fig, ax = figure(7.5, 4.2)
    fractions = [float(f) for f in spec.extra["fractions"]]
    anchor = None
    missing = []
    for number, series in enumerate(spec.extra["series"]):
        rows = [r for r in view.rows if r.name.startswith(f"{series} ")]
        points = [(float(r.values["fraction"].paper), r.values["top1"]) for r in rows]
        done = [(x, v) for x, v in points if isinstance(v.ours, float)]
        missing += [
            f"{series} {x:g}% ({v.why or v.status or st.NOT_RUN})" for x, v in points if not isinstance(v.ours, float)
        ]
        if done:
            color = OURS if number == 0 else "#8250df"
            ax.errorbar(
                [x for x, _ in done],
                [v.ours for _, v in done],
                yerr=[v.spread or 0.0 for _, v in done] if any(v.spread for _, v in done) else None,
                fmt="o-",
                color=color,
                capsize=3,
                label=f"{series} (ours, {view.preset})",
            )
            if number == 0 and done[0][0] == fractions[0]:
                anchor = done[0][1].ours
    if anchor is not None:
        for name, gap in _gaps(spec):
            y = anchor - gap
            ax.plot([fractions[0]], [y], "D", mfc="none", color=OTHER)
            ax.annotate(
                f"{name} (paper: −{gap:g})",
                (fractions[0], y),
                textcoords="offset points",
                xytext=(8, -3),
                fontsize=8,
                color=OTHER,
            )
    else:
        ax.text(
            0.02,
            0.04,
            "the paper's gaps at 5% need our TDS-CLIP 5% point, which has not run",
            transform=ax.transAxes,
            fontsize=8,
            color=OTHER,
        )
    ax.set_xscale("log")
    ax.set_xticks(fractions, [f"{f:g}%" for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("training data used")
    ax.set_ylabel("Top-1 (%)")
    ax.set_title(view.title, fontsize=11)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    caption = (
        f"{view.title}: our top-1 per training fraction; the paper prints only TDS-CLIP's gaps at 5% "
        "(points drawn that far below our TDS-CLIP 5% point)."
    )
    if missing:
        caption += f" No point: {', '.join(missing)}."
    return save(fig, out, view.name, caption)


def _gaps(spec: Spec) -> list[tuple[str, float]]:
    """('EVL-B/16', 25.9), ... from Fig. 6's reference rows 'TDS-CLIP minus EVL-B/16 at 5%'."""
    out = []
    for ref in spec.references:
        gap = ref.values.get("gap_5")
        if isinstance(gap, (int, float)):
            out.append((ref.name.removeprefix("TDS-CLIP minus ").removesuffix(" at 5%"), float(gap)))
    return out
