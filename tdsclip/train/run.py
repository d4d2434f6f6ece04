"""Run one config end to end: identity, finished-run shortcut, resume, train, record.

    outcome = run_config(cfg, preset="smoke", runs_dir=Path("runs"))

The same function runs in one process, under torchrun, or in a Slurm task: rank and world size
come from the environment (tdsclip/train/distributed.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import torch.distributed as dist

from tdsclip.config import RunConfig
from tdsclip.identity import identity, run_id
from tdsclip.runstate import default_runs_dir  # noqa: F401 - tdsclip.train.__main__ reads it here
from tdsclip.train.distributed import DistEnv, env_from, setup, teardown
from tdsclip.train.loop import Hooks, Outcome, RunData, train
from tdsclip.train.sampling import seed_everything

log = logging.getLogger(__name__)
DataBuilder = Callable[[RunConfig, DistEnv], RunData]


def finished_result(run_dir: Path) -> dict | None:
    """The run's result.json if it finished, else None (missing, unreadable or not finished)."""
    try:
        result = json.loads((Path(run_dir) / "result.json").read_text())
    except (json.JSONDecodeError, OSError):
        return None
    return result if isinstance(result, dict) and result.get("status") == "FINISHED" else None


def run_config(cfg: RunConfig, *, preset: str, runs_dir: Path, data_builder: DataBuilder | None = None,
               tags: dict[str, str] | None = None, env: DistEnv | None = None, hooks: Hooks = Hooks()) -> Outcome:
    """Train and evaluate `cfg` into runs_dir/<run_id>; a finished run returns its result at once.
    A process group the caller set up (a sweep worker's) is used and left up."""
    from tdsclip.model.build import build_model
    from tdsclip.track import Tracker

    if data_builder is None:
        from tdsclip.train.data import build_run_data as data_builder  # noqa: N813 - the default builder
    env = env or env_from()
    owns_group = not dist.is_initialized()
    device = setup(env)
    try:
        data = data_builder(cfg, env)
        rid = run_id(cfg, data.manifest)
        run_dir = Path(runs_dir) / rid
        if hooks.started is not None and env.is_main:
            hooks.started(rid, run_dir)
        done = finished_result(run_dir)
        if done is not None:
            return Outcome("finished", run_dir / "result.json", done)
        seed_everything(cfg.train.seed)  # the initial weights (side network, random backbones) follow the seed
        model = build_model(cfg.model, device)
        tracker = Tracker(
            run_dir, rid, params=identity(cfg),
            tags={"run_id": rid, "preset": preset, "data_manifest": data.manifest, "world_size": str(env.world_size),
                  **(tags or {})},
            enabled=env.is_main,
        )
        with tracker:  # an exception marks the MLflow run FAILED; the local record stays as it was
            return train(cfg, data, run_dir, run_id=rid, preset=preset, env=env, device=device, model=model,
                         tracker=tracker, hooks=hooks)
    finally:
        if owns_group:
            teardown()
