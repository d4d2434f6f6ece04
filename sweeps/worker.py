"""A sweep worker: asks the study for trials and trains each as an ordinary run, until the study has
its trials. Several run at once against one storage (local processes or Slurm jobs).

    python -m sweeps.worker JOB.json        # what `python -m sweeps.run NAME --workers N` starts N times
    torchrun --nproc-per-node 2 -m sweeps.worker JOB.json     # one worker whose trials train on 2 ranks

Per trial: the values are suggested, the config is the study's base row + the command line's
overrides + the values, and `run_config` trains it into runs/<run_id> (a config trained before is
read back at once). Rank 0 reports each epoch's validation top-1 and asks the pruner; its decision
is broadcast to the other ranks, which stop with it (tdsclip.train.loop.Hooks). A multi-process
job (DDP, Slurm tasks) runs the loop on rank 0 and sends each trial's values to the other ranks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from sweeps import space
from sweeps.storage import experimental_ok, open_storage
from sweeps.study import Study, SweepError, load
from sweeps.tracking import close_parent, tag_run
from tdsclip.records import write_json_atomic

log = logging.getLogger("sweeps")
MAX_FAILURES_IN_A_ROW = 3


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker needs, JSON- and pickle-friendly (it crosses into Slurm jobs)."""

    study: str
    preset: str
    study_name: str
    storage: str
    runs_dir: str
    overrides: tuple[str, ...] = ()
    n_trials: int = 24
    heartbeat: int = 60
    max_retries: int = 2
    worker: int = 0
    environ: dict[str, str] = field(default_factory=dict)
    """Set before the first trial, e.g. MLFLOW_TRACKING_URI as the launcher resolved it."""
    tags: dict[str, str] = field(default_factory=dict)
    """Added to every trial's run (the Slurm snapshot's git SHA, ...)."""


def trial_config(study: Study, preset: str, overrides: tuple[str, ...] | list[str], values: dict[str, Any]):
    """The run config of a trial: base row, then the overrides, then the trial's values."""
    from experiments.plan import row_config
    from experiments.spec import load as load_spec
    from tdsclip import locations

    spec = load_spec(study.base[0])
    cfg, _ = row_config(spec, spec.row(study.base[1]), preset, [*overrides, *space.overrides(values)])
    return locations.fill(cfg, require_weights=preset != "smoke")


def counts(study: optuna.Study) -> dict[str, int]:
    found = {state.name: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        found[trial.state.name] += 1
    return found


class Objective:
    """One trial: train its run, report per epoch, return the study's objective."""

    def __init__(self, study: Study, job: WorkerJob, env: Any) -> None:
        self.study, self.job, self.env = study, job, env
        self.stopped = False
        self.last_error = ""

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._trial(trial)
        except optuna.TrialPruned:
            raise
        except Exception as error:
            self.last_error = (
                f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            )
            raise

    def _trial(self, trial: optuna.Trial) -> float:
        from tdsclip.train.loop import Hooks
        from tdsclip.train.run import run_config

        values = space.suggest(trial, self.study.space)
        twin = next(
            (
                t.number
                for t in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.number != trial.number and t.params == values
            ),
            None,
        )
        if twin is not None:  # both would train one run folder at once; the twin's result will serve
            raise optuna.TrialPruned(f"the same values as trial {twin}, running now")
        cfg = trial_config(self.study, self.job.preset, self.job.overrides, values)
        tags = {
            **self.job.tags,
            "sweep": self.job.study_name,
            "sweep.trial": str(trial.number),
            **{f"sweep.param.{k}": str(v) for k, v in values.items()},
        }  # "sweep" hangs the run under the study's MLflow parent (tdsclip.mirror.PARENT_TAGS)

        def started(run_id: str, run_dir: Path) -> None:
            trial.set_user_attr("run_id", run_id)
            trial.set_user_attr("run_dir", str(run_dir))
            trial.set_user_attr("worker", self.job.worker)

        epochs: list[int] = []

        def validated(epoch: int, top1: float) -> bool:
            trial.report(top1, epoch)
            epochs.append(epoch)
            return trial.should_prune()

        _to_other_ranks(("trial", values))
        outcome = run_config(
            cfg,
            preset=self.job.preset,
            runs_dir=Path(self.job.runs_dir),
            tags=tags,
            env=self.env,
            hooks=Hooks(started=started, validated=validated),
            wait=True,
        )  # a twin trial: its result
        if outcome.status == "pruned":
            tag_run(trial.user_attrs.get("run_dir"), {"sweep.state": "PRUNED"})
            raise optuna.TrialPruned(f"pruned after epoch {epochs[-1]}")
        if outcome.status == "stopped":
            self.stopped = True
            raise SweepError(
                f"trial {trial.number} stopped by a signal; its run {outcome.path.parent.name} kept a checkpoint"
            )
        if not epochs:  # a run finished before (same config): its logged epochs stand in
            _report_logged(trial, outcome.path.parent)
        value = outcome.result.get("metrics", {}).get(self.study.objective)
        if not isinstance(value, (int, float)):
            raise SweepError(f"the run's result has no numeric metric {self.study.objective!r}")
        return float(value)


def _report_logged(trial: optuna.Trial, run_dir: Path, metric: str = "val_top1") -> None:
    """Report a finished run's logged per-epoch values (what the trainer reports live: val_top1), so
    the pruner can compare later trials with it."""
    from tdsclip.records import RecordError, load_record

    try:
        entries = load_record(run_dir).metrics
    except (RecordError, OSError):
        return
    for entry in entries:
        if entry.epoch is not None and metric in entry.metrics:
            trial.report(entry.metrics[metric], entry.epoch)


def _to_other_ranks(message: tuple[str, Any]) -> Any:
    """Rank 0's message on every rank of a multi-process worker (no-op in a single process)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return message
    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def open_study(job: WorkerJob, study: Study) -> optuna.Study:
    with experimental_ok():
        return optuna.load_study(
            study_name=job.study_name,
            storage=open_storage(job.storage, job.heartbeat, job.max_retries),
            sampler=study.make_sampler(seed=study.seed + job.worker),
            pruner=study.make_pruner(),
        )


def work(job: WorkerJob, env: Any = None) -> str:
    """Run trials until the study has job.n_trials finished or running ones and none is waiting;
    then wait for the other workers' running trials (one may die and need a retry). Returns
    "done", or "stopped" when a signal stopped a trial (it is queued again)."""
    from tdsclip.train.distributed import DistEnv

    env = env or DistEnv()
    os.environ.update(job.environ)
    study = load(job.study)
    if not env.is_main:
        return _follow(job, study, env)
    optuna_study = open_study(job, study)
    objective = Objective(study, job, env)
    failures = 0
    try:
        while True:
            with experimental_ok():
                optuna.storages.fail_stale_trials(optuna_study)
            state = counts(optuna_study)
            if not state["WAITING"] and state["COMPLETE"] + state["PRUNED"] + state["RUNNING"] >= job.n_trials:
                if not state["RUNNING"]:
                    close_parent(Path(job.runs_dir), job.study_name, optuna_study, study.objective)  # the last out
                    return "done"
                time.sleep(min(job.heartbeat, 10))
                continue
            last: list[optuna.trial.FrozenTrial] = []
            optuna_study.optimize(
                objective,
                n_trials=1,
                catch=(Exception,),
                callbacks=[lambda s, t: last.append(t)],  # noqa: B023 - called within this iteration
                gc_after_trial=True,
            )
            if objective.stopped:
                _retry(optuna_study, last[-1], job)
                return "stopped"
            failures = failures + 1 if last and last[-1].state == TrialState.FAIL else 0
            if failures >= MAX_FAILURES_IN_A_ROW:
                reason = f"{failures} trials in a row failed in worker {job.worker}; the last: {objective.last_error}"
                close_parent(Path(job.runs_dir), job.study_name, optuna_study, study.objective, "failed", reason)
                raise SweepError(reason)
    finally:
        _to_other_ranks(("stop", None))


def _retry(study: optuna.Study, trial: optuna.trial.FrozenTrial, job: WorkerJob) -> None:
    """Queue a stopped trial again at once, counted against the same retry limit as a dead one."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with experimental_ok():
        RetryHeartbeatStaleTrialCallback(max_retry=job.max_retries, inherit_intermediate_values=True)(study, trial)


def _follow(job: WorkerJob, study: Study, env: Any) -> str:
    """Ranks > 0: train what rank 0 sends, obey its pruning, until it says stop."""
    from tdsclip.train.loop import Hooks
    from tdsclip.train.run import run_config

    while True:
        kind, values = _to_other_ranks((None, None))
        if kind != "trial":
            return "done"
        cfg = trial_config(study, job.preset, job.overrides, values)
        # The trainer never calls this hook on ranks > 0, but its presence makes every rank join
        # rank 0's prune vote after each validation.
        outcome = run_config(
            cfg,
            preset=job.preset,
            runs_dir=Path(job.runs_dir),
            env=env,
            hooks=Hooks(validated=lambda epoch, top1: False),
        )
        if outcome.status == "stopped":
            return "stopped"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeps.worker", description=__doc__.splitlines()[0])
    parser.add_argument("job", type=Path, help="the worker's job file (written by python -m sweeps.run)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from tdsclip.train.distributed import env_from, setup, teardown

    fields = json.loads(args.job.read_text())
    job = WorkerJob(**{**fields, "overrides": tuple(fields["overrides"])})
    env = env_from()  # under torchrun (or srun) every rank runs this; rank 0 leads
    setup(env)
    try:
        outcome = work(job, env)
    except SweepError as error:
        print(f"sweeps.worker: {error}", file=sys.stderr)
        return 1
    finally:
        teardown()
    print(f"worker {job.worker}: {outcome}")
    return 0 if outcome == "done" else 3


def job_file(job: WorkerJob, path: Path) -> Path:
    write_json_atomic(path, asdict(job))
    return path


if __name__ == "__main__":
    raise SystemExit(main())
