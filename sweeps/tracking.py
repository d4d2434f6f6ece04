"""The study's MLflow side: one parent run per study, the trials' runs its children (best effort:
an MLflow outage is logged, never fatal; the run records stay complete)."""

from __future__ import annotations

import logging

import optuna

from sweeps.study import Study

log = logging.getLogger("sweeps")


def parent_run(study: Study, name: str, preset: str, storage: str) -> str | None:
    """The study's MLflow parent run (found by its tag, else created); None when MLflow is down."""
    from tdsclip.mirror import Mirror, MirrorError, RetryPolicy

    try:
        mirror = Mirror(None, None, RetryPolicy(tries=2))
        found = mirror.call(
            "search runs",
            mirror.client.search_runs,
            [mirror.experiment_id()],
            filter_string=f"tags.sweep_run = '{name}'",
            max_results=1,
        )
        if found:
            return found[0].info.run_id
        return mirror.call(
            "create run",
            mirror.client.create_run,
            mirror.experiment_id(),
            run_name=f"sweep {name}",
            tags={
                "sweep_run": name,
                "sweep": name,
                "preset": preset,
                "optuna_storage": storage,
                "sweep.base": f"{study.base[0]}: {study.base[1]}",
            },
        ).info.run_id
    except (MirrorError, OSError) as error:
        log.warning("MLflow: no parent run for %s (%s); the trials' run records are complete", name, error)
        return None


def close_parent(parent: str | None, loaded: optuna.Study, objective: str) -> None:
    """Mark the parent run finished with the best trial's value, number and run (best effort)."""
    from tdsclip.mirror import Mirror, MirrorError, RetryPolicy

    if not parent:
        return
    try:
        mirror = Mirror(None, None, RetryPolicy(tries=2))
        if loaded.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            best = loaded.best_trial
            mirror.call("log best", mirror.client.log_metric, parent, f"best_{objective}", best.value)
            for key, value in (("best_trial", str(best.number)), ("best_run_id", str(best.user_attrs.get("run_id")))):
                mirror.call("tag best", mirror.client.set_tag, parent, key, value)
        mirror.call("end run", mirror.client.set_terminated, parent, "FINISHED")
    except (MirrorError, OSError) as error:
        log.warning("MLflow: could not close the parent run %s (%s)", parent, error)


def tag_run(run_id: str | None, tags: dict[str, str]) -> None:
    """Best effort: a tag on the run's MLflow run (an outage is logged, never fatal)."""
    if not run_id:
        return
    from tdsclip.mirror import Mirror, MirrorError, RetryPolicy

    try:
        mirror = Mirror(None, None, RetryPolicy(tries=3))
        run = mirror.find_run(run_id)
        if run is not None:
            mirror.log_batch(run.info.run_id, tags=tags)
    except (MirrorError, OSError) as error:
        log.warning("MLflow: could not tag run %s (%s)", run_id, error)
