"""Recipes as data: `paper` (Table XIII), `released-code`, `smoke`.

A preset is a list of rules; each rule is a condition on the run's dataset and backbone and the
overrides it brings. Resolution: the user's overrides decide the dataset and backbone, the
matching rules apply in order, then the user's overrides apply again (the user always wins).

Table XIII's "batch size | 128 | 256" cell: its columns are SSv1 (B, L), SSv2 (B, L), K400 (B, L),
but it prints only two values. We read it with the released code: 8 GPUs x 16 videos = 128 videos
per optimiser step (train.batch_size=128), and repeated sampling 2 turns them into 256 clips
(data.num_sample=2). The same for every dataset and backbone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tdsclip.config import ConfigError, RunConfig, apply_overrides, parse_override


@dataclass(frozen=True)
class Rule:
    when: Mapping[str, str]
    """Conditions on resolved keys, e.g. {"data.dataset": "k400", "model.backbone": "ViT-L-14"}."""
    set: Mapping[str, Any]


_SS = ("ssv1", "ssv2")

PAPER: tuple[Rule, ...] = (
    Rule(
        {},
        {
            "model.side_width": 320,
            "model.sme_window": 5,
            "model.td_mode": "pool",
            "model.td_kernel": 3,
            "model.sme_alpha": 1.0,
            "model.sme_beta": 1.0,
            "optim.weight_decay": 0.15,
            "optim.betas": (0.9, 0.999),
            "optim.warmup_epochs": 4.0,
            "train.seed": 1024,
            "train.label_smoothing": 0.1,
            "train.batch_size": 128,
            "data.num_sample": 2,
            "data.randaugment": "rand-m7-n4-mstd0.5-inc1",
            "data.flip": 0.5,
            "data.frames": 8,
            "data.input_size": 224,
            "data.test_crops": 3,
        },
    ),
    Rule({"model.backbone": "ViT-B-16"}, {"optim.lr": 1e-3}),
    Rule({"model.backbone": "ViT-L-14"}, {"optim.lr": 1e-4}),
    Rule({"data.dataset": "ssv1"}, {"train.epochs": 40, "model.num_classes": 174}),
    Rule({"data.dataset": "ssv1", "model.backbone": "ViT-L-14"}, {"train.epochs": 30}),
    Rule({"data.dataset": "ssv2"}, {"train.epochs": 30, "model.num_classes": 174}),
    Rule({"data.dataset": "k400"}, {"train.epochs": 30, "model.num_classes": 400}),
    *(
        Rule({"data.dataset": ds}, {"data.resize": (256, 320), "data.grayscale": 0.0, "data.test_clips": 2})
        for ds in _SS
    ),
    Rule({"data.dataset": "k400"}, {"data.resize": (256,), "data.grayscale": 0.2, "data.test_clips": 4}),
)

# The authors' released code where it differs from the paper (model-notes.md).
RELEASED_CODE: tuple[Rule, ...] = PAPER + (
    Rule(
        {},
        {
            "model.sme_beta": 0.5,
            "model.td_placement": "stacked",
            "model.td_channel_mean": True,
            "model.td_gate": True,
            "model.stem_padding": 1,
            "model.td_bias": False,
            "model.init": "released",
        },
    ),
    Rule({"model.backbone": "ViT-L-14"}, {"model.side_width": 512}),
    Rule({"data.dataset": "k400"}, {"data.randaugment": ""}),
)

# Minutes on a CPU: the synthetic motion dataset, the tiny ViT, 64 px; one data worker decodes the
# next batch while the main process trains (2 cores).
SMOKE: tuple[Rule, ...] = (
    Rule(
        {},
        {
            "data.dataset": "synthetic",
            "model.backbone": "tdsclip-tiny",
            "model.weights": "",
            "model.num_classes": 6,
            "data.input_size": 64,
            "data.resize": (72, 96),
            "data.crop_area": (0.5, 1.0),
            "data.frames": 8,
            "data.num_sample": 1,
            "data.synthetic_videos_per_class": 64,
            "data.synthetic_classes": 6,
            "data.randaugment": "",
            "data.flip": 0.5,
            "data.grayscale": 0.0,
            "data.num_workers": 1,
            "data.test_clips": 2,
            "data.test_crops": 1,
            "model.side_width": 128,
            "model.td_reduction": 8,
            "model.sme_window": 3,
            "model.sme_beta": 2.0,
            "optim.lr": 2e-3,
            "optim.weight_decay": 0.05,
            "optim.warmup_epochs": 1.0,
            "train.epochs": 16,
            "train.batch_size": 16,
            "train.seed": 1024,
            "train.label_smoothing": 0.1,
            "train.precision": "fp32",
            "train.val_every": 2,
        },
    ),
)

PRESETS: dict[str, tuple[Rule, ...]] = {"paper": PAPER, "released-code": RELEASED_CODE, "smoke": SMOKE}

OWNS: dict[str, tuple[str, ...]] = {
    "paper": (),
    "released-code": (),
    "smoke": ("data.dataset", "model.backbone", "model.weights", "model.num_classes", "data.input_size"),
}
"""Keys a preset decides over a table's rows: smoke replaces the paper's dataset and backbone with
the synthetic set and the tiny ViT, so a table row asking for ssv1 or ViT-L-14 runs on those
(a user's own command-line override still wins)."""

GPUS_PER_RUN: dict[str, int] = {"paper": 8, "released-code": 8, "smoke": 0}
"""The paper's 8 A100s per run (Section IV-C); smoke runs on the CPU."""


def _value(cfg: RunConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def resolve(preset: str, overrides: Iterable[str] = ()) -> RunConfig:
    """The RunConfig of `preset` with the user's `key=value` overrides on top."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    user = dict(parse_override(text) for text in overrides)
    changes: dict[str, Any] = {}
    for _ in range(2):  # a rule may itself set the dataset or backbone (smoke does): match again
        probe = apply_overrides(RunConfig(), {**changes, **user})
        changes = {}
        for rule in PRESETS[preset]:
            if all(str(_value(probe, key)) == str(value) for key, value in rule.when.items()):
                changes.update(rule.set)
    return apply_overrides(RunConfig(), {**changes, **user})
