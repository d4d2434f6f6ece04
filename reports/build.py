"""The paper's tables and figures regenerated from the run records, the paper's numbers beside ours.

    python -m reports.build                                     # every table and figure, every preset with runs
    python -m reports.build table3 table4 --preset smoke --out /tmp/report
    python -m reports.build table1 --source mlflow --format md,tex
    python -m reports.build table3 --preset smoke train.epochs=2   # only runs made with these overrides

Writes <out>/<name>.md, .tex and .html per table, figures/<name>.png and .pdf where the table has a
chart, sweep-<study>.html per sweep study started from the runs folder (python -m sweeps.run), and
index.html with everything on one page. Runs are found by what their records say they are (table,
row, preset, overrides, seed), never re-planned: every recorded override set is shown, each its
own rows with its overrides printed. Without --preset, each preset that has runs gets its own
report (the first in --out, the others in --out/<preset>/), each index linking the others.
Reads the records only: nothing is trained.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from experiments.spec import NAMES, Spec, SpecError, load
from reports import html, index, latex, markdown
from reports.grid import FigureRef, summary_text
from reports.sources import SOURCES, Source, open_source
from reports.tables import TableView, build_table
from tdsclip.cli import OneLineParser
from tdsclip.config import ConfigError
from tdsclip.mirror import MirrorError
from tdsclip.presets import PRESETS
from tdsclip.records import writable_folder
from tdsclip.runstate import default_reports_dir, default_runs_dir

FORMATS = ("md", "tex", "html")


default_out = default_reports_dir


def parse_formats(text: str) -> tuple[str, ...]:
    wanted = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise ValueError(f"--format: expected a comma-separated subset of {','.join(FORMATS)}, got {text!r}")
    return wanted


@dataclass
class Built:
    """One table's report: its view, figures and files (paths relative to the output folder)."""

    view: TableView
    figures: list[FigureRef]
    files: list[str]
    out: Path
    """The folder the view's files are in (out, or out/<preset> for a preset after the first)."""


def draw(spec: Spec, view: TableView, out: Path) -> list[FigureRef]:
    """The table's figures, of the kind its spec names (`Spec.chart`; matplotlib is imported only
    when there is one to draw)."""
    if view.static is not None or spec.chart == "none":
        return []
    from reports import charts

    if spec.chart == "ablation":
        return [charts.ablation(view, out)]
    if spec.chart == "memory":
        return [charts.memory(view, out)]
    if spec.chart == "data_efficiency":
        return [charts.data_efficiency(spec, view, out)]
    if spec.chart == "maps":
        from reports import overlays

        figure = overlays.activation_maps(view, out)
        return [figure] if figure else []
    return []


def write(
    view: TableView, figures: Sequence[FigureRef], out: Path, formats: Sequence[str], index: bool = True
) -> list[str]:
    """<name>.md / .tex / .html under `out` (the page links index.html if there is one); returns the
    files written and the figures, relative to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    files = [f"{view.name}.{f}" for f in formats]
    links = files + [p for f in figures for p in (f.png, f.pdf)]
    for name in files:
        fmt = name.rsplit(".", 1)[1]
        text = (
            markdown.render(view, figures)
            if fmt == "md"
            else latex.render(view)
            if fmt == "tex"
            else html.render(view, figures, links, index)
        )
        (out / name).write_text(text, encoding="utf-8")
    return links


def presets_with_runs(reader: Source) -> list[str]:
    """The presets the records hold runs of: paper first, then the others by name."""
    found = {f.preset for f in reader.find() if f.preset in PRESETS}
    return sorted(found, key=lambda p: (p != "paper", p))


def build(
    names: Sequence[str] = NAMES,
    *,
    preset: str | None = None,
    out: Path | None = None,
    formats: Sequence[str] = FORMATS,
    runs_dir: Path | None = None,
    source: str | Source = "records",
    seeds: int | None = None,
    overrides: Sequence[str] | None = None,
    figures: bool = True,
    with_index: bool = True,
    tracking_uri: str | None = None,
    first: str | None = None,
) -> list[Built]:
    """Build each named table's report into `out`, and index.html over them (with html among the
    formats). preset=None: one report per preset that has runs (paper if none has), the first in
    `out`, each other in out/<preset>/, every index linking the others. overrides=None: every
    recorded override set, each its own rows; a list: only runs made with exactly those. first:
    the preset whose report goes in `out` itself (experiments.run's: the one it just ran)."""
    out = Path(out) if out is not None else default_out()
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    specs = [load(name) for name in dict.fromkeys(names)]  # unknown names fail before anything is written
    if preset is not None and preset not in PRESETS:
        raise SpecError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    writable_folder(out, "output folder", "--out or $TDSCLIP_REPORTS")
    reader = open_source(source, runs_dir, tracking_uri) if isinstance(source, str) else source
    presets = [preset] if preset else list(dict.fromkeys([*([first] if first else []), *presets_with_runs(reader)]))
    presets = presets or ["paper"]
    built: list[Built] = []
    for number, name in enumerate(presets):
        where = out if number == 0 else out / name
        others = [
            (p, (f"{p}/index.html" if number == 0 else "../index.html" if i == 0 else f"../{p}/index.html"))
            for i, p in enumerate(presets)
            if p != name
        ]
        mine = [
            _build_one(spec, name, reader, runs_dir, where, formats, seeds, overrides, figures, with_index)
            for spec in specs
        ]
        built += mine
        if with_index and "html" in formats:
            from reports import studies

            text = index.render(
                [b.view for b in mine],
                {b.view.name: b.figures for b in mine},
                {b.view.name: b.files for b in mine},
                name,
                getattr(reader, "description", str(source)),
                studies.render_all(runs_dir, where) if figures and number == 0 else [],
                others,
            )
            (where / "index.html").write_text(text, encoding="utf-8")
    return built


def _build_one(
    spec: Spec,
    preset: str,
    reader: Source,
    runs_dir: Path,
    out: Path,
    formats: Sequence[str],
    seeds: int | None,
    overrides: Sequence[str] | None,
    figures: bool,
    with_index: bool,
) -> Built:
    view = build_table(spec, preset, reader, runs_dir, seeds=seeds, overrides=overrides)
    drawn = draw(spec, view, out) if figures else []
    return Built(view, drawn, write(view, drawn, out, formats, with_index), out)


def report_for_run(name: str, preset: str, runs_dir: Path, overrides: Sequence[str] = (), seeds: int = 1) -> Path:
    """What `python -m experiments.run NAME` ends with: the report of everything in `runs_dir`
    rebuilt (so index.html and every page agree), and the path of NAME's page under `preset`.
    Every override set recorded is on the page, the one just run among them."""
    out = default_out()
    build(out=out, runs_dir=runs_dir, first=preset)
    return out / f"{name}.html"


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m reports.build", description=__doc__.splitlines()[0])
    p.add_argument(
        "items",
        nargs="*",
        metavar="NAME or key=value",
        help=f"tables and figures (default: all: {', '.join(NAMES)}), and the config overrides the runs used",
    )
    p.add_argument(
        "--preset",
        default=None,
        help=f"{', '.join(PRESETS)} (default: every preset that has runs, each its own section)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default reports/out, or $TDSCLIP_REPORTS)")
    p.add_argument("--format", default=",".join(FORMATS), help="comma-separated: md, tex, html (default all)")
    p.add_argument("--runs-dir", type=Path, default=None, help="run folders (default runs/ or $TDSCLIP_RUNS)")
    p.add_argument("--source", default="records", help="records (runs/<run_id>/result.json, default) or mlflow")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="with --source mlflow (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per row (default: as many as have records)")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = [i for i in args.items if "=" not in i] or list(NAMES)
    overrides = [i for i in args.items if "=" in i] or None
    try:
        if args.source not in SOURCES:
            raise ValueError(f"--source: expected one of {', '.join(SOURCES)}, got {args.source!r}")
        formats = parse_formats(args.format)
        out = args.out or default_out()
        built = build(
            names,
            preset=args.preset,
            out=out,
            formats=formats,
            runs_dir=args.runs_dir,
            source=args.source,
            seeds=args.seeds,
            overrides=overrides,
            figures=not args.no_figures,
            tracking_uri=args.tracking_uri,
        )
    except (SpecError, ConfigError, ValueError) as error:
        print(f"reports.build: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a read-only or missing output folder, an unreadable runs folder
        print(f"reports.build: {error.filename or args.out}: {error.strerror or error}", file=sys.stderr)
        return 2
    except MirrorError as error:  # --source mlflow and MLflow cannot be reached
        print(f"reports.build: {error}", file=sys.stderr)
        return 1
    for b in built:
        print(f"{b.view.name:8s} {summary_text(b.view)}")
    print(out / "index.html" if "html" in formats else out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
