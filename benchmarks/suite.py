"""Suite section: the planner and the report are fast.

- `python -m experiments.run NAME --dry-run` for every table and figure, each in a fresh process
  (interpreter start and imports included, as a user types it), under the paper preset: the
  slowest must finish in under 2 s.
- The report's tables (plan + read records + views + Markdown/LaTeX/HTML) from about 1000 run
  records (benchmarks/reports.py writes them): under 5 s. Figures are timed apart.
- `python -m COMMAND --help` for every command (benchmarks/commands.py finds them), each in a
  fresh process: the slowest under 1 s (none imports torch or MLflow for it; a test checks that).
  A bare interpreter's start is timed beside them, for scale.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.commands import commands
from benchmarks.sections import Options, Result, Target, register
from experiments.spec import NAMES, load


def _dry_run_seconds(name: str, runs: Path, environ: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "experiments.run", name, "--dry-run", "--runs-dir", str(runs)],
        check=True,
        capture_output=True,
        env=environ,
    )
    return time.perf_counter() - start


def _seconds(argv: list[str], environ: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, capture_output=True, env=environ)
    return time.perf_counter() - start


@register(
    "suite",
    "experiments.run NAME --dry-run for every table, every command's --help (fresh processes); "
    "report tables from ~1000 records",
)
def suite(options: Options) -> Result:
    from benchmarks.reports import TRAINED, write_records
    from reports import html, latex, markdown
    from reports.build import draw
    from reports.sources import LocalSource
    from reports.tables import build_table

    seeds = 2 if options.quick else 26  # 26 seeds: about 1000 records
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        environ = {**os.environ, "TDSCLIP_LOCATIONS": str(root / "none.toml"), "TDSCLIP_CACHE": str(root / "cache")}
        os.environ.update({k: environ[k] for k in ("TDSCLIP_LOCATIONS", "TDSCLIP_CACHE")})
        dry = {name: _dry_run_seconds(name, root / "runs", environ) for name in NAMES}
        bare = min(_seconds(["-c", "pass"], environ) for _ in range(3))
        helps = {module: _seconds(["-m", module, "--help"], environ) for module in commands()}
        count = write_records(root / "runs", seeds)
        specs = [load(n) for n in TRAINED]
        start = time.perf_counter()
        views = [build_table(s, "paper", LocalSource(root / "runs"), root / "runs", seeds=seeds) for s in specs]
        rendered = [(markdown.render(v), latex.render(v), html.render(v)) for v in views]
        tables_s = time.perf_counter() - start
        start = time.perf_counter()
        figures = [draw(s, v, root / "out") for s, v in zip(specs, views)]
        figures_s = time.perf_counter() - start
    slowest = max(dry, key=dry.get)
    slowest_help = max(helps, key=helps.get)
    keys = {
        "dry_run_max_s": dry[slowest],
        "report_1000_runs_s": tables_s,
        "report_figures_s": figures_s,
        "report_records": float(count),
        "help_max_s": helps[slowest_help],
        "interpreter_start_s": bare,
    }
    targets = [
        Target("dry_run_max_s", dry[slowest], "<=", 2.0, "every table's --dry-run in under 2 s"),
        Target("report_1000_runs_s", tables_s, "<=", 5.0, f"the report's tables from {count} run records in under 5 s"),
        Target("help_max_s", helps[slowest_help], "<=", 1.0, f"every command's --help in under 1 s ({len(helps)})"),
    ]
    report = [
        f"suite: --dry-run per table, fresh process: slowest {slowest} {dry[slowest]:.2f} s, "
        f"median {sorted(dry.values())[len(dry) // 2]:.2f} s",
        f"  report tables from {count} records ({len(specs)} tables, {seeds} seeds per row): {tables_s:.2f} s "
        f"({len(rendered)} x md/tex/html); {sum(len(f) for f in figures)} figures: {figures_s:.2f} s",
        f"  --help of {len(helps)} commands, fresh process: slowest {slowest_help} {helps[slowest_help]:.2f} s, "
        f"median {sorted(helps.values())[len(helps) // 2]:.2f} s (a bare interpreter starts in {bare:.2f} s)",
    ]
    return Result(keys=keys, targets=targets, report=report, details={"dry_run_s": dry, "help_s": helps})
