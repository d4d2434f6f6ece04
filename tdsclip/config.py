"""Typed, frozen run configuration: dataclasses, `key.sub=value` overrides, stable hashing.

A run is one `RunConfig` tree. Defaults follow the paper's Table XIII for ViT-B/16 on
Something-Something V1 (the ablation setting); named recipes ("presets") live outside the
library and are expressed as overrides of these defaults.

    cfg = apply_overrides(RunConfig(), ["model.backbone=ViT-L-14", "optim.lr=1e-4"])
    print(format_config(cfg)); print(config_hash(cfg))

Run `python -m tdsclip.config [key=value ...]` to print a resolved config and its hash, and
`python -m tdsclip.config --reference > docs/config.md` to regenerate the configuration reference
(every key, type, default and the docstring written under its field here).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import hashlib
import inspect
import json
import math
import re
import signal
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union


class ConfigError(ValueError):
    """A bad key or value; the message is one line naming it and what was expected."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class ModelConfig:
    """The network: the frozen CLIP backbone and the classifier built on it."""

    backbone: str = "ViT-B-16"
    """open_clip architecture: ViT-B-16, ViT-L-14, or a tiny test config (tdsclip-tiny)."""
    weights: str = ""
    """Backbone weights: a local file (OpenAI .pt archive, open_clip .bin/.pt/.pth/.safetensors),
    an open_clip pretrained tag already in the local cache (e.g. openai); "" means not set (a
    paper run then looks it up in the locations file), "random" means random initialisation,
    "checkpoint" means the checkpoint the model is loaded from holds them (the authors' released
    checkpoints and their conversions, tdsclip/model/released.py)."""
    quick_gelu: bool | None = None
    """QuickGELU activations in the backbone; None lets the weights decide (OpenAI ones need it)."""
    num_classes: int = 174
    """K, the classifier's outputs: 174 for Something-Something V1/V2, 400 for Kinetics-400."""

    # --- side network (tdsclip/model/side.py) ---
    side_width: int = 320
    """d, the side network's width; attention heads = d / 64 (Table VIII: 128, 320, 512)."""
    stem_padding: int = 1
    """Spatial padding of the (3, p, p) stems: 1 in TDS-CLIP's code, 0 in Side4Video's."""
    cls_shift: bool = True
    """Keys/values get the frozen CLS with half its channels from frame t+1, half from t-1."""
    temporal: Literal["none", "conv3d", "td"] = "td"
    """Temporal module per side block: none (Table XII baseline), the 3D conv branch only
    (Table III baseline, i.e. Side4Video), or the 3D conv branch with the TD-Adapter."""

    # --- TD-Adapter (tdsclip/model/adapters.py) ---
    td_mode: Literal["pool", "conv", "direct"] = "pool"
    """D = f - MaxPool_t(f) | f - TConv_t(f) | f_t - f_(t-1) (Table VI)."""
    td_kernel: int = 3
    """k, temporal kernel of the pool / conv modes (Table VII: 3, 5, 7)."""
    td_reduction: int = 16
    """r: the adapter works on d / r channels."""
    td_channel_mean: bool = True
    """y = 0.5 * D + 0.5 * mean over channels of D (released code); off: y = D."""
    td_gate: bool = True
    """out = x * (0.5 + sigmoid(restore(y))) (released code); off: out = x + restore(y)."""
    td_placement: Literal["stacked", "replace"] = "stacked"
    """stacked: after the 3D conv branch (released code); replace: in place of it (a reading of the paper)."""
    td_bias: bool = False
    """Biases in the TD-Adapter's two 1x1x1 convolutions: off as in the released code (bias=False;
    the paper is silent); on: the project's earlier form (+d/r + d parameters per adapter)."""
    td_layers: str = "all"
    """Side blocks that carry the TD-Adapter, 1-based: 'all', '1-6', '7-12', '1,3,5', or
    'first-half' / 'second-half' (Table IX's rows at any depth);
    the other blocks keep the plain 3D conv branch."""

    # --- SME-Adapter ---
    sme_window: int = 5
    """m, local frames per sparse frame (Table IV: 1, 3, 5); 1 disables the SME stem."""
    sme_alpha: float = 1.0
    """Weight of the RGB stem in the side input; 0 builds no RGB stem (Table V '- / 1.0')."""
    sme_beta: float = 1.0
    """Weight of the SME stem (Table V); the released code uses 0.5."""
    sme_placement: Literal["temporal", "spatial", "spatial_temporal", "cross", "additional"] = "temporal"
    """Where SME features enter (Table XI); formulas in tdsclip/model/build.py."""

    # --- initialisation of a run trained from scratch, or from a checkpoint ---
    init: Literal["paper", "released"] = "paper"
    """paper: every side projection normal with std (2d)^-0.5, attention and MLP output layers with
    std d^-0.5 (2L)^-0.5 for L blocks, the classifier truncated normal 0.02 with zero bias.
    released: as the authors' code actually behaves (its initialize_parameters re-initialises the
    *text* tower's side projections): the side projections and the classifier keep PyTorch's
    default nn.Linear init, and the output layers use 2 x 12 blocks whatever the depth."""
    init_from: str = ""
    """A project checkpoint whose model state (trainable weights, statistics and, when it holds
    them, the frozen CLIP weights) the run starts from, e.g. one written by
    `python -m tdsclip.model.released convert`; its sha256 is part of the run id."""

    # --- recomputation in backward: less activation memory, the same maths (not part of a run's
    # identity); under torch.compile (train.compile) the plain path runs ---
    td_recompute: bool = True
    """Recompute the TD-Adapter's intermediate tensors in backward instead of keeping them (a
    little more compute); off: the plain path."""
    proj_recompute: bool = True
    """Keep one CLIP-wide tensor per block for the projection of each frozen block's output to the
    side width, not two (the LayerNorm's input and output): its affine folded into the Linear, so
    backward keeps the normalised input and runs one matmul less (tdsclip/model/fold.py); where
    that output needs a gradient (CLIP trained), the LayerNorm's output is recomputed in backward
    instead; off: the plain path."""
    norm_recompute: bool = True
    """Recompute the outputs of the side block's norms that feed a Linear or 1x1x1 conv (the MLP's
    BatchNorm, the attention's LayerNorm, the 3D conv branch's BatchNorm) in backward instead of
    keeping them beside the norms' inputs; off: the plain path."""
    gelu_recompute: bool = True
    """Recompute the MLP's GELU output (4d wide) in backward instead of keeping it beside its input;
    off: the plain path."""
    dwconv_recompute: bool = True
    """Recompute the temporal branch's depthwise conv output in backward instead of keeping it
    beside its input; off: the plain path."""

    # --- how the CLIP backbone is tuned (memory comparison, Table XII) ---
    backbone_tuning: Literal["frozen", "st_adapter", "full"] = "frozen"
    """frozen (TDS-CLIP), ST-Adapters inside the frozen blocks, or full fine-tuning."""
    st_adapter_width: int = 384
    """Bottleneck width of each ST-Adapter."""

    def __post_init__(self) -> None:
        _check(self.num_classes >= 1, f"model.num_classes: expected >= 1, got {self.num_classes}")
        _check(
            self.side_width >= 64 and self.side_width % 64 == 0,
            f"model.side_width: expected a positive multiple of 64 (heads = d / 64), got {self.side_width}",
        )
        _check(self.stem_padding in (0, 1), f"model.stem_padding: expected 0 or 1, got {self.stem_padding}")
        _check(
            self.td_kernel >= 1 and self.td_kernel % 2 == 1,
            f"model.td_kernel: expected an odd number >= 1, got {self.td_kernel}",
        )
        _check(
            self.td_reduction >= 1 and self.side_width % self.td_reduction == 0,
            f"model.td_reduction: expected a divisor of model.side_width={self.side_width}, got {self.td_reduction}",
        )
        parse_layer_spec(self.td_layers)
        _check(
            self.sme_window >= 1 and self.sme_window % 2 == 1,
            f"model.sme_window: expected an odd number >= 1 (1, 3, 5), got {self.sme_window}",
        )
        _check(self.sme_alpha >= 0, f"model.sme_alpha: expected >= 0, got {self.sme_alpha}")
        _check(self.sme_beta >= 0, f"model.sme_beta: expected >= 0, got {self.sme_beta}")
        if self.sme_window > 1:
            _check(
                self.sme_beta > 0,
                f"model.sme_beta: expected > 0 with model.sme_window={self.sme_window} "
                "(set model.sme_window=1 to disable SME)",
            )
        _check(
            self.sme_alpha > 0 or (self.sme_window > 1 and self.sme_placement in ("temporal", "spatial_temporal")),
            f"model.sme_alpha=0 leaves the side network without input unless SME feeds it "
            f"(model.sme_window > 1 and model.sme_placement temporal or spatial_temporal); got "
            f"sme_window={self.sme_window}, sme_placement={self.sme_placement}",
        )
        _check(self.st_adapter_width >= 1, f"model.st_adapter_width: expected >= 1, got {self.st_adapter_width}")

    @property
    def uses_sme(self) -> bool:
        return self.sme_window > 1

    @property
    def backbone_gets_gradients(self) -> bool:
        """True where gradients flow through the CLIP blocks (and their activations are saved):
        ST-Adapter, full fine-tuning, and SME placements that feed the CLIP patch embedding."""
        spatial = self.uses_sme and self.sme_placement in ("spatial", "spatial_temporal")
        return self.backbone_tuning != "frozen" or spatial


RECOMPUTE_KNOBS = ("td_recompute", "proj_recompute", "norm_recompute", "gelu_recompute", "dwconv_recompute")
"""ModelConfig's recomputation knobs: exact, so not part of a run's identity, a model's FLOPs or its result."""


def parse_layer_spec(spec: str, num_layers: int | None = None) -> frozenset[int] | None:
    """'all' -> None (every layer); '1-6,9' -> {0..5, 8} (0-based). Checked against num_layers if given.

    'first-half' and 'second-half' name Table IX's rows whatever the depth (on the 12-layer B/16
    they are 1-6 and 7-12); they resolve once num_layers is known (an empty set before).
    """
    text = spec.strip().lower()
    if text == "all":
        return None
    if text in ("first-half", "second-half"):
        if num_layers is None:
            return frozenset()
        half = num_layers // 2
        return frozenset(range(half) if text == "first-half" else range(half, num_layers))
    layers: set[int] = set()
    for part in text.split(","):
        start, dash, end = part.strip().partition("-")
        try:
            first, last = int(start), int(end) if dash else int(start)
        except ValueError:
            raise ConfigError(
                f"model.td_layers: expected 'all', 'first-half', 'second-half' or 1-based layers like "
                f"'1-6' or '1,3,5', got {spec!r}"
            ) from None
        _check(1 <= first <= last, f"model.td_layers: expected 1-based ascending ranges, got {spec!r}")
        layers.update(range(first - 1, last))
    if num_layers is not None:
        _check(
            max(layers) < num_layers,
            f"model.td_layers={spec!r} names layer {max(layers) + 1} but the backbone has {num_layers} layers",
        )
    return frozenset(layers)


# timm's RandAugment string: 'rand' then dash-separated sections (m7, n4, mstd0.5, inc1, ...).
_RANDAUGMENT = re.compile(r"rand(-(m\d+|n\d+|p\d*\.?\d+|mstd\d*\.?\d+|mmax\d+|inc[01]|t\w+))*")


@dataclass(frozen=True)
class DataConfig:
    """What the model sees: dataset, sparse frames per clip, input resolution, augmentation."""

    dataset: Literal["ssv1", "ssv2", "k400", "list", "synthetic"] = "ssv1"
    """Annotation format and, for ssv1/ssv2/k400, the [datasets.NAME] section of the locations file;
    list: `<path> [<num_frames>] <label>` files; synthetic: the generated motion dataset."""
    frames: int = 8
    """T, sparse frames per clip (one view)."""
    input_size: int = 224
    """Square crop fed to the backbone, in pixels."""
    num_workers: int = 8
    """DataLoader worker processes per training process (0: load in the main process)."""
    root: str = ""
    """Folder holding the videos or frame folders, laid out as the dataset's owners distribute them."""
    train_root: str = ""
    """The training split's folder when it differs from data.root (e.g. videos_train/); empty: data.root."""
    val_root: str = ""
    """The validation (and test-view) split's folder when it differs from data.root (e.g. videos_val/); empty: data.root."""
    train_annotations: str = ""
    """Training split file (SSv1 csv, SSv2 json, K400 csv, or a `<path> [<num_frames>] <label>` list)."""
    val_annotations: str = ""
    """Validation split file, same formats; the test views are taken on it too."""
    labels: str = ""
    """Class names: the SSv1 labels csv, the SSv2 labels json; optional for k400 and list."""
    num_sample: int = 2
    """Repeated sampling: independently augmented training clips drawn from each decoded video."""
    randaugment: str = "rand-m7-n4-mstd0.5-inc1"
    """RandAugment in timm's string format; empty turns it off (the released code does for K400)."""
    resize: tuple[int, ...] = (256, 320)
    """Frames are resized first: two values are (height, width) (SS: 256,320), one is the short side (K400: 256)."""
    flip: float = 0.5
    """Horizontal flip probability; on Something-Something a flip swaps left/right class labels."""
    grayscale: float = 0.0
    """Probability of turning a training clip grey (Table XIII: 0.2 on K400, 0 on SS)."""
    test_clips: int = 2
    """K temporal clips per video in the test views (SS 2, K400 4)."""
    test_crops: int = 3
    """Spatial crops per clip in the test views: 3 (left, centre, right) or 1 (centre)."""
    max_corrupt_fraction: float = 0.01
    """Training stops once more than this fraction of the training videos proved unreadable."""
    crop_area: tuple[float, float] = (0.08, 1.0)
    """Area range of the training random resized crop (Table XIII: 0.08-1; ratio 3/4-4/3)."""
    synthetic_format: Literal["ssv1", "ssv2", "k400"] = "ssv2"
    """data.dataset=synthetic: the real format the generated dataset is written in."""
    synthetic_classes: int = 8
    """data.dataset=synthetic: motion classes (6 to 8)."""
    synthetic_videos_per_class: int = 12
    """data.dataset=synthetic: videos per class, a quarter of them for validation."""
    train_fraction: float = 1.0
    """Train on this class-balanced fraction of the training split (Fig. 6's data efficiency):
    in each class, the videos that rank first by sha256(subset_seed, video id), so a smaller
    fraction is contained in a larger one (tdsclip/data/subsets.py)."""
    subset_seed: int = 0
    """Seed of the train_fraction subset's choice (not the training seed)."""
    train_reference: str = ""
    """A shared `path num_frames label` list of the training split to compare the data with (fingerprint)."""
    val_reference: str = ""
    """The same for the validation split: a run evaluated on data that differs from it says so."""
    reference_labels: str = ""
    """The `id,name` labels CSV beside the reference lists; without it labels are compared by index."""
    cache_dir: str = ""
    """Where manifests and the synthetic dataset are cached; empty: $TDSCLIP_CACHE or ~/.cache/tdsclip."""

    def __post_init__(self) -> None:
        _check(self.frames >= 1, f"data.frames: expected >= 1, got {self.frames}")
        _check(self.input_size >= 1, f"data.input_size: expected >= 1, got {self.input_size}")
        _check(self.num_workers >= 0, f"data.num_workers: expected >= 0, got {self.num_workers}")
        _check(self.num_sample >= 1, f"data.num_sample: expected >= 1, got {self.num_sample}")
        _check(
            self.randaugment == "" or _RANDAUGMENT.fullmatch(self.randaugment) is not None,
            f"data.randaugment: expected timm's format like 'rand-m7-n4-mstd0.5-inc1' (sections m, n, p, mstd, "
            f"mmax, inc, t) or '' for none, got {self.randaugment!r}",
        )
        _check(
            len(self.resize) in (1, 2) and min(self.resize, default=0) >= 1,
            f"data.resize: expected height,width or one short side, in pixels, got {self.resize}",
        )
        _check(0 <= self.flip <= 1, f"data.flip: expected a probability in [0, 1], got {self.flip}")
        _check(0 <= self.grayscale <= 1, f"data.grayscale: expected a probability in [0, 1], got {self.grayscale}")
        _check(self.test_clips >= 1, f"data.test_clips: expected >= 1, got {self.test_clips}")
        _check(self.test_crops in (1, 3), f"data.test_crops: expected 1 or 3, got {self.test_crops}")
        _check(
            0 < self.crop_area[0] <= self.crop_area[1] <= 1,
            f"data.crop_area: expected min,max with 0 < min <= max <= 1, got {self.crop_area}",
        )
        _check(
            0 < self.train_fraction <= 1,
            f"data.train_fraction: expected a fraction in (0, 1], got {self.train_fraction}",
        )
        _check(
            self.synthetic_videos_per_class >= 2,
            f"data.synthetic_videos_per_class: expected >= 2 (train and val), got {self.synthetic_videos_per_class}",
        )
        _check(
            0 <= self.max_corrupt_fraction <= 1,
            f"data.max_corrupt_fraction: expected a fraction in [0, 1], got {self.max_corrupt_fraction}",
        )


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay (Table XIII)."""

    lr: float = 1e-3
    """Peak learning rate, reached after the warm-up (Table XIII: 1e-3 for B/16, 1e-4 for L/14)."""
    weight_decay: float = 0.15
    """AdamW weight decay; biases, norms and the positional embedding get none."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW's beta1, beta2."""
    warmup_epochs: float = 4.0
    """Epochs of linear warm-up (fractions allowed), then cosine decay to 0; stepped per iteration."""

    def __post_init__(self) -> None:
        _check(self.lr > 0, f"optim.lr: expected > 0, got {self.lr}")
        _check(self.weight_decay >= 0, f"optim.weight_decay: expected >= 0, got {self.weight_decay}")
        _check(all(0 <= b < 1 for b in self.betas), f"optim.betas: expected two values in [0, 1), got {self.betas}")
        _check(self.warmup_epochs >= 0, f"optim.warmup_epochs: expected >= 0, got {self.warmup_epochs}")


@dataclass(frozen=True)
class TrainConfig:
    """The training loop: length, global batch, seed, loss and precision."""

    epochs: int = 40
    """Training epochs (Table XIII: 40 for SSv1 B/16, 30 otherwise)."""
    batch_size: int = 128
    """Global batch in videos per optimiser step, whatever the number of GPUs."""
    seed: int = 1024
    """Seeds python, numpy and torch, each epoch's order and each sample's augmentation."""
    label_smoothing: float = 0.1
    """Label smoothing of the cross-entropy loss."""
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    """Autocast dtype: bf16 or fp16 (with a grad scaler) on CUDA; fp32 or bf16 on CPU."""
    micro_batch: int = 16
    """Videos per process per forward; gradients accumulate over batch_size / (micro_batch * world).
    Training needs two clips or more per forward (micro_batch x data.num_sample, see docs/training.md)."""
    val_every: int = 1
    """Single-view validation every N epochs and after the last (0: never; the final multi-view test always runs)."""
    checkpoint_every: int = 0
    """Also checkpoint every N optimiser steps (0: only at the end of each epoch and on a stop signal)."""
    stop_signal: str = "SIGUSR2"
    """Signal that asks the run to checkpoint at the next step boundary and exit (Slurm preemption)."""
    checkpoint_blocks: bool = False
    """Activation checkpointing of the side blocks (less memory, one more forward of them)."""
    compile: bool = False
    """torch.compile the side network (GPU runs)."""
    sync_bn: bool = False
    """SyncBatchNorm across GPUs instead of per-rank statistics."""
    log_every: int = 20
    """Optimiser steps between plain log lines when stdout is not a terminal."""

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"train.epochs: expected >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"train.batch_size: expected >= 1, got {self.batch_size}")
        _check(0 <= self.label_smoothing < 1, f"train.label_smoothing: expected in [0, 1), got {self.label_smoothing}")
        _check(self.micro_batch >= 1, f"train.micro_batch: expected >= 1, got {self.micro_batch}")
        _check(self.val_every >= 0, f"train.val_every: expected >= 0, got {self.val_every}")
        _check(self.checkpoint_every >= 0, f"train.checkpoint_every: expected >= 0, got {self.checkpoint_every}")
        _check(self.log_every >= 1, f"train.log_every: expected >= 1, got {self.log_every}")
        _check(
            self.stop_signal.startswith("SIG") and hasattr(signal, self.stop_signal),
            f"train.stop_signal: expected a signal name like SIGUSR2 or SIGTERM, got {self.stop_signal!r}",
        )


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run; its hash identifies the run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def check_clips_per_forward(cfg: RunConfig, statistics_across_processes: bool = False) -> None:
    """Refuse training on one clip per forward and process (train.micro_batch x data.num_sample).

    The head's BatchNorm3d takes its batch statistics over (B, T, h, w) and the head averages its
    output over (T, h, w), so with B = 1 every clip's features are the norm's bias and every logit
    the same (tests/test_train_parts.py). The loss then reaches the classifier alone, and AdamW
    turns the rounding noise backward carries into the side network into full-size updates: a run
    that trains without learning. statistics_across_processes: SyncBatchNorm pools several GPUs."""
    if cfg.train.micro_batch * cfg.data.num_sample < 2 and not statistics_across_processes:
        raise ConfigError(
            f"train.micro_batch={cfg.train.micro_batch} x data.num_sample={cfg.data.num_sample} is one clip per "
            "forward on each process: the head's BatchNorm3d normalises the very tokens it averages, so every "
            "logit would be the same whatever the video and nothing but the classifier's bias would learn; "
            "use train.micro_batch >= 2 (or train.sync_bn=true across several GPUs)"
        )


# ----------------------------------------------------------------------------- introspection


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """A config class's field types (cached: get_type_hints takes milliseconds, and a planner parses
    thousands of overrides). Callers only read the dict."""
    return typing.get_type_hints(cls)


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def leaf_types(cls: type = RunConfig, prefix: str = "") -> dict[str, Any]:
    """Every settable dotted key of a config class with its type, e.g. {'optim.lr': float}."""
    keys: dict[str, Any] = {}
    for name, tp in _field_types(cls).items():
        if _is_config(tp):
            keys.update(leaf_types(tp, f"{prefix}{name}."))
        else:
            keys[f"{prefix}{name}"] = tp
    return keys


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join("None" if a is type(None) else _type_name(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"comma-separated {_type_name(args[0])}s"
        return f"{len(args)} comma-separated values ({', '.join(_type_name(a) for a in args)})"
    return getattr(tp, "__name__", str(tp))


# ----------------------------------------------------------------------------- value parsing

_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a CLI string or a JSON value to `tp`; raise ConfigError naming key and type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)

    def bad() -> ConfigError:
        return ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")

    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in {"none", "null"}):
            if type(None) in args:
                return None
            raise bad()
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise bad()
    if origin is Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and value == str(choice)):
                return choice
        raise bad()
    if origin is tuple:
        if isinstance(value, str):
            text = value.strip().strip("[]()").strip()
            items: list[Any] = [part.strip() for part in text.split(",")] if text else []
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise bad()
        if len(args) == 2 and args[1] is Ellipsis:
            item_types = [args[0]] * len(items)
        elif len(items) != len(args):
            raise bad()
        else:
            item_types = list(args)
        try:
            return tuple(_coerce(item, item_tp, key) for item, item_tp in zip(items, item_types))
        except ConfigError:
            raise bad() from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad()
    if tp is int:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise bad() from None
        raise bad()
    if tp is float:
        if isinstance(value, bool):
            raise bad()
        try:
            number = float(value.strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise bad() from None
        if not math.isfinite(number):
            raise bad()
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    raise TypeError(f"{key}: unsupported config field type {tp!r}")


# ----------------------------------------------------------------------------- overrides


def _suggest(key: str, valid: list[str]) -> str:
    """The closest valid key: same leaf elsewhere, an abbreviation (learning_rate -> lr), spelling."""
    leaf = key.rsplit(".", 1)[-1]
    leaves = {k: k.rsplit(".", 1)[-1] for k in valid}

    def initials(name: str) -> str:
        return "".join(word[0] for word in name.split("_") if word)

    close = (
        [k for k, name in leaves.items() if name == leaf]
        or [k for k, name in leaves.items() if "_" in leaf and name == initials(leaf)]
        or [k for k, name in leaves.items() if "_" in name and initials(name) == leaf]
        or difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        or [k for k in valid if leaves[k] in difflib.get_close_matches(leaf, list(leaves.values()), n=1, cutoff=0.6)]
    )
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"


def _replace_all(cfg: Any, changes: dict[str, Any]) -> Any:
    """Apply dotted changes with one `replace` per dataclass, so that cross-field checks in
    __post_init__ see the final values, never an intermediate mix."""
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        head, dot, rest = key.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, sub in nested.items():
        direct[head] = _replace_all(getattr(cfg, head), sub)
    return dataclasses.replace(cfg, **direct) if direct else cfg


def parse_override(text: str, cls: type = RunConfig) -> tuple[str, Any]:
    """Parse one `key.sub=value` string into (key, typed value)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    _check(bool(sep) and bool(key), f"override {text!r}: expected key=value, e.g. optim.lr=1e-4")
    valid = leaf_types(cls)
    if key not in valid:
        sections = {k.split(".")[0] for k in valid}
        if key in sections:
            example = next(k for k in valid if k.startswith(key + "."))
            raise ConfigError(
                f"override {text!r}: '{key}' is a config section; set one of its keys, e.g. '{example}=...'"
            )
        raise ConfigError(f"unknown config key '{key}'{_suggest(key, sorted(valid))}")
    return key, _coerce(raw, valid[key], key)


def apply_overrides(cfg: Any, overrides: typing.Iterable[str] | typing.Mapping[str, Any]) -> Any:
    """Return a new config with dotted overrides applied; validated by each dataclass."""
    if isinstance(overrides, typing.Mapping):
        valid = leaf_types(type(cfg))
        pairs = []
        for key, value in overrides.items():
            if key not in valid:
                raise ConfigError(f"unknown config key '{key}'{_suggest(key, sorted(valid))}")
            pairs.append((key, _coerce(value, valid[key], key)))
    else:
        pairs = [parse_override(text, type(cfg)) for text in overrides]
    return _replace_all(cfg, dict(pairs))


# ----------------------------------------------------------------------------- (de)serialisation


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples become lists), the form saved with every run."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def flatten(cfg: Any) -> dict[str, Any]:
    """{'optim.lr': 0.001, ...}: the form logged to MLflow and printed."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                flat[f"{prefix}{f.name}"] = list(value) if isinstance(value, tuple) else value

    walk(cfg, "")
    return flat


def from_dict(data: typing.Mapping[str, Any], cls: type = RunConfig) -> Any:
    """Rebuild a config from `to_dict` output; unknown keys and bad values are errors."""
    flat: dict[str, Any] = {}

    def walk(node: typing.Mapping[str, Any], prefix: str) -> None:
        for name, value in node.items():
            if isinstance(value, typing.Mapping):
                walk(value, f"{prefix}{name}.")
            else:
                flat[f"{prefix}{name}"] = value

    walk(data, "")
    return apply_overrides(cls(), flat)


def config_hash(cfg: Any) -> str:
    """sha256 of the canonical JSON of the resolved config: equal configs, equal hash, anywhere."""
    canonical = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def format_config(cfg: Any) -> str:
    """One `key = value` line per setting, in declaration order."""
    flat = flatten(cfg)
    width = max(len(k) for k in flat)
    return "\n".join(f"{key:<{width}} = {json.dumps(value)}" for key, value in flat.items())


# ----------------------------------------------------------------------------- reference

REFERENCE_COMMAND = "python -m tdsclip.config --reference > docs/config.md"


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's attribute docstring (the string written under it) of a config class, read from
    this module's source with ast: the docs stay beside the fields, and this file stays the one place."""
    tree = ast.parse(inspect.getsource(sys.modules[__name__]))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__).body
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def _cli_value(value: Any) -> str:
    """A default as it is typed after `key=` on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(_cli_value(v) for v in value)
    return str(value)


def reference() -> str:
    """docs/config.md: every key of RunConfig with its type, default and docstring, as Markdown."""
    cell = lambda text: text.replace("|", "\\|")  # a pipe would end the table cell
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from tdsclip/config.py by `{REFERENCE_COMMAND}`; edit the docstrings there, not this file. -->",
        "",
        "Every key of a run's configuration (`tdsclip.config.RunConfig`), its type, its default and what it",
        "means. Every command that runs or plans something takes `key=value` overrides (see",
        "[Configs and overrides](training.md#configs-and-overrides)); `python -m tdsclip.config key=value ...`",
        "prints the resolved config and its hash. Presets change some defaults (see",
        "[Presets](training.md#presets)).",
    ]
    for section in dataclasses.fields(RunConfig):
        cls = _field_types(RunConfig)[section.name]
        docs, defaults = field_docs(cls), cls()
        lines += ["", f"## {section.name}", "", " ".join(inspect.cleandoc(cls.__doc__ or "").split()), ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            default = _cli_value(getattr(defaults, f.name))
            lines.append(
                f"| `{section.name}.{f.name}` | {cell(_type_name(_field_types(cls)[f.name]))} | "
                f"{f'`{default}`' if default else '(empty)'} | {cell(docs.get(f.name, ''))} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--reference" in args:
        if len(args) > 1:
            print("error: --reference takes no other arguments (the reference shows the defaults)", file=sys.stderr)
            return 2
        print(reference(), end="")
        return 0
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        print("\nkeys:\n" + "\n".join(f"  {k}: {_type_name(t)}" for k, t in leaf_types().items()))
        return 0
    try:
        cfg = apply_overrides(RunConfig(), args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_config(cfg))
    print(f"# config hash {config_hash(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
