"""The authors' released TDS-CLIP checkpoints: read one exactly, map it onto this project's model.

    model, cfg = load_released("sthv1_vitb16_f8.pt")     # eval mode; cfg inferred from the tensors

    python -m tdsclip.model.released info SRC                      # the inferred model config (JSON)
    python -m tdsclip.model.released convert SRC DST [key=value]   # a project checkpoint

The authors' training script (github.com/BBYL9413/TDS-CLIP at cf4e58c, train_vision.py
`epoch_saving`) writes {"epoch", "model_state_dict", "optimizer_state_dict"}, tensors tagged
cuda:0, keys of their `VideoCLIP` (`visual.*` for the CLIP tower with the side network inside it,
`fc.*` for the classifier), with a `module.` prefix when saved from the DDP wrapper. The file
holds the frozen CLIP weights too, so no `model.weights` file is needed to use it.

The configuration is read off the tensors: the CLIP tower's width, depth, patch and input size
(ViT-B-16 or ViT-L-14 when they match, else one of the project's registered configs in
tdsclip/model/configs/), the side width, the SME window m, the TD-Adapter's reduction and the
number of classes. What the weights cannot say is the released code's fixed behaviour
(`RELEASED_MODEL`: SME beta 0.5, stem padding 1, QuickGELU, the stacked TD-Adapter with its mean
term and gate and no conv bias). Frames are not in the weights (data.frames, 8 by default).

Every key is accounted for: an unknown key, a missing one or a shape that does not fit the
inferred model is a one-line `ReleasedError` naming the key and both shapes; nothing is dropped.
Class order: the classifier's rows follow the authors' class lists (tdsclip/data/classmap.py maps
a dataset's classes onto them).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from tdsclip.config import ConfigError, ModelConfig, RunConfig, apply_overrides, to_dict

if TYPE_CHECKING:
    import torch

# torch and open_clip are imported inside the functions that use them, so the command's --help
# and its argument errors answer without loading them (seconds).

SOURCE = "github.com/BBYL9413/TDS-CLIP at cf4e58c"
EXPECTED = (
    "the authors' training checkpoint (torch.save of a dict with epoch, model_state_dict and "
    f"optimizer_state_dict, as {SOURCE} train_vision.py writes it)"
)

RELEASED_MODEL: dict[str, object] = {
    "model.weights": "checkpoint",
    "model.quick_gelu": True,
    "model.stem_padding": 1,
    "model.cls_shift": True,
    "model.temporal": "td",
    "model.td_mode": "pool",
    "model.td_kernel": 3,
    "model.td_channel_mean": True,
    "model.td_gate": True,
    "model.td_placement": "stacked",
    "model.td_layers": "all",
    "model.td_bias": False,
    "model.sme_alpha": 1.0,
    "model.sme_beta": 0.5,
    "model.sme_placement": "temporal",
    "model.init": "released",
    "model.backbone_tuning": "frozen",
}
"""What the released code fixes and the weights cannot tell (clip/model.py: VisualTransformer.forward
adds 0.5 x the SME stem; conv_3xnxn_std pads by 1; ResidualAttentionBlock uses QuickGELU; SAModule)."""


class ReleasedError(ValueError):
    """A file that is not a released checkpoint, or one that does not fit; one line naming why."""


# ----------------------------------------------------------------------------- the key mapping

_SIDE = "visual.transformer.side_transformer.{i}"
_RULES: tuple[tuple[str, str], ...] = (
    # the frozen CLIP tower (open_clip uses the same names inside a residual block)
    ("visual.class_embedding", "backbone.class_embedding"),
    ("visual.positional_embedding", "backbone.positional_embedding"),
    ("visual.conv1.weight", "backbone.conv1.weight"),
    ("visual.ln_pre.{wb}", "backbone.ln_pre.{wb}"),
    ("visual.transformer.resblocks.{i}.ln_1.{wb}", "backbone.resblocks.{i}.ln_1.{wb}"),
    ("visual.transformer.resblocks.{i}.attn.in_proj_weight", "backbone.resblocks.{i}.attn.in_proj_weight"),
    ("visual.transformer.resblocks.{i}.attn.in_proj_bias", "backbone.resblocks.{i}.attn.in_proj_bias"),
    ("visual.transformer.resblocks.{i}.attn.out_proj.{wb}", "backbone.resblocks.{i}.attn.out_proj.{wb}"),
    ("visual.transformer.resblocks.{i}.ln_2.{wb}", "backbone.resblocks.{i}.ln_2.{wb}"),
    ("visual.transformer.resblocks.{i}.mlp.c_fc.{wb}", "backbone.resblocks.{i}.mlp.c_fc.{wb}"),
    ("visual.transformer.resblocks.{i}.mlp.c_proj.{wb}", "backbone.resblocks.{i}.mlp.c_proj.{wb}"),
    # stems: RGB (side_conv1) and SME (side_conv1_c5), each Conv3d + BN3d
    ("visual.side_conv1.{wb}", "rgb_stem.conv.{wb}"),
    ("visual.side_pre_bn3d.{bn}", "rgb_stem.norm.{bn}"),
    ("visual.side_conv1_c5.{wb}", "sme_stem.conv.{wb}"),
    ("visual.side_pre_bn3d_c5.{bn}", "sme_stem.norm.{bn}"),
    # projections of each frozen block's output, and the shared positional embedding
    ("visual.transformer.side_lns.{i}.{wb}", "proj_norms.{i}.{wb}"),
    ("visual.transformer.side_linears.{i}.{wb}", "projs.{i}.{wb}"),
    ("visual.transformer.side_spatial_position_embeddings", "pos"),
    # the side blocks (AttnCBlock): 3D conv branch, TD-Adapter (SAModule 'mse'), attention, BN-MLP
    (_SIDE + ".bn_1.{bn}", "blocks.{i}.temporal.conv.norm.{bn}"),
    (_SIDE + ".conv.{c}.{wb}", "blocks.{i}.temporal.conv.convs.{c}.{wb}"),
    (_SIDE + ".mse.conv1.weight", "blocks.{i}.temporal.td.reduce.0.weight"),
    (_SIDE + ".mse.bn1.{bn}", "blocks.{i}.temporal.td.reduce.1.{bn}"),
    (_SIDE + ".mse.conv2.weight", "blocks.{i}.temporal.td.restore.0.weight"),
    (_SIDE + ".mse.bn2.{bn}", "blocks.{i}.temporal.td.restore.1.{bn}"),
    (_SIDE + ".ln_1.{wb}", "blocks.{i}.norm.{wb}"),
    (_SIDE + ".attn.in_proj_weight", "blocks.{i}.attn.in_proj.weight"),
    (_SIDE + ".attn.in_proj_bias", "blocks.{i}.attn.in_proj.bias"),
    (_SIDE + ".attn.out_proj.{wb}", "blocks.{i}.attn.out_proj.{wb}"),
    (_SIDE + ".bn_2.{bn}", "blocks.{i}.mlp.norm.{bn}"),
    (_SIDE + ".mlp.fc1.{wb}", "blocks.{i}.mlp.fc1.{wb}"),
    (_SIDE + ".mlp.fc2.{wb}", "blocks.{i}.mlp.fc2.{wb}"),
    # head
    ("visual.side_post_bn.{bn}", "head_norm.{bn}"),
    ("fc.{wb}", "fc.{wb}"),
)
_CONV2D = re.compile(r"\.mse\.conv[12]\.weight$")
"""The released TD-Adapter's 1x1 convs are Conv2d over (B*T) frames: (out, in, 1, 1) -> (out, in, 1, 1, 1)."""

_SLOTS = {
    "i": r"\d+",
    "c": r"[012]",
    "wb": r"weight|bias",
    "bn": r"weight|bias|running_mean|running_var|num_batches_tracked",
}


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(f"(?P<{p}>{_SLOTS[p]})" if n % 2 else re.escape(p) for n, p in enumerate(parts))
    return re.compile(regex + "$")


_COMPILED = tuple((_pattern(a), p, _pattern(p), a) for a, p in _RULES)


def _fill(template: str, match: re.Match[str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: match.group(m.group(1)), template)


def project_key(key: str) -> str | None:
    """The project's name of an authors' key, or None when no rule maps it."""
    for authors, project, _, _ in _COMPILED:
        match = authors.match(key)
        if match:
            return _fill(project, match)
    return None


def authors_key(key: str) -> str | None:
    """The authors' name of a project key, or None (the inverse of `project_key`)."""
    for _, _, project, authors in _COMPILED:
        match = project.match(key)
        if match:
            return _fill(authors, match)
    return None


def _shape(tensor: torch.Tensor) -> str:
    return str(list(tensor.shape))


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `module.` a DDP-wrapped model's state dict carries (all keys or none)."""
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module.") :]: value for key, value in state.items()}
    return dict(state)


def convert(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' model_state_dict in the project's key layout (TDSCLIP.state_dict() names).

    Every key must map; an unknown one is a ReleasedError naming it. Values are the same tensors,
    except the TD-Adapter's Conv2d weights, viewed as the project's Conv3d (1x1 -> 1x1x1).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in strip_module_prefix(state_dict).items():
        target = project_key(key)
        if target is None:
            raise ReleasedError(
                f"unknown key {key} {_shape(value)} in the released checkpoint: no rule maps it "
                f"onto this project's model (expected the layout of {SOURCE})"
            )
        if _CONV2D.search(key):
            if value.ndim != 4:
                raise ReleasedError(f"{key}: expected a Conv2d 1x1 weight (out, in, 1, 1), got {_shape(value)}")
            value = value.unsqueeze(-1)
        out[target] = value
    return out


def check_fits(converted: Mapping[str, torch.Tensor], model_state: Mapping[str, torch.Tensor], source: str) -> None:
    """Every model entry present with its shape, no entry left over; else one line naming the key."""
    for key, expected in model_state.items():
        if key not in converted:
            raise ReleasedError(
                f"released checkpoint {source} lacks {authors_key(key) or key} (this model's {key}, "
                f"shape {_shape(expected)}); was it saved by other code than {SOURCE}?"
            )
        if tuple(converted[key].shape) != tuple(expected.shape):
            raise ReleasedError(
                f"released checkpoint {source}: {authors_key(key) or key} has shape "
                f"{_shape(converted[key])} in the file, {_shape(expected)} in the inferred model ({key})"
            )
    for key, value in converted.items():
        if key not in model_state:
            raise ReleasedError(
                f"released checkpoint {source}: {authors_key(key) or key} {_shape(value)} has no "
                f"place in the inferred model (it would be {key})"
            )


# ----------------------------------------------------------------------------- reading a file


@dataclass(frozen=True)
class Released:
    """The model state dict of a released checkpoint (authors' keys, no prefix) and its epoch."""

    state: dict[str, torch.Tensor]
    epoch: int | None
    source: str


def _what_it_is(obj: object) -> str:
    """What a loaded object is, for an error saying why it is not a released checkpoint."""
    if isinstance(obj, dict):
        if "model" in obj and ("extra" in obj or "optimizer" in obj):
            return (
                "a tdsclip project checkpoint (written by tdsclip.train or tdsclip.model.released convert): "
                "evaluate it with --checkpoint, or start training from it with model.init_from"
            )
        keys = [str(k) for k in obj]
        state = obj.get("state_dict", obj)
        if (
            isinstance(state, dict)
            and any(str(k).split("module.")[-1].startswith("visual.") for k in state)
            and not any("side_" in str(k) for k in state)
        ):
            return "CLIP weights (a state dict with visual.* keys but no side network): that is model.weights"
        return f"a dict with keys {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''}"
    return f"a {type(obj).__name__}"


def read_released(path: str | Path, mmap: bool = False) -> Released:
    """Load a released checkpoint on the CPU with weights_only=True; a one-line error otherwise.
    mmap=True maps the file instead of reading it (shapes cost nothing; values are read when used)."""
    import torch

    from tdsclip.model.weights import is_torchscript_archive, load_error_line

    path = Path(path)
    if not path.is_file():
        raise ReleasedError(f"released checkpoint {path} does not exist (or is not a file)")
    if is_torchscript_archive(path):
        raise ReleasedError(f"{path} is a TorchScript archive (an OpenAI CLIP .pt, i.e. model.weights), not {EXPECTED}")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # a legacy (non-zip) file: read it
    except Exception as error:  # torch.load raises many kinds on damaged or foreign files
        raise ReleasedError(
            f"cannot read released checkpoint {path}: {load_error_line(error)}; expected {EXPECTED}"
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("model_state_dict"), dict):
        state, epoch = obj["model_state_dict"], obj.get("epoch")
    elif isinstance(obj, dict) and any("side_conv1" in str(k) for k in obj):
        state, epoch = obj, None  # a bare model state dict of the authors' model
    else:
        raise ReleasedError(
            f"{path} is not a released TDS-CLIP checkpoint: it holds {_what_it_is(obj)}; expected {EXPECTED}"
        )
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ReleasedError(
            f"{path}: model_state_dict entry {bad[0]} is a {type(state[bad[0]]).__name__}, expected tensors only"
        )
    return Released(strip_module_prefix(state), epoch if isinstance(epoch, int) else None, str(path))


# ----------------------------------------------------------------------------- the configuration


@dataclass(frozen=True)
class Tower:
    """The CLIP tower's shape as the weights tell it."""

    width: int
    layers: int
    patch: int
    image_size: int
    mlp_width: int

    def __str__(self) -> str:
        return (
            f"width {self.width}, {self.layers} layers, patch {self.patch}, {self.image_size} px, MLP {self.mlp_width}"
        )


def _need(state: Mapping[str, torch.Tensor], key: str, what: str, source: str) -> torch.Tensor:
    if key not in state:
        raise ReleasedError(f"released checkpoint {source} lacks {key}, needed to infer {what}")
    return state[key]


def _tower(state: Mapping[str, torch.Tensor], source: str) -> Tower:
    conv1 = _need(state, "visual.conv1.weight", "the CLIP tower's width and patch size", source)
    pos = _need(state, "visual.positional_embedding", "the CLIP tower's input size", source)
    grid = math.isqrt(pos.shape[0] - 1)
    if grid * grid + 1 != pos.shape[0]:
        raise ReleasedError(
            f"released checkpoint {source}: visual.positional_embedding {_shape(pos)} is not "
            "1 + a square grid of patches"
        )
    layers = len({k.split(".")[3] for k in state if k.startswith("visual.transformer.resblocks.")})
    mlp = _need(state, "visual.transformer.resblocks.0.mlp.c_fc.weight", "the CLIP tower's MLP width", source)
    return Tower(conv1.shape[0], layers, conv1.shape[-1], conv1.shape[-1] * grid, mlp.shape[0])


def _open_clip() -> ModuleType:
    """open_clip, with the project's own model configs registered (tdsclip.model.backbone does that)."""
    import open_clip

    import tdsclip.model.backbone  # noqa: F401 - imported for its registration of the configs

    return open_clip


def backbone_candidates() -> list[str]:
    """open_clip configs a released tower may match: the paper's, then the project's own."""
    from tdsclip.model.backbone import CONFIG_DIR, PAPER_BACKBONES

    return [*PAPER_BACKBONES, *sorted(p.stem for p in Path(CONFIG_DIR).glob("*.json"))]


def match_backbone(tower: Tower) -> str:
    """The open_clip config whose vision tower has this shape and 64-wide heads (the released code's)."""
    from tdsclip.model.backbone import CONFIG_DIR

    open_clip = _open_clip()
    for name in backbone_candidates():
        vision = (open_clip.get_model_config(name) or {}).get("vision_cfg", {})
        shape = Tower(
            vision.get("width"),
            vision.get("layers"),
            vision.get("patch_size"),
            vision.get("image_size"),
            int(vision.get("width", 0) * vision.get("mlp_ratio", 4.0)),
        )
        if shape == tower and vision.get("head_width", 64) == 64:
            return name
    raise ReleasedError(
        f"the released checkpoint's CLIP tower ({tower}) matches none of {', '.join(backbone_candidates())}; "
        f"add an open_clip model config for it to {CONFIG_DIR} (head_width 64)"
    )


def infer_config(state: Mapping[str, torch.Tensor], overrides: Iterable[str] = (), source: str = "") -> ModelConfig:
    """The ModelConfig of a released model, read off its tensors (authors' keys), then `overrides`
    (model.key=value strings) on top."""
    backbone = match_backbone(_tower(state, source))
    side = _need(state, "visual.side_post_bn.weight", "the side width", source).shape[0]
    classes = _need(state, "fc.weight", "the number of classes", source).shape[0]
    reduced = _need(state, f"{_SIDE.format(i=0)}.mse.conv1.weight", "the TD-Adapter's reduction", source).shape[0]
    sme = state.get("visual.side_conv1_c5.weight")
    if sme is not None and sme.shape[1] % 3:
        raise ReleasedError(
            f"released checkpoint {source}: visual.side_conv1_c5.weight {_shape(sme)} does not take "
            "3 x (m - 1) difference channels"
        )
    if side % reduced:
        raise ReleasedError(
            f"released checkpoint {source}: TD-Adapter width {reduced} does not divide the side width {side}"
        )
    values = {
        **RELEASED_MODEL,
        "model.backbone": backbone,
        "model.side_width": side,
        "model.num_classes": classes,
        "model.td_reduction": side // reduced,
        "model.sme_window": sme.shape[1] // 3 + 1 if sme is not None else 1,
    }
    try:
        cfg = apply_overrides(RunConfig(), values)
        for text in overrides:
            if not text.startswith("model."):
                raise ConfigError(f"override {text!r}: a released model takes model.* overrides only")
        return apply_overrides(cfg, list(overrides)).model
    except ConfigError as error:
        raise ReleasedError(f"released checkpoint {source}: {error}") from None


# ----------------------------------------------------------------------------- loading


def load_state_into(model: torch.nn.Module, converted: Mapping[str, torch.Tensor], source: str) -> torch.nn.Module:
    """Strictly load a converted state into a model built on the meta device (assign: no copy)."""
    check_fits(converted, model.state_dict(), source)
    floats = {k: v.float() if v.is_floating_point() else v for k, v in converted.items()}
    model.load_state_dict(floats, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ReleasedError(f"released checkpoint {source} leaves {left[0]} uninitialised")
    return model


def load_released(path: str | Path, overrides: Iterable[str] = ()) -> tuple[torch.nn.Module, ModelConfig]:
    """The authors' model from a released checkpoint, on the CPU in eval mode, with its ModelConfig.

    `overrides` are model.key=value strings (e.g. model.td_recompute=false); the frozen CLIP
    weights come from the file (the config's model.weights is 'checkpoint').
    """
    return model_of(read_released(path), overrides)


def model_of(released: Released, overrides: Iterable[str] = ()) -> tuple[torch.nn.Module, ModelConfig]:
    """load_released for a file already read."""
    from tdsclip.model.build import build_model

    converted = convert(released.state)  # an unknown key is named before anything is inferred
    cfg = infer_config(released.state, overrides, released.source)
    model = build_model(cfg, "meta")
    load_state_into(model, converted, released.source)
    return model.eval(), cfg


def released_run_config(model_cfg: ModelConfig, overrides: Iterable[str] = ()) -> RunConfig:
    """The released-code preset's run config around a released model: data/train/optim overrides
    apply (data.dataset=ssv2, data.frames=16 ...), the model is `model_cfg`, and data.input_size is
    the tower's unless an override sets it."""
    from tdsclip.presets import resolve

    overrides = list(overrides)
    size = _open_clip().get_model_config(model_cfg.backbone)["vision_cfg"]["image_size"]
    values = {f"model.{k}": v for k, v in to_dict(model_cfg).items()}
    if not any(t.startswith("data.input_size=") for t in overrides):
        values["data.input_size"] = size
    try:
        if any(t.startswith("model.") for t in overrides):
            raise ConfigError(
                f"override {next(t for t in overrides if t.startswith('model.'))!r}: model.* overrides "
                "go to the released model (load_released), not to its run config"
            )
        return apply_overrides(resolve("released-code", overrides), values)
    except ConfigError as error:
        raise ReleasedError(str(error)) from None


def project_checkpoint(path: str | Path, overrides: Iterable[str] = ()) -> dict:
    """A tdsclip checkpoint of a released model: its full state (the frozen CLIP included), the
    released-code preset's run config with the inferred model (model.weights=checkpoint), and where
    it came from. `overrides`: model.* for the model, the others for the run config."""
    from tdsclip.identity import file_sha256

    overrides = list(overrides)
    released = read_released(path)
    model, model_cfg = model_of(released, [t for t in overrides if t.startswith("model.")])
    run_cfg = released_run_config(model_cfg, [t for t in overrides if not t.startswith("model.")])
    epoch = released.epoch
    return {
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "extra": {
            "config": to_dict(run_cfg),
            "released": {"file": str(path), "sha256": file_sha256(str(path)), "epoch": epoch},
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tdsclip.model.released", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print the configuration inferred from a released checkpoint")
    info.add_argument("src", type=Path)
    conv = sub.add_parser("convert", help="write a project checkpoint (tdsclip.evaluate --checkpoint, model.init_from)")
    conv.add_argument("src", type=Path)
    conv.add_argument("dst", type=Path)
    conv.add_argument(
        "overrides", nargs="*", metavar="key=value", help="model.* / data.* overrides (e.g. data.dataset=ssv2)"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            released = read_released(args.src)
            cfg = infer_config(released.state, (), released.source)
            print(json.dumps({"source": str(args.src), "epoch": released.epoch, "model": to_dict(cfg)}))
            return 0
        from tdsclip.train.checkpoint import atomic_save

        state = project_checkpoint(args.src, args.overrides)
        atomic_save(state, args.dst)
    except ReleasedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {"checkpoint": str(args.dst), **state["extra"]["released"], "model": state["extra"]["config"]["model"]}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
