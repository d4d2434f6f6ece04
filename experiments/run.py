"""One paper table or figure: plan, run, track, report.

    python -m experiments.run --list
    python -m experiments.run table3 --dry-run                 # the plan: run ids, status, GPU-hours
    python -m experiments.run table3 --preset smoke            # run the pending rows here, one by one
    python -m experiments.run table3 --preset smoke --jobs 3   # three rows at once, cores shared out
    python -m experiments.run table3 --rows "Baseline,+ TD-Adapter" --seeds 3 train.epochs=20
    python -m experiments.run table1 --released [--dry-run]   # rows evaluated from the authors' checkpoints

Finished rows are skipped (--force trains them again into a fresh run folder); interrupted ones
resume from their checkpoints. `key=value` overrides apply to every row, after the preset and the
spec. The dry run imports neither torch nor MLflow. A run ends by building the table's report
(reports/out/<name>.html, or under $TDSCLIP_REPORTS) and prints its path as the last line.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments import plan as planning
from experiments.cost import A100_SUSTAINED_TFLOPS, CPU_SUSTAINED_TFLOPS
from experiments.render import format_plan, format_static, format_summary
from experiments.spec import NAMES, Spec, SpecError, load
from slurm.profiles import add_profile_arguments
from tdsclip.cli import OneLineParser
from tdsclip.config import ConfigError
from tdsclip.presets import PRESETS
from tdsclip.records import writable_folder
from tdsclip.runstate import default_runs_dir

log = logging.getLogger("experiments")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m experiments.run", description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", help=f"one of {', '.join(NAMES)}")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every row")
    p.add_argument("--list", action="store_true", help="list the tables and figures")
    p.add_argument("--preset", default="paper", help=f"{', '.join(PRESETS)} (default paper)")
    p.add_argument("--rows", help="comma-separated row names (default: all rows)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per row: the preset's seed, +1, +2, ... (default 1)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its cost, run nothing")
    p.add_argument(
        "--released",
        action="store_true",
        help="evaluate each row from the authors' released checkpoint instead of training it (Tables I, II)",
    )
    p.add_argument(
        "--force", action="store_true", help="train finished rows again (their MLflow runs are marked superseded)"
    )
    p.add_argument(
        "--wait", action="store_true", help="a row another process is training: wait for it instead of refusing"
    )
    p.add_argument("--runs-dir", type=Path, default=None, help="run folders (default runs/ or $TDSCLIP_RUNS)")
    p.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default="local",
        help="local: run the rows here (one after another, or --jobs N at once); slurm: submit them as job arrays and return",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="local: rows trained at once, each a process of its own (CPU: cores shared out; CUDA: GPUs shared out)",
    )
    p.add_argument("--gpus", help="local: indexes of the GPUs the jobs share, e.g. 0,1,2,3 (default: all visible)")
    add_profile_arguments(p)
    p.add_argument("--nodes", type=int, default=1, help="nodes per Slurm job (DDP over nodes x tasks per node)")
    p.add_argument("--status", action="store_true", help="the table's Slurm jobs: state, progress, GPU-hours, results")
    p.add_argument("--cancel", action="store_true", help="cancel the table's Slurm jobs")
    p.add_argument(
        "--a100-tflops",
        type=float,
        default=None,
        help=f"sustained throughput per GPU for the estimate (default {A100_SUSTAINED_TFLOPS:g}; "
        f"CPU presets {CPU_SUSTAINED_TFLOPS:g})",
    )
    return p


def list_specs() -> str:
    lines = []
    for name in NAMES:
        spec = load(name)
        lines.append(f"{name:8s} {spec.kind:8s} {len(spec.rows):2d} rows  {spec.title}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.list or not args.name:
        print(list_specs())
        if not args.list:
            print("\npython -m experiments.run NAME --dry-run   # its plan: rows, run ids, status, cost")
        return 0
    if args.jobs < 1:
        print(f"experiments.run: --jobs {args.jobs}: expected a number of rows at once >= 1", file=sys.stderr)
        return 2
    if args.executor == "slurm" and (args.jobs > 1 or args.gpus):
        print(
            "experiments.run: --jobs and --gpus share this machine between rows (the local executor); "
            "under --executor slurm every row is a Slurm job of its own already: drop them",
            file=sys.stderr,
        )
        return 2
    runs_dir = args.runs_dir or default_runs_dir()
    try:
        spec = load(args.name)
        if args.released:  # each row evaluated from its released checkpoint: experiments/released.py
            from experiments import released

            code = released.command(args, spec, runs_dir)
            return code if args.dry_run else report(spec, args.preset, runs_dir, args.overrides, 1) or code

        def plan_rows() -> list:
            return planning.plan(
                spec,
                args.preset,
                rows=args.rows,
                seeds=args.seeds,
                overrides=args.overrides,
                runs_dir=runs_dir,
                tflops=args.a100_tflops,
            )

        runs = plan_rows()
        if args.status or args.cancel:
            from experiments import cluster

            print(
                cluster.status(spec, args.preset, runs, runs_dir)
                if args.status
                else cluster.cancel(spec, args.preset, runs_dir)
            )
            return 0
        if args.dry_run:
            print(format_plan(spec, args.preset, runs, args.a100_tflops) if runs else format_static(spec))
            if args.executor == "slurm" and runs:
                from experiments import cluster

                print(
                    "\n"
                    + cluster.dry_run(spec, args.preset, runs, args.profile, args.profile_set, args.nodes, runs_dir)
                )
            return 0
        planning.require_locations(runs)  # every missing location in one line, before anything starts
        if spec.kind not in ("static", "presets"):
            writable_folder(runs_dir, "runs folder", "--runs-dir or $TDSCLIP_RUNS")
        if args.executor == "slurm" and spec.kind == "runs":
            from experiments import cluster
            from slurm.submit import check_controller

            check_controller()  # before reading data or writing a snapshot

            if planning.read_data(runs):  # jobs compute the same ids; record final ones
                runs = plan_rows()

            submission = cluster.submit(
                spec, args.preset, runs, args.overrides, args.profile, args.profile_set, args.nodes, runs_dir
            )
            for row in submission.rows:
                print(f"{row['job_id']}  {row['row']} (seed {row['seed']})  run {row['run_id']}")
            print(f"{submission.report_job}  report (after the runs)")
            return 0
        if args.executor == "slurm":
            raise SpecError(f"{spec.name} is a {spec.kind} table: it runs here (--executor local), not on Slurm")
        code = execute(
            spec,
            args.preset,
            runs,
            runs_dir,
            force=args.force,
            overrides=args.overrides,
            wait=args.wait,
            jobs=args.jobs,
            gpus=args.gpus,
        )
    except (SpecError, ConfigError, ValueError, RuntimeError) as error:  # RuntimeError: a Slurm command failed
        print(f"experiments.run: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a read-only or missing runs folder
        print(f"experiments.run: {error.filename or runs_dir}: {error.strerror or error}", file=sys.stderr)
        return 2
    return report(spec, args.preset, runs_dir, args.overrides, args.seeds) or code


def report(spec: Spec, preset: str, runs_dir: Path, overrides: Sequence[str], seeds: int) -> int:
    """Build the table's report from the records and print its path (last line). Imported here, not
    at module level, since reports imports experiments."""
    from reports.build import report_for_run

    try:
        print(report_for_run(spec.name, preset, runs_dir, overrides, seeds))
    except Exception as error:  # noqa: BLE001 - the runs are done and recorded; say why the report is not
        print(f"experiments.run: the report of {spec.name} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


def _supersede(run_id: str) -> None:
    """Mark the old MLflow run of a run trained again (--force), so the new curves start fresh."""
    from tdsclip.mirror import MirrorError
    from tdsclip.track import supersede

    try:
        supersede(run_id)
    except (MirrorError, OSError) as error:
        log.warning("MLflow: could not mark run %s superseded (%s); its old MLflow run stays", run_id, error)


def execute(
    spec: Spec,
    preset: str,
    runs: list[planning.Planned],
    runs_dir: Path,
    *,
    force: bool,
    overrides: Sequence[str] = (),
    wait: bool = False,
    jobs: int = 1,
    gpus: str | None = None,
) -> int:
    """Run what the plan still needs on this machine (up to `jobs` rows at once), then print the
    table and where it is."""
    from experiments import local

    if jobs > 1 and spec.kind in ("static", "presets", "measure"):
        print(f"note: {spec.name} trains nothing (its rows are {spec.kind}); --jobs {jobs} does not apply")
    if spec.kind in ("static", "presets"):
        print(format_static(spec))
        return 0
    if force:
        for run in runs:
            if run.status == "finished" and not run.shared_with and (runs_dir / run.run_id).exists():
                _supersede(run.run_id)
                shutil.rmtree(runs_dir / run.run_id)
    if spec.kind == "measure":
        outcomes = local.measure_rows(spec, runs, runs_dir)
    else:
        outcomes = local.train_rows(spec, preset, runs, runs_dir, overrides, wait, jobs, gpus)
        if spec.kind == "maps":
            outcomes = local.activation_maps(spec, preset, runs, outcomes, runs_dir)
    for outcome, values in zip(outcomes, planning.measured([o.planned for o in outcomes])):
        outcome.result = {**outcome.result, **values} if outcome.result else outcome.result
    print(format_summary(spec, preset, outcomes))
    local.track_table(spec, preset, outcomes, runs_dir, overrides)
    failed = [o for o in outcomes if o.error]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
