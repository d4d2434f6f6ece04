"""A study's search space: config keys and the values each may take.

    SPACE = {"optim.lr": Float(1e-4, 1e-2, log=True), "model.td_kernel": Categorical(3, 5, 7)}

Keys are RunConfig keys (`python -m tdsclip.config --help`); a trial's values become `key=value`
overrides on the study's base row, so a trial is an ordinary run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False
    """Sample the logarithm uniformly (learning rates, weight decays)."""

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def example(self) -> float:
        return self.low

    def suggest(self, trial: optuna.Trial, key: str) -> float:
        return trial.suggest_float(key, self.low, self.high, log=self.log)

    def describe(self) -> str:
        return f"{'log-' if self.log else ''}float [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    step: int = 1
    """Multiples only: side widths step by 64 (one attention head each)."""

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def example(self) -> int:
        return self.low

    def suggest(self, trial: optuna.Trial, key: str) -> int:
        return trial.suggest_int(key, self.low, self.high, step=self.step)

    def describe(self) -> str:
        return f"int [{self.low}, {self.high}]" + (f" step {self.step}" if self.step != 1 else "")


@dataclass(frozen=True)
class Categorical:
    choices: tuple[Any, ...]

    def __init__(self, *choices: Any) -> None:
        object.__setattr__(self, "choices", tuple(choices))

    def contains(self, value: Any) -> bool:
        return value in self.choices

    def example(self) -> Any:
        return self.choices[0]

    def suggest(self, trial: optuna.Trial, key: str) -> Any:
        return trial.suggest_categorical(key, self.choices)

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.choices))


Param = Float | Int | Categorical


def suggest(trial: optuna.Trial, space: dict[str, Param]) -> dict[str, Any]:
    """The trial's value for every key of the space (Optuna records them as the trial's params)."""
    return {key: param.suggest(trial, key) for key, param in space.items()}


def overrides(values: dict[str, Any]) -> list[str]:
    """`key=value` overrides for the config parser; floats as repr, which reads back exactly."""
    return [f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}" for key, value in values.items()]
