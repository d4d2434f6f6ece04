"""Where datasets and weights live on this machine: one user-level file or environment variables.

The file is `$TDSCLIP_LOCATIONS`, else `~/.config/tdsclip/locations.toml`:

    [datasets.ssv1]
    root = "/data/something-something-v1/frames"
    train = "/data/something-something-v1/something-something-v1-train.csv"
    val = "/data/something-something-v1/something-something-v1-validation.csv"
    labels = "/data/something-something-v1/something-something-v1-labels.csv"

    [datasets.k400]                    # splits in their own folders: train_root / val_root
    train_root = "/data/kinetics400/videos_train"
    val_root = "/data/kinetics400/videos_val"
    train = "/data/kinetics400/annotations/train.csv"
    val = "/data/kinetics400/annotations/val.csv"
    val_reference = "/data/lists/kinetics_val_list.txt"        # optional: a shared list to compare with
    reference_labels = "/data/lists/kinetics_400_labels.csv"

    [weights]
    "ViT-B-16" = "/data/clip/ViT-B-16.pt"
    "ViT-L-14" = "/data/clip/ViT-L-14.pt"

    [released]                         # the authors' checkpoints, by table row (experiments.run --released)
    "TDS-CLIP-B/16 8f SSv1" = "/data/released/sthv1_vitb16_f8.pt"

    [released.classes]                 # optional: the class list a dataset's checkpoints follow
    ssv1 = "/data/lists/sth_labels.csv"

Environment variables win over the file: TDSCLIP_<DATASET>_{ROOT,TRAIN_ROOT,VAL_ROOT,TRAIN,VAL,
LABELS,TRAIN_REFERENCE,VAL_REFERENCE,REFERENCE_LABELS} (e.g. TDSCLIP_SSV2_ROOT) and TDSCLIP_WEIGHTS_<BACKBONE> (e.g. TDSCLIP_WEIGHTS_VIT_B_16). Values set in
the config itself (data.root=..., model.weights=...) win over both. A released checkpoint's
variable is TDSCLIP_RELEASED_<ROW> (the row name upper-cased, each run of other characters replaced
by `_`: TDSCLIP_RELEASED_TDS_CLIP_B_16_8F_SSV1), a class list's TDSCLIP_RELEASED_CLASSES_<DATASET>.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from tdsclip.config import ConfigError, RunConfig, apply_overrides

REAL_DATASETS = ("ssv1", "ssv2", "k400")
_DATA_KEYS = {
    "root": "data.root",
    "train_root": "data.train_root",
    "val_root": "data.val_root",
    "train": "data.train_annotations",
    "val": "data.val_annotations",
    "labels": "data.labels",
    "train_reference": "data.train_reference",
    "val_reference": "data.val_reference",
    "reference_labels": "data.reference_labels",
}
_REQUIRED = {
    "ssv1": ("root", "train", "val", "labels"),
    "ssv2": ("root", "train", "val", "labels"),
    "k400": ("root", "train", "val"),
}
"""Keys a dataset needs; `root` may be left out where both `train_root` and `val_root` are given."""


def locations_file(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("TDSCLIP_LOCATIONS") or Path.home() / ".config" / "tdsclip" / "locations.toml")


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"locations file {path}: {error}") from None


def _env_name(*parts: str) -> str:
    return "TDSCLIP_" + "_".join(p.upper().replace("-", "_").replace("/", "_") for p in parts)


@dataclass(frozen=True)
class Missing:
    """A location a run needs and nothing gives: its config key, whose it is (a dataset or a
    backbone), and the two ways to set it."""

    config_key: str
    """data.root, data.train_annotations, ..., model.weights"""
    owner: str
    """The dataset (ssv1) or the backbone (ViT-B-16) it belongs to."""
    env: str
    """The environment variable, e.g. TDSCLIP_SSV1_ROOT."""
    file_key: str
    """The key in the locations file, e.g. `[datasets.ssv1] root`."""
    alternative: str = ""
    """Another way to give it, when there is one."""

    def text(self) -> str:
        extra = f" ({self.alternative})" if self.alternative else ""
        return f"{self.config_key} for {self.owner}: set {self.env} or {self.file_key}{extra}"


class LocationsError(ConfigError):
    """Every location a config (or a whole plan) still needs, in one line."""

    def __init__(self, missing: Sequence[Missing], path: Path) -> None:
        self.missing = tuple(dict.fromkeys(missing))
        self.path = path
        count = f"{len(self.missing)} locations are" if len(self.missing) > 1 else "a location is"
        super().__init__(
            f"{count} not set: {'; '.join(m.text() for m in self.missing)} -- keys of the locations file {path}; "
            "a key=value override (data.root=..., model.weights=...) wins over both"
        )


def locate(
    cfg: RunConfig, *, require_weights: bool, environ: Mapping[str, str] | None = None
) -> tuple[RunConfig, tuple[Missing, ...]]:
    """Fill empty data locations (real datasets) and model.weights from the environment or the
    file, and list every one still missing (all of them, so a user sets them in one go)."""
    env = os.environ if environ is None else environ
    path = locations_file(env)
    table = _read_file(path)
    changes: dict[str, str] = {}
    missing: list[Missing] = []
    dataset = cfg.data.dataset
    if dataset in REAL_DATASETS:
        section = table.get("datasets", {}).get(dataset, {})
        for key in section:
            if key not in _DATA_KEYS:
                close = difflib.get_close_matches(key, list(_DATA_KEYS), n=1)
                raise ConfigError(
                    f"{path}: [datasets.{dataset}] has unknown key {key!r}"
                    f"{f'; did you mean {close[0]!r}?' if close else ''} (expected one of {', '.join(_DATA_KEYS)})"
                )
        values = {
            key: getattr(cfg.data, config_key.split(".")[1]) or env.get(_env_name(dataset, key)) or section.get(key, "")
            for key, config_key in _DATA_KEYS.items()
        }
        for key, config_key in _DATA_KEYS.items():
            if values[key]:
                changes[config_key] = str(values[key])
            elif key == "root" and values["train_root"] and values["val_root"]:
                continue  # each split has its own folder
            elif key in _REQUIRED[dataset]:
                other = "or train_root and val_root for splits in separate folders" if key == "root" else ""
                missing.append(
                    Missing(config_key, dataset, _env_name(dataset, key), f"[datasets.{dataset}] {key}", other)
                )
    if not cfg.model.weights:
        backbone = cfg.model.backbone
        value = env.get(_env_name("weights", backbone)) or table.get("weights", {}).get(backbone, "")
        if value:
            changes["model.weights"] = str(value)
        elif require_weights:
            missing.append(
                Missing(
                    "model.weights",
                    backbone,
                    _env_name("weights", backbone),
                    f'[weights] "{backbone}"',
                    "or model.weights=random to train from scratch",
                )
            )
    return (apply_overrides(cfg, changes) if changes else cfg), tuple(missing)


def fill(cfg: RunConfig, *, require_weights: bool, environ: Mapping[str, str] | None = None) -> RunConfig:
    """`cfg` with its data locations and weights filled (see `locate`); a LocationsError (one line,
    every missing location with its variable and file key) when some are not given anywhere."""
    filled, missing = locate(cfg, require_weights=require_weights, environ=environ)
    if missing:
        raise LocationsError(missing, locations_file(os.environ if environ is None else environ))
    return filled


# ----------------------------------------------------------------------------- released checkpoints


def released_variable(row: str) -> str:
    """TDSCLIP_RELEASED_<ROW>: the row name upper-cased, each run of other characters replaced by '_'."""
    return "TDSCLIP_RELEASED_" + re.sub(r"[^A-Z0-9]+", "_", row.upper())


@dataclass(frozen=True)
class Released:
    """Where a table row's released checkpoint is, or how to say where ('' path: not configured)."""

    row: str
    path: str
    variable: str
    file: Path
    """The locations file, whose [released] section may name the row."""

    @property
    def how_to_set(self) -> str:
        return f'set {self.variable} or [released] "{self.row}" in {self.file}'


def _released_section(path: Path) -> dict[str, Any]:
    section = _read_file(path).get("released", {})
    if not isinstance(section, dict):
        raise ConfigError(f'{path}: [released] must be a table of "row name" = "checkpoint file"')
    return section


def released_checkpoint(row: str, environ: Mapping[str, str] | None = None) -> Released:
    """The released checkpoint configured for a table row: $TDSCLIP_RELEASED_<ROW>, else the
    locations file's [released] "<row>" (a leading ~ is expanded)."""
    env = os.environ if environ is None else environ
    path = locations_file(env)
    variable = released_variable(row)
    value = env.get(variable) or _released_section(path).get(row, "")
    if not isinstance(value, str):
        raise ConfigError(f'{path}: [released] "{row}" must be a file path (a string), got {value!r}')
    return Released(row, os.path.expanduser(value) if value else "", variable, path)


def released_rows(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The row names the locations file's [released] section gives a checkpoint."""
    env = os.environ if environ is None else environ
    return tuple(k for k, v in _released_section(locations_file(env)).items() if not isinstance(v, dict))


def released_classes(dataset: str, environ: Mapping[str, str] | None = None) -> str:
    """The class list (an id,name CSV) released checkpoints of `dataset` follow, '' for the default
    (the dataset's own names in alphabetical order): $TDSCLIP_RELEASED_CLASSES_<DATASET>, else
    [released.classes] <dataset> in the locations file."""
    env = os.environ if environ is None else environ
    path = locations_file(env)
    classes = _released_section(path).get("classes", {})
    if not isinstance(classes, dict):
        raise ConfigError(f"{path}: [released.classes] must be a table of dataset = class list CSV")
    value = env.get(_env_name("released", "classes", dataset)) or classes.get(dataset, "")
    return os.path.expanduser(str(value)) if value else ""
