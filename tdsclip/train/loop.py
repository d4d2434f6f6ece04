"""One training run: the Table XIII recipe, single process or DDP, resumable to the exact step.

`train(cfg, data, run_dir, ...)` trains, validates (single view) each `train.val_every` epochs,
checkpoints at every epoch end, every `train.checkpoint_every` steps and on the stop signal, then
runs the multi-view test protocol and writes result.json through the tracker. Called again on a
run directory with a checkpoint it resumes from it; with a result it returns the result at once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from tdsclip.config import ConfigError, RunConfig, to_dict
from tdsclip.train import checkpoint as ckpt
from tdsclip.train.distributed import DistEnv, all_true, gather_objects, mean_across_ranks
from tdsclip.train.optim import build_optimizer, build_scheduler
from tdsclip.train.sampling import EpochSeeded, ShardedOrder, StepBatches, seed_everything
from tdsclip.train.views import EvalProgress, ViewScores

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """The run cannot go on (non-finite loss, too many bad samples); one line."""


@dataclass
class RunData:
    """What a run reads. Each dataset item is one video with all its views; `collate` turns a list
    of items into a batch with fields clips (views, 3, T, m, H, W), labels (views,), index (views,:
    each view's video index, views of a video consecutive) and failed ([(video id, reason)]:
    samples replaced in training, skipped in evaluation). See tdsclip/data/dataset.py."""

    train: Dataset
    val_single: Dataset
    val_views: Dataset
    views: int
    manifest: str
    collate: Callable[[list], Any]
    failure_log: Callable[[], Any]
    """A fresh log of unreadable training samples; its add() stops the run past the allowed fraction."""
    protocol: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    """What the result records about the data (listed, found, missing, ...)."""


STOP_SIGNALS = ("SIGINT", "SIGTERM")
"""Stop signals besides train.stop_signal: Ctrl-C and what `kill` and most schedulers send."""


class StopRequest:
    """Sets a flag when a stop signal arrives (train.stop_signal, Ctrl-C, SIGTERM); the loop checks
    it at step boundaries and checkpoints. A second Ctrl-C aborts at once (KeyboardInterrupt).
    Handlers are installed only in the main thread (Python's rule); elsewhere none is."""

    def __init__(self, name: str) -> None:
        self.requested = False
        self.signal = ""
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for signal_name in dict.fromkeys((name, *STOP_SIGNALS)):
            signum = getattr(signal, signal_name)
            self.previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:  # noqa: ARG002 - signal protocol
        name = signal.Signals(signum).name
        if self.requested and name == "SIGINT":
            raise KeyboardInterrupt
        if not self.requested:
            self.requested, self.signal = True, name
            print(
                f"{name}: stopping at the next step boundary (checkpoint, then exit); "
                f"{'Ctrl-C again aborts at once' if name == 'SIGINT' else ''}".rstrip("; "),
                file=sys.stderr,
                flush=True,
            )

    def restore(self) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)


def _ignore_signal_in_worker(name: str) -> Callable[[int], None]:
    """Data workers ignore every stop signal: only the main process decides to stop. A terminal's
    Ctrl-C, `kill -- -PGID` and Slurm's SIGTERM reach the whole process group; a worker that died of
    one would fail the run instead of letting it checkpoint. Workers still exit with the main
    process (torch's DataLoader shuts them down and they watch their parent)."""

    def init(_: int) -> None:
        for signal_name in dict.fromkeys((name, *STOP_SIGNALS)):
            signal.signal(getattr(signal, signal_name), signal.SIG_IGN)

    return init


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cpu" and dtype is torch.float16:
        raise ConfigError("train.precision=fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
    return torch.autocast(device.type, dtype=dtype)


def _loader(dataset: Dataset, cfg: RunConfig, **kwargs: Any) -> DataLoader:
    workers = cfg.data.num_workers
    return DataLoader(
        dataset,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_ignore_signal_in_worker(cfg.train.stop_signal) if workers else None,
        persistent_workers=False,
        **kwargs,
    )


def view_positions(index: torch.Tensor) -> torch.Tensor:
    """Position of each view within its video's consecutive run: [7, 7, 9, 9, 9] -> [0, 1, 0, 1, 2]."""
    positions, previous, count = [], None, 0
    for video in index.tolist():
        count = count + 1 if video == previous else 0
        positions.append(count)
        previous = video
    return torch.tensor(positions, dtype=torch.long)


@dataclass
class Evaluation:
    scores: ViewScores
    skipped: list[str]
    """Ids of unreadable videos, skipped (never replaced) and recorded with the result."""


def multi_view_record(data: RunData, evaluation: Evaluation, extra_data: dict | None = None) -> dict:
    """The multi-view test's part of a result record (per-class top-1, protocol, data), the same for
    a trained run and a released checkpoint evaluated here."""
    test = evaluation.scores.result()
    return {
        "per_class_top1": {str(k): v for k, v in test.per_class.items()},
        "protocol": {"test": f"{data.views} views per video, softmax averaged", **data.protocol},
        "data": {
            "manifest": data.manifest,
            **data.info,
            "videos_evaluated": test.videos,
            "videos_skipped": len(evaluation.skipped),
            "skipped_ids": evaluation.skipped[:20],
            **(extra_data or {}),
        },
    }


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    views: int,
    cfg: RunConfig,
    env: DistEnv,
    device: torch.device,
    collate: Callable[[list], Any],
    progress: str = "",
) -> Evaluation:
    """Every view of every video, ensembled per video across ranks (each video once). With a
    `progress` label, rank 0 shows its progress (views.EvalProgress: a bar or periodic log lines)."""
    scores, skipped = ViewScores(views), set()
    sampler = ShardedOrder(len(dataset), env.rank, env.world_size)
    loader = _loader(
        dataset, cfg, batch_size=max(1, cfg.train.micro_batch // views), collate_fn=collate, sampler=sampler
    )
    meter = EvalProgress(progress, len(sampler), enabled=bool(progress) and env.is_main, world_size=env.world_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _autocast(cfg.train.precision, device):
            for batch in loader:
                skipped.update(video for video, _ in batch.failed)
                meter.update(len(set(batch.index.tolist())) + len(batch.failed))
                if len(batch.clips) == 0:
                    continue
                logits = model(batch.clips.to(device, non_blocking=True)).float()
                scores.add(batch.index, view_positions(batch.index), logits, batch.labels)
    finally:
        meter.close()
    model.train(was_training)
    all_skipped = sorted({video for part in gather_objects(sorted(skipped)) for video in part})
    return Evaluation(scores.gathered(), all_skipped)


class Progress:
    """A tqdm bar on a terminal; plain lines every `every` steps otherwise (Slurm logs)."""

    def __init__(self, total: int, done: int, every: int, enabled: bool) -> None:
        self.enabled, self.every, self.total = enabled, every, total
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="step", dynamic_ncols=True)
        self.start, self.start_step = time.monotonic(), done

    def update(self, step: int, stats: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in stats.items()})
        elif step % self.every == 0 or step == self.total:
            rate = (step - self.start_step) / max(1e-9, time.monotonic() - self.start)
            eta = (self.total - step) / rate if rate > 0 else float("inf")
            fields = " ".join(f"{k} {v:.4g}" for k, v in stats.items())
            print(f"step {step}/{self.total} {fields} eta {eta / 60:.1f} min", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def epoch_line(epoch: int, epochs: int, metrics: dict[str, float], elapsed: float, fraction: float) -> str:
    """The epoch's summary for a terminal and a log: train loss, val top-1 (or why there is none),
    elapsed time and the time left at this pace."""
    top1 = metrics.get("val_top1")
    val = f"val top-1 {top1:.2f}" if top1 is not None else "val top-1 not validated this epoch (train.val_every)"
    eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("inf")
    return (
        f"epoch {epoch}/{epochs}: train loss {metrics['loss']:.4g}, {val}, elapsed {_minutes(elapsed)}, "
        f"ETA {_minutes(eta) if eta != float('inf') else 'unknown'}"
    )


@dataclass
class Outcome:
    status: str  # "finished" | "stopped" | "pruned"
    path: Path  # result.json when finished, the checkpoint when stopped or pruned
    result: dict[str, Any] = field(default_factory=dict)
    signal: str = ""
    """The signal that stopped the run ("stopped")."""


@dataclass(frozen=True)
class Hooks:
    """What a caller (a sweep) learns from one run as it goes. Every rank passes the same hooks;
    only rank 0 calls them, so a decision is taken once and broadcast."""

    started: Callable[[str, Path], None] | None = None
    """(run_id, run_dir) once the run id is known, before training."""
    validated: Callable[[int, float], bool] | None = None
    """(epoch, single-view val top-1) after each validation; True stops the run there ("pruned":
    its checkpoint is kept, so the same config run again resumes it)."""


def syncs_batch_norm(cfg: RunConfig, env: DistEnv, device: torch.device) -> bool:
    """Whether BatchNorm takes its statistics across processes: train.sync_bn, several CUDA processes."""
    return cfg.train.sync_bn and env.distributed and device.type == "cuda"


def train(
    cfg: RunConfig,
    data: RunData,
    run_dir: Path,
    *,
    run_id: str,
    preset: str,
    env: DistEnv,
    device: torch.device,
    model: nn.Module,
    tracker: Any,
    hooks: Hooks = Hooks(),
) -> Outcome:
    """Train `model` (built from cfg.model, on `device`) into run_dir; see the module docstring."""
    run_dir = Path(run_dir)
    seed_everything(cfg.train.seed)
    micro, world = cfg.train.micro_batch, env.world_size
    steps_per_epoch = len(data.train) // cfg.train.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} exceeds the {len(data.train)} training videos")
    total_steps = steps_per_epoch * cfg.train.epochs
    warmup_steps = round(cfg.optim.warmup_epochs * steps_per_epoch)

    raw_model = model
    if cfg.train.checkpoint_blocks and hasattr(raw_model, "checkpoint_blocks"):
        raw_model.checkpoint_blocks = True
    if syncs_batch_norm(cfg, env, device):
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.train.compile:
        model = torch.compile(model)
    optimizer = build_optimizer(raw_model, cfg.optim)
    scheduler = build_scheduler(optimizer, warmup_steps, total_steps)
    scaler = torch.amp.GradScaler("cuda") if cfg.train.precision == "fp16" and device.type == "cuda" else None
    ddp = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if env.distributed
        else model
    )

    step, epoch, batch_in_epoch, best = 0, 0, 0, None
    epoch_loss_sum = 0.0  # the current epoch's running sum, checkpointed so a resumed epoch reports exactly
    latest = run_dir / ckpt.LATEST
    if latest.exists():
        position = ckpt.restore_training_state(
            latest, model=raw_model, optimizer=optimizer, scheduler=scheduler, scaler=scaler
        )
        step, epoch, batch_in_epoch, best = (
            position["step"],
            position["epoch"],
            position["batch_in_epoch"],
            position["best_metric"],
        )
        epoch_loss_sum = position["extra"].get("epoch_loss_sum", 0.0)
        if env.is_main:
            log.info("resuming %s at step %d (epoch %d, batch %d)", run_id, step, epoch, batch_in_epoch)

    def save(is_best: bool = False) -> Path:
        extra = {"run_id": run_id, "preset": preset, "config": to_dict(cfg), "epoch_loss_sum": epoch_loss_sum}
        if env.is_main:
            ckpt.save_training_state(
                run_dir,
                model=raw_model,
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                step=step,
                epoch=epoch,
                batch_in_epoch=batch_in_epoch,
                best_metric=best,
                is_best=is_best,
                extra=extra,
            )
        if dist.is_initialized():
            dist.barrier()
        return latest

    stop = StopRequest(cfg.train.stop_signal)
    progress = Progress(total_steps, step, cfg.train.log_every, env.is_main)
    dataset = EpochSeeded(data.train, cfg.train.seed)
    failures = data.failure_log()
    started = time.monotonic()
    try:
        while epoch < cfg.train.epochs:
            sampler = StepBatches(
                len(dataset),
                seed=cfg.train.seed,
                epoch=epoch,
                batch_size=cfg.train.batch_size,
                micro_batch=micro,
                rank=env.rank,
                world_size=world,
                start_step=batch_in_epoch,
            )
            accumulation = sampler.accumulation
            model.train()
            batches = iter(_loader(dataset, cfg, batch_sampler=sampler, collate_fn=data.collate))
            data_time, tic, clips_seen = 0.0, time.monotonic(), 0
            while batch_in_epoch < steps_per_epoch:
                step_loss = 0.0
                for m in range(accumulation):
                    t0 = time.monotonic()
                    batch = next(batches)
                    failures.add(batch.failed)
                    data_time += time.monotonic() - t0
                    clips = batch.clips.to(device, non_blocking=True)
                    labels = batch.labels.to(device, non_blocking=True)
                    sync = m == accumulation - 1 or not env.distributed
                    with contextlib.nullcontext() if sync else ddp.no_sync(), _autocast(cfg.train.precision, device):
                        loss = F.cross_entropy(ddp(clips).float(), labels, label_smoothing=cfg.train.label_smoothing)
                    if not torch.isfinite(loss):
                        raise TrainingError(
                            f"non-finite loss ({loss.item()}) at step {step + 1} (epoch {epoch + 1}); "
                            f"the last checkpoint {latest if latest.exists() else '(none yet)'} is intact"
                        )
                    scaled = loss / accumulation
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                    step_loss += loss.item() / accumulation
                    clips_seen += clips.shape[0]
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step, batch_in_epoch = step + 1, batch_in_epoch + 1
                step_loss = mean_across_ranks(step_loss, device)
                epoch_loss_sum += step_loss
                lr = optimizer.param_groups[0]["lr"]
                progress.update(
                    step,
                    {"loss": step_loss, "lr": lr, "clips/s": clips_seen * world / max(1e-9, time.monotonic() - tic)},
                )
                if all_true(stop.requested, device):
                    path = save()
                    if env.is_main:
                        tracker.close(status="KILLED")
                    return Outcome("stopped", path, signal=stop.signal or "stop request")
                if (
                    cfg.train.checkpoint_every
                    and step % cfg.train.checkpoint_every == 0
                    and batch_in_epoch < steps_per_epoch
                ):
                    save()
            elapsed = time.monotonic() - tic
            metrics = {
                "loss": epoch_loss_sum / steps_per_epoch,
                "lr": optimizer.param_groups[0]["lr"],
                "clips_per_s": clips_seen * world / max(1e-9, elapsed),
                "data_time_s": data_time,
            }
            epoch, batch_in_epoch = epoch + 1, 0
            epoch_loss_sum = 0.0
            is_best, validated = False, None
            if cfg.train.val_every and (epoch % cfg.train.val_every == 0 or epoch == cfg.train.epochs):
                # the last epoch is always validated: val_top1_best and the report never lack a value
                validated = evaluate(raw_model, data.val_single, 1, cfg, env, device, data.collate).scores.result()
                metrics.update(validated.metrics("val_"))
                is_best = best is None or validated.top1 > best
                best = validated.top1 if is_best else best
            if env.is_main:
                tracker.log_metrics(metrics, step=step, epoch=epoch)
                log.info(
                    "%s",
                    epoch_line(
                        epoch,
                        cfg.train.epochs,
                        metrics,
                        time.monotonic() - started,
                        (step - progress.start_step) / max(1, total_steps - progress.start_step),
                    ),
                )
            save(is_best)
            if validated is not None and hooks.validated is not None:
                # Only rank 0 decides (the others contribute False), and every rank learns its decision.
                if all_true(env.is_main and bool(hooks.validated(epoch, validated.top1)), device):
                    if env.is_main:
                        tracker.close(status="KILLED")
                        log.info(
                            "%s stopped after epoch %d by its caller (pruned); its checkpoint is kept", run_id, epoch
                        )
                    return Outcome("pruned", latest)
    finally:
        stop.restore()
        progress.close()

    if env.is_main:
        log.info("final test: %d videos x %d views (multi-view protocol)", len(data.val_views), data.views)
    evaluation = evaluate(raw_model, data.val_views, data.views, cfg, env, device, data.collate, "final test")
    if env.is_main:
        log.info(
            "final test: done, top-1 %.2f over %d videos",
            evaluation.scores.result().top1,
            evaluation.scores.result().videos,
        )
    scores, test = evaluation.scores, evaluation.scores.result()
    result = {
        "run_id": run_id,
        "preset": preset,
        "metrics": {**test.metrics("test_"), **({"val_top1_best": best} if best is not None else {})},
        **multi_view_record(data, evaluation, {f"train_{k}": v for k, v in failures.summary().items()}),
        "steps": step,
        "epochs": cfg.train.epochs,
        "world_size": world,
        "torch_threads": torch.get_num_threads(),  # results round differently at another count (docs/training.md: Reproducibility)
        "train_seconds_this_process": round(time.monotonic() - started, 1),
        "config": to_dict(cfg),
    }
    if env.is_main:
        tracker.log_artifact(scores.save(run_dir / "views.npz"))
        path = tracker.finish(result)
        return Outcome("finished", Path(path), result)
    return Outcome("finished", run_dir / "result.json", result)
