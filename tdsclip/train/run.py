"""Run one config end to end: identity, finished-run shortcut, resume, train, record.

    outcome = run_config(cfg, preset="smoke", runs_dir=Path("runs"))

The same function runs in one process, under torchrun, or in a Slurm task: rank and world size
come from the environment (tdsclip/train/distributed.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch.distributed as dist

from tdsclip import runstate
from tdsclip.config import ConfigError, RunConfig, check_clips_per_forward
from tdsclip.identity import identity, run_id
from tdsclip.records import RESULT_FILE, RecordError, read_json, writable_folder
from tdsclip.runlock import RunLock, RunLocked
from tdsclip.track import add_tags
from tdsclip.train.checkpoint import init_from
from tdsclip.train.distributed import DistEnv, all_true, env_from, setup, teardown
from tdsclip.train.loop import Hooks, Outcome, RunData, syncs_batch_norm, train
from tdsclip.train.sampling import seed_everything

log = logging.getLogger(__name__)
DataBuilder = Callable[[RunConfig, DistEnv], RunData]


def finished_result(run_dir: Path) -> dict | None:
    """The run's result.json if it finished, else None (missing, unreadable or not finished)."""
    if runstate.read_state(run_dir).state != "finished":
        return None
    try:
        return read_json(Path(run_dir) / RESULT_FILE)
    except RecordError:
        return None


def claim_run(
    run_dir: Path, runs_dir: Path, env: DistEnv, device, wait: bool | float, tags: dict[str, str] | None = None
) -> tuple[Outcome | None, RunLock | None]:
    """(the finished run's outcome, None) when run_dir holds a result, before or after waiting for
    its lock (tags added to a finished record); else (None, the lock, held by rank 0). Training and
    released evaluation share it, so both meet a finished, held or unwritable run the same way."""
    done = finished_result(run_dir)
    if done is not None:
        if tags and env.is_main:  # e.g. a table's row that another table trained: the record says so now
            add_tags(run_dir, tags)
        return Outcome("finished", run_dir / RESULT_FILE, done), None
    try:
        lock = _lock(run_dir, env, device, wait)
    except PermissionError as error:
        raise RecordError(
            f"runs folder {str(Path(runs_dir))!r} is not writable ({error.strerror}); "
            "choose another with --runs-dir or $TDSCLIP_RUNS"
        ) from None
    done = finished_result(run_dir)  # finished by the process we waited for
    if done is not None:
        if lock is not None:
            lock.release()
        return Outcome("finished", run_dir / RESULT_FILE, done), None
    return None, lock


def _lock(run_dir: Path, env: DistEnv, device, wait: bool | float) -> RunLock | None:
    """Rank 0 takes the run's lock; every rank learns whether it did (a refusal raises everywhere)."""
    lock, refused = (RunLock(run_dir, wait=wait) if env.is_main else None), None
    if lock is not None:
        try:
            lock.acquire()
        except RunLocked as error:
            refused = error
    if all_true(refused is not None, device):
        raise refused or RunLocked(f"run {run_dir.name} is held by another process (rank 0 says why)")
    return lock


def run_config(
    cfg: RunConfig,
    *,
    preset: str,
    runs_dir: Path,
    data_builder: DataBuilder | None = None,
    tags: dict[str, str] | None = None,
    env: DistEnv | None = None,
    hooks: Hooks = Hooks(),
    wait: bool | float = False,
) -> Outcome:
    """Train and evaluate `cfg` into runs_dir/<run_id>; a finished run returns its result at once.
    The run's lock is held while it trains (another process training it: RunLocked, or wait for
    it with wait=True); its state (tdsclip/runstate.py) is written at every transition, a failure
    as such. A process group the caller set up (a sweep worker's) is used and left up."""
    from tdsclip.model.build import build_model
    from tdsclip.track import Tracker  # noqa: F811 - imported late: mlflow loads only when a run starts

    if data_builder is None:
        from tdsclip.train.data import build_run_data as data_builder  # noqa: N813 - the default builder
    if cfg.model.weights == "checkpoint" and not cfg.model.init_from:
        raise ConfigError(
            "model.weights=checkpoint takes the frozen CLIP weights from the checkpoint in "
            "model.init_from, which is not set; set it, or model.weights to a CLIP weights file"
        )
    writable_folder(Path(runs_dir), "runs folder", "--runs-dir or $TDSCLIP_RUNS")
    env = env or env_from()
    owns_group = not dist.is_initialized()
    device = setup(env)
    lock = None
    try:
        check_clips_per_forward(cfg, syncs_batch_norm(cfg, env, device))
        data = data_builder(cfg, env)
        rid = run_id(cfg, data.manifest)
        run_dir = Path(runs_dir) / rid
        if hooks.started is not None and env.is_main:
            hooks.started(rid, run_dir)
        finished, lock = claim_run(run_dir, Path(runs_dir), env, device, wait, tags)
        if finished is not None:
            return finished
        seed_everything(cfg.train.seed)  # the initial weights (side network, random backbones) follow the seed
        model = build_model(cfg.model, device)
        if cfg.model.init_from:  # a resumed run's latest.pt overrides this in train()
            init_from(model, cfg.model.init_from, cfg.model.weights)
        tracker = Tracker(
            run_dir,
            rid,
            params=identity(cfg),
            tags={
                "run_id": rid,
                "preset": preset,
                "data_manifest": data.manifest,
                "world_size": str(env.world_size),
                **(tags or {}),
            },
            enabled=env.is_main,
        )
        if env.is_main:
            runstate.mark_running(run_dir)
        with tracker:  # an exception marks the MLflow run FAILED
            try:
                outcome = train(
                    cfg,
                    data,
                    run_dir,
                    run_id=rid,
                    preset=preset,
                    env=env,
                    device=device,
                    model=model,
                    tracker=tracker,
                    hooks=hooks,
                )
            except Exception as error:
                if env.is_main:
                    state = runstate.mark_failed(run_dir, error)
                    log.error("run %s %s", rid, state.describe())
                raise
            except KeyboardInterrupt:  # a second Ctrl-C: abort now, the last checkpoint stays
                if env.is_main:
                    runstate.mark_stopped(
                        run_dir, "SIGINT", reason="aborted by a second Ctrl-C; resumes from the last checkpoint"
                    )
                raise
        if env.is_main:
            if outcome.status == "finished":
                runstate.clear(run_dir)
            else:
                runstate.mark_stopped(run_dir, outcome.signal, pruned=outcome.status == "pruned")
        return outcome
    finally:
        if lock is not None:
            lock.release()
        if owns_group:
            teardown()
