"""How long the report takes: tables from ~1000 run records (target: under 5 s), figures apart.

    python -m benchmarks.reports [--seeds 20] [--keep DIR]

Writes run records in the Tracker's format (run.json, result.json with per-class top-1 and the
config, as real runs have) for every row of every trained table and figure (Tables I-IX, XI,
Fig. 6) under the paper preset, with --seeds seeds per row, into a temporary runs folder. Then
times, each on its own: planning (experiments.plan, which every build starts with), building the
table views from the records, rendering Markdown, LaTeX and HTML, and drawing the figures.

Planning used to dominate (tdsclip.config resolved type hints on every override it parsed, about
16 ms per row and seed); they are cached now (tdsclip.config._field_types).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from experiments.plan import plan, record_tags
from experiments.spec import NAMES, load
from tdsclip.records import now_iso, write_json_atomic

TRAINED = tuple(n for n in NAMES if load(n).kind == "runs")


def write_records(runs: Path, seeds: int) -> int:
    """One finished record per distinct run the trained tables need; returns how many."""
    rng = random.Random(0)
    made: dict[str, dict[str, str]] = {}  # run id -> its tags, one table.<name> per table it is a row of
    for name in TRAINED:
        for p in plan(load(name), "paper", seeds=seeds, runs_dir=runs):
            made.setdefault(p.run_id, {}).update(record_tags(load(name), p, "paper", []))
    written: set[str] = set()
    for name in TRAINED:
        for p in plan(load(name), "paper", seeds=seeds, runs_dir=runs):
            if p.run_id in written:
                continue
            written.add(p.run_id)
            folder = runs / p.run_id
            tags = {
                **made[p.run_id],
                "run_id": p.run_id,
                "preset": "paper",
                "data_manifest": "0" * 24,
                "git_sha": "f" * 40,
                "git_dirty": "false",
            }
            write_json_atomic(
                folder / "run.json",
                {"run_id": p.run_id, "params": {"train.seed": p.seed}, "tags": tags, "created": now_iso()},
            )
            metrics = {
                "val_top1_best": rng.uniform(55, 62),
                "test_top1": rng.uniform(55, 75),
                "test_top5": rng.uniform(80, 95),
                "test_videos": 11522.0,
            }
            write_json_atomic(
                folder / "result.json",
                {
                    "run_id": p.run_id,
                    "preset": "paper",
                    "metrics": metrics,
                    "status": "FINISHED",
                    "finished": now_iso(),
                    "per_class_top1": {str(c): rng.uniform(0, 100) for c in range(174)},
                    "config": {f"section.key_{k}": k for k in range(120)},
                },
            )
    return len(written)


def timed(what: str, fn):
    start = time.perf_counter()
    result = fn()
    print(f"{what:58s} {time.perf_counter() - start:6.2f} s", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reports", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=26, help="seeds per row (default 26: 1014 records)")
    parser.add_argument("--keep", type=Path, help="write the records and the report here instead of a temporary folder")
    args = parser.parse_args(argv)
    from reports import html, latex, markdown
    from reports.build import draw, write
    from reports.sources import LocalSource
    from reports.tables import build_table

    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        runs, out = root / "runs", root / "report"
        os.environ["TDSCLIP_LOCATIONS"] = str(root / "none.toml")  # this machine's data and weights play no part
        os.environ["TDSCLIP_CACHE"] = str(root / "cache")
        count = write_records(runs, args.seeds)
        specs = [load(n) for n in TRAINED]
        print(f"{count} run records ({args.seeds} seeds per row), {len(specs)} tables: {', '.join(TRAINED)}")

        def tables(seeds: int | None):
            return [build_table(s, "paper", LocalSource(runs), runs, seeds=seeds) for s in specs]

        planning = timed(
            "planning alone (experiments.plan, seeds given)",
            lambda: [plan(s, "paper", seeds=args.seeds, runs_dir=runs) for s in specs],
        )
        views = timed("tables: plan + read records + views (seeds given)", lambda: tables(args.seeds))
        timed("tables: the same, seeds found from the records", lambda: tables(None))
        timed(
            "render Markdown, LaTeX and HTML",
            lambda: [(markdown.render(v), latex.render(v), html.render(v)) for v in views],
        )
        figures = timed(
            "figures: matplotlib import + PNG and PDF", lambda: [draw(s, v, out) for s, v in zip(specs, views)]
        )
        timed("write the files", lambda: [write(v, f, out, ("md", "tex", "html")) for v, f in zip(views, figures)])
        print(
            f"{sum(len(f) for f in figures)} figures; {sum(len(v.rows) for v in views)} rows, "
            f"{sum(len(p) for p in planning)} planned runs"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
