"""What a study is: data, like a table spec. One module per study under sweeps/ defines STUDY.

    STUDY = Study(name="recipe", title="...", base=("table3", "+ SME-Adapter"),
                  space={"optim.lr": Float(1e-4, 3e-3, log=True), ...}, n_trials=24)

A trial's config is the base row of a paper table under the chosen preset, the command line's
overrides, then the trial's values, so a trial is an ordinary run (its own run id, record and
MLflow run) and the best trial is that table row with a few overrides more.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import optuna

from sweeps.space import Param

NAMES = ("recipe", "fusion", "side")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")


class SweepError(ValueError):
    """A bad study name, option or storage; one line naming it and what was expected."""


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    base: tuple[str, str]
    """(table, row): the paper row the search starts from."""
    space: dict[str, Param]
    objective: str = "val_top1_best"
    """A numeric key of the result's metrics: the best single-view validation top-1 by default."""
    direction: str = "maximize"
    sampler: str = "tpe"
    pruner: str = "median"
    startup_trials: int = 4
    """Trials before the sampler models the space (random until then) and the pruner compares."""
    warmup_epochs: int = 1
    """Epochs a trial always trains before it may be pruned."""
    n_trials: int = 24
    seed: int = 0
    start_from_base: bool = True
    """The first trial takes the base row's own values (the paper's setting), when they lie in the space."""

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise SweepError(f"study {self.name}: sampler {self.sampler!r}; expected one of {', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise SweepError(f"study {self.name}: pruner {self.pruner!r}; expected one of {', '.join(PRUNERS)}")
        if self.direction not in ("maximize", "minimize"):
            raise SweepError(f"study {self.name}: direction {self.direction!r}; expected maximize or minimize")

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """Each worker builds its own, seeded apart so their random start-up trials differ.
        constant_liar: TPE treats running trials as bad results, so workers spread out."""
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(n_startup_trials=self.startup_trials, constant_liar=True, seed=seed)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        if self.pruner == "none":
            return optuna.pruners.NopPruner()
        # Steps are epochs, counted from 1: the earliest prune is at step n_warmup_steps.
        return optuna.pruners.MedianPruner(n_startup_trials=self.startup_trials, n_warmup_steps=self.warmup_epochs + 1)


def load(name: str) -> Study:
    """The study defined in sweeps/<name>.py, or STUDY of an importable module of your own
    (`python -m sweeps.run mypkg.lr_probe`: your ablations on the same machinery)."""
    if name in NAMES:
        return importlib.import_module(f"sweeps.{name}").STUDY
    expected = f"expected one of {', '.join(NAMES)}, or an importable module defining STUDY"
    try:
        module = importlib.import_module(name)
    except (ImportError, ValueError, TypeError):
        raise SweepError(f"unknown study {name!r}; {expected}") from None
    study = getattr(module, "STUDY", None)
    if not isinstance(study, Study):
        raise SweepError(f"module {name} defines no STUDY (a sweeps.study.Study); {expected}")
    return study
