"""The study's MLflow side, through the tracker (tdsclip.track, the one writer of MLflow): one parent
run per study, the trials' runs its children, closed FINISHED or FAILED from the study's record.
Best effort: an MLflow outage is logged, never fatal; the records under runs/ stay complete and
`python -m tdsclip.track sync` rebuilds the parent from them."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna

from tdsclip.mirror import MirrorError
from tdsclip.records import RecordError

log = logging.getLogger("sweeps")


def parent_run(runs_dir: Path, name: str) -> str | None:
    """The study's MLflow parent run, from its record (written just before): found by its tag or
    created, set RUNNING; None when MLflow is down."""
    from tdsclip.track import track_study

    try:
        return track_study(name, runs_dir)
    except (MirrorError, OSError) as error:
        log.warning("MLflow: no parent run for %s (%s); the trials' run records are complete", name, error)
        return None


def close_parent(
    runs_dir: Path, name: str, loaded: optuna.Study, objective: str, state: str = "finished", reason: str = ""
) -> None:
    """Record the study's end ("finished", or "failed" with `reason`) and its best trial in its
    record, then close the parent run in MLflow (best effort)."""
    from tdsclip.track import end_study

    best = None
    if loaded.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        trial = loaded.best_trial
        best = {
            "objective": objective,
            "value": trial.value,
            "trial": trial.number,
            "run_id": trial.user_attrs.get("run_id"),
        }
    try:
        end_study(runs_dir, name, state, best=best, reason=reason)
    except (MirrorError, RecordError, OSError) as error:
        log.warning("MLflow: could not close the parent run of %s (%s)", name, error)


def tag_run(run_dir: str | None, tags: dict[str, str]) -> None:
    """Tags on a trial's run: in its record, then in MLflow (an outage is logged, never fatal)."""
    if not run_dir:
        return
    from tdsclip.track import tag_run as tag

    try:
        tag(Path(run_dir), tags)
    except MirrorError as error:
        log.warning("MLflow: could not tag run %s (%s); its record has the tags", Path(run_dir).name, error)
