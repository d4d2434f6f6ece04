"""Optuna sweeps over the paper's knobs: plan, dispatch workers, track, report.

    python -m sweeps.run --list
    python -m sweeps.run recipe --preset smoke --workers 2 --n-trials 6      # local workers, then the report
    python -m sweeps.run side --executor slurm --workers 8 --storage postgresql://db/optuna
    python -m sweeps.run recipe --status        # counts by state, the best trial so far
    python -m sweeps.run recipe --best          # the best trial as a table row, and the command re-running it
    python -m sweeps.run recipe --dry-run       # the study, its space and the GPU-hours at most

The study is named <study>-<preset> in the storage (default sqlite:///<runs>/sweeps/optuna.db).
Running the command again continues the study up to --n-trials (finished trials are kept; a
trial's run that finished before is read back, never trained twice). Every trial is a run in
runs/<run_id> and an MLflow child run of the study's parent run, tagged sweep.trial and
sweep.param.<key>. What was started is recorded in runs/sweeps/<study>-<preset>.json, which
`python -m reports.build` reads to render the study.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import optuna

from slurm.profiles import add_profile_arguments
from sweeps import space
from sweeps.storage import check_url, default_url, experimental_ok, open_storage
from sweeps.study import NAMES, Study, SweepError, load
from sweeps.tracking import parent_run
from sweeps.worker import WorkerJob, counts, job_file, trial_config
from tdsclip.cli import OneLineParser
from tdsclip.config import ConfigError, parse_override
from tdsclip.presets import PRESETS
from tdsclip.records import write_json_atomic
from tdsclip.runstate import RunsFolder, default_runs_dir

log = logging.getLogger("sweeps")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m sweeps.run", description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", help=f"one of {', '.join(NAMES)}")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every trial")
    p.add_argument("--list", action="store_true", help="list the studies")
    p.add_argument("--preset", default="paper", help=f"{', '.join(PRESETS)} (default paper)")
    p.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default="local",
        help="local: N worker processes here, wait, report; slurm: N worker jobs, return at once",
    )
    p.add_argument("--workers", type=int, default=1, help="workers sharing the study (default 1)")
    p.add_argument("--n-trials", type=int, default=None, help="trials the study should have (default: the study's)")
    p.add_argument("--storage", default=None, help="Optuna RDB URL (default sqlite:///<runs>/sweeps/optuna.db)")
    p.add_argument("--runs-dir", type=Path, default=None, help="run folders (default runs/ or $TDSCLIP_RUNS)")
    p.add_argument(
        "--heartbeat",
        type=int,
        default=60,
        help="seconds between a running trial's heartbeats; silent for 3x this, it is retried (default 60)",
    )
    p.add_argument("--max-retries", type=int, default=2, help="retries of a trial whose worker died (default 2)")
    p.add_argument(
        "--enqueue",
        action="append",
        default=[],
        metavar="k=v[,k=v]",
        help="a trial to run before the sampler's (values of the space), e.g. optim.lr=1e-4 (repeatable)",
    )
    add_profile_arguments(p)
    p.add_argument("--dry-run", action="store_true", help="print the study and its cost, run nothing")
    p.add_argument("--status", action="store_true", help="trials by state and the best so far")
    p.add_argument("--best", action="store_true", help="the best trial as a table row and the command to re-run it")
    return p


# ----------------------------------------------------------------------------- the study's set-up


def study_name(study: Study, preset: str) -> str:
    return f"{study.name}-{preset}"


def record_path(runs_dir: Path, name: str) -> Path:
    return RunsFolder(runs_dir).sweep_record(name)


def check_overrides(study: Study, overrides: Sequence[str]) -> None:
    for text in overrides:
        key = parse_override(text)[0]
        if key in study.space:
            raise SweepError(
                f"override {text!r}: {key} is searched by study {study.name}; drop it or use --enqueue {text}"
            )


def parse_enqueued(study: Study, texts: Sequence[str]) -> list[dict]:
    """--enqueue values, typed by the config parser and checked against the space."""
    trials = []
    for text in texts:
        values = {}
        for part in filter(None, text.split(",")):
            key, value = parse_override(part)
            if key not in study.space:
                raise SweepError(
                    f"--enqueue {part!r}: {key} is not in study {study.name}'s space ({', '.join(study.space)})"
                )
            if not study.space[key].contains(value):
                raise SweepError(f"--enqueue {part!r}: expected {key} in {study.space[key].describe()}")
            values[key] = value
        trials.append(values)
    return trials


def base_values(study: Study, preset: str, overrides: Sequence[str]) -> dict | None:
    """The base row's own values of the space's keys (the paper's setting), if they lie in the space."""
    cfg = trial_config(study, preset, overrides, {})
    values = {}
    for key, param in study.space.items():
        section, field = key.split(".", 1)
        values[key] = getattr(getattr(cfg, section), field)
        if not param.contains(values[key]):
            return None
    return values


def create(
    study: Study,
    preset: str,
    storage: str,
    overrides: Sequence[str],
    enqueued: list[dict],
    heartbeat: int,
    max_retries: int,
) -> optuna.Study:
    """The study in the storage, created on first use with the base row and --enqueue trials queued;
    a study started with other overrides is refused (its trials would not be comparable)."""
    name = study_name(study, preset)
    created = optuna.create_study(
        study_name=name,
        storage=open_storage(storage, heartbeat, max_retries),
        direction=study.direction,
        load_if_exists=True,
    )
    before = created.user_attrs.get("overrides")
    if before is None:
        created.set_user_attr("overrides", list(overrides))
        created.set_user_attr("preset", preset)
        created.set_user_attr("base", list(study.base))
        created.set_user_attr("objective", study.objective)
        start = base_values(study, preset, overrides)
        for values in [start] if study.start_from_base and start else []:
            created.enqueue_trial(values, user_attrs={"enqueued": "the base row's values"})
    elif list(before) != list(overrides):
        raise SweepError(
            f"study {name} in {storage} was started with overrides {' '.join(before) or '(none)'}; "
            f"these are {' '.join(overrides) or '(none)'}: use the same ones, or another --storage"
        )
    for values in enqueued:
        created.enqueue_trial(values, user_attrs={"enqueued": "--enqueue"}, skip_if_exists=True)
    return created


# ----------------------------------------------------------------------------- dispatch


def run_local(jobs: list[WorkerJob], folder: Path) -> list[int]:
    """One process per worker (torch threads shared out between them); their exit codes."""
    threads = max(1, (os.cpu_count() or 1) // len(jobs))
    processes = []
    for job in jobs:
        path = job_file(job, folder / f"worker-{job.worker}.json")
        logfile = (folder / f"worker-{job.worker}.log").open("ab")
        processes.append(
            (
                subprocess.Popen(
                    [sys.executable, "-m", "sweeps.worker", str(path), "--threads", str(threads)],
                    stdout=logfile,
                    stderr=subprocess.STDOUT,
                ),
                logfile,
            )
        )
        print(f"worker {job.worker}: pid {processes[-1][0].pid}, log {folder / f'worker-{job.worker}.log'}", flush=True)
    codes = []
    for process, logfile in processes:
        codes.append(process.wait())
        logfile.close()
    return codes


def run_slurm(
    jobs: list[WorkerJob], folder: Path, profile_name: str, profile_overrides: Sequence[str], record: dict
) -> tuple[list[str], str]:
    """The workers as a job array and the report after them; jobs.json beside submitit's logs."""
    from slurm.profiles import load_profile
    from sweeps.cluster import submit_workers

    ids, report = submit_workers(jobs, load_profile(profile_name, profile_overrides), folder, record)
    write_json_atomic(folder / "jobs.json", {"workers": ids, "report": report})
    return ids, report


# ----------------------------------------------------------------------------- reading a study


def best_text(study: Study, preset: str, loaded: optuna.Study) -> str:
    from experiments.spec import load as load_spec

    finished = [t for t in loaded.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        return f"study {loaded.study_name}: no finished trial yet"
    best = loaded.best_trial
    overrides = [*loaded.user_attrs.get("overrides", []), *space.overrides(best.params)]
    table, row = study.base
    spec_row = load_spec(table).row(row)
    row_overrides = " ".join([*spec_row.overrides, *overrides])
    quoted = " ".join(f"'{o}'" if " " in o else o for o in overrides)
    return "\n".join(
        [
            f"best: trial {best.number}, {study.objective} {best.value:.4g}, run {best.user_attrs.get('run_id', '?')}",
            f"  values: {' '.join(space.overrides(best.params))}",
            f'  as a row of {table}:  row("{row} ({study.name} best)", "{row_overrides}")',
            f"  re-run as {table}'s row:  python -m experiments.run {table} --preset {preset} --rows '{row}' {quoted}",
        ]
    )


def status_text(study: Study, preset: str, loaded: optuna.Study, folder: Path) -> str:
    state = counts(loaded)
    lines = [
        f"study {loaded.study_name}: " + ", ".join(f"{n} {k.lower()}" for k, n in state.items() if n)
        if any(state.values())
        else f"study {loaded.study_name}: no trials yet"
    ]
    for trial in loaded.get_trials(deepcopy=False):
        value = f"{trial.value:.4g}" if trial.value is not None else "-"
        retried = f" (retry of {trial.system_attrs['failed_trial']})" if "failed_trial" in trial.system_attrs else ""
        lines.append(
            f"  trial {trial.number:3d} {trial.state.name:8s} {value:>8s}  {' '.join(space.overrides(trial.params))}"
            f"  run {trial.user_attrs.get('run_id', '-')}{retried}"
        )
    jobs = folder / "jobs.json"
    if jobs.exists():
        from slurm.submit import job_states

        submitted = json.loads(jobs.read_text())
        ids = [*submitted["workers"], submitted["report"]]
        try:
            states = job_states(ids)
            lines.append(
                "slurm workers: "
                + ", ".join(f"{states[i].job_id} {states[i].state}" for i in submitted["workers"])
                + f"; report {submitted['report']} {states[submitted['report']].state}"
            )
        except RuntimeError as error:
            lines.append(f"slurm workers {', '.join(ids)}: {error}")
    lines.append(best_text(study, preset, loaded))
    return "\n".join(lines)


def dry_run_text(
    study: Study, preset: str, storage: str, overrides: Sequence[str], n_trials: int, workers: int, executor: str
) -> str:
    from experiments.plan import plan
    from experiments.spec import load as load_spec

    table, row = study.base
    planned = plan(load_spec(table), preset, rows=row, overrides=overrides)[0]
    cost = (
        f"at most {n_trials} x {planned.cost.hours:.3g} {planned.cost.device}-hours = "
        f"{n_trials * planned.cost.hours:.3g} {planned.cost.device}-hours (pruned trials stop early)"
        if planned.cost
        else f"cost unknown: {planned.cost_note}"
    )
    lines = [
        f"study {study_name(study, preset)}: {study.title}",
        f"  base: {table} row {row!r} under preset {preset}"
        + (f", overrides {' '.join(overrides)}" if overrides else ""),
        f"  objective: {study.direction} {study.objective}; pruner {study.pruner} on val_top1 per epoch "
        f"(after {study.startup_trials} trials, from epoch {study.warmup_epochs + 1}); sampler {study.sampler}",
        *[f"  {key}: {param.describe()}" for key, param in study.space.items()],
        f"  trials: {n_trials}, {workers} {executor} worker(s); storage {storage}",
        f"  cost: {cost}",
    ]
    return "\n".join(lines)


def list_studies() -> str:
    lines = []
    for name in NAMES:
        study = load(name)
        lines.append(
            f"{name:7s} {study.n_trials:3d} trials  {', '.join(study.space)}  (from {study.base[0]} "
            f"'{study.base[1]}')  {study.title}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.list:
        print(list_studies())
        return 0
    if not args.name:
        print("sweeps.run: name a study (or --list): " + ", ".join(NAMES), file=sys.stderr)
        return 2
    runs_dir = (args.runs_dir or default_runs_dir()).resolve()
    try:
        study = load(args.name)
        if args.preset not in PRESETS:
            raise SweepError(f"unknown preset {args.preset!r}; expected one of {', '.join(PRESETS)}")
        for flag, value in (("--workers", args.workers), ("--n-trials", args.n_trials)):
            if value is not None and value < 1:
                raise SweepError(f"{flag} {value}: expected >= 1")
        n_trials = args.n_trials or study.n_trials
        storage = check_url(args.storage or default_url(runs_dir))
        name = study_name(study, args.preset)
        folder = RunsFolder(runs_dir).sweep_folder(name)
        check_overrides(study, args.overrides)
        enqueued = parse_enqueued(study, args.enqueue)
        if args.dry_run:
            print(dry_run_text(study, args.preset, storage, args.overrides, n_trials, args.workers, args.executor))
            if args.executor == "slurm":
                from slurm.profiles import Resources, load_profile
                from slurm.submit import sbatch_script

                profile = load_profile(args.profile, args.profile_set)
                print(
                    f"\n# array tdsclip-sweep-{study.name}: {args.workers} worker job(s), then the report job\n"
                    + sbatch_script(profile, 1, Resources(f"sweep-{study.name}"), args.workers, folder)
                )
            return 0
        # A bad override, space key or location fails here, before any worker starts.
        trial_config(study, args.preset, args.overrides, {k: p.example() for k, p in study.space.items()})
        if args.status or args.best:
            with experimental_ok():
                try:
                    loaded = optuna.load_study(study_name=name, storage=open_storage(storage, args.heartbeat))
                except KeyError:
                    raise SweepError(
                        f"no study {name} in {storage}; start it with python -m sweeps.run {args.name} "
                        f"--preset {args.preset}"
                    ) from None
            print(
                status_text(study, args.preset, loaded, folder)
                if args.status
                else best_text(study, args.preset, loaded)
            )
            return 0
        create(study, args.preset, storage, args.overrides, enqueued, args.heartbeat, args.max_retries)
        record = {
            "study": args.name,
            "preset": args.preset,
            "study_name": name,
            "storage": storage,
            "overrides": list(args.overrides),
            "n_trials": n_trials,
            "objective": study.objective,
            "base": f"{study.base[0]}: {study.base[1]}",
            "runs_dir": str(runs_dir),
        }
        write_json_atomic(record_path(runs_dir, name), record)  # the study's truth; MLflow mirrors it
        parent = parent_run(runs_dir, name)
        if parent:  # shown on the study's report page
            record["mlflow_parent_run_id"] = parent
            write_json_atomic(record_path(runs_dir, name), record)
        from slurm.submit import tracking_uri_for_jobs

        environ = {"MLFLOW_TRACKING_URI": tracking_uri_for_jobs()}  # a sqlite file made absolute
        jobs = [
            WorkerJob(
                args.name,
                args.preset,
                name,
                storage,
                str(runs_dir),
                tuple(args.overrides),
                n_trials,
                args.heartbeat,
                args.max_retries,
                k,
                environ,
            )
            for k in range(args.workers)
        ]
        if args.executor == "slurm":
            ids, report = run_slurm(jobs, folder, args.profile, args.profile_set, record)
            for job_id in ids:
                print(f"{job_id}  worker of {name}")
            print(f"{report}  report (after the workers)")
            print(f"follow with: python -m sweeps.run {args.name} --preset {args.preset} --status")
            return 0
        start = time.monotonic()
        codes = run_local(jobs, folder)
    except (SweepError, ConfigError, ValueError, RuntimeError) as error:
        print(f"sweeps.run: {error}", file=sys.stderr)
        return 2
    loaded = optuna.load_study(study_name=name, storage=open_storage(storage, args.heartbeat))
    print(f"{name}: {len(jobs)} worker(s) ended in {time.monotonic() - start:.0f} s (exit codes {codes})")
    print(status_text(study, args.preset, loaded, folder))
    from reports.studies import report_for_study

    print(report_for_study(record))
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
