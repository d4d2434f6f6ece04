"""The spatial encoder: an open_clip ViT that returns the output of every residual block.

TDS-CLIP's side network taps all L blocks of the frozen CLIP ViT (12 for B/16, 24 for L/14), so
the backbone returns a list of L tensors of shape (N, 1 + h*w, W): class token first, then the
patch tokens in row-major order. ln_post and the projection are never used and not kept.

    backbone = build_backbone("ViT-B-16", weights="/data/weights/ViT-B-16.pt")
    blocks = backbone(frames)          # frames: (N, 3, 224, 224), CLIP-normalised

Frozen (the default) means: every parameter has requires_grad=False, the module stays in eval
mode, and the forward runs under torch.no_grad(), so it builds no autograd graph and saves no
activations. ST-Adapter and full fine-tuning, for the memory comparison, are the exceptions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import open_clip
import torch
from open_clip.transformer import QuickGELU, VisionTransformer
from torch import nn

from tdsclip.model.adapters import STAdapter
from tdsclip.model.weights import LoadedWeights, WeightsError, load_weights
from tdsclip.private_api import build_vision_tower

PAPER_BACKBONES = ("ViT-B-16", "ViT-L-14")
CONFIG_DIR = Path(__file__).parent / "configs"
open_clip.add_model_config(CONFIG_DIR)  # registers the tiny test configs (tdsclip-tiny)

log = logging.getLogger(__name__)


class CLIPBackbone(nn.Module):
    """open_clip's VisionTransformer up to its last block, frozen unless `tuning` says otherwise.

    tuning='frozen' (TDS-CLIP): parameters frozen, forward under no_grad, unless `patch_bias`
    requires grad (the spatial SME placements), which makes autograd track the blocks so the
    bias's stem can learn, with the parameters still frozen.
    tuning='st_adapter': an ST-Adapter before each block's attention, on the patch tokens; only
    the adapters train, gradients flow through the frozen blocks.
    tuning='full': every parameter trains (full fine-tuning).
    """

    def __init__(
        self, visual: VisionTransformer, name: str, tuning: str = "frozen", st_adapter_width: int = 384
    ) -> None:
        super().__init__()
        if tuning not in ("frozen", "st_adapter", "full"):
            raise ValueError(f"backbone tuning: expected frozen, st_adapter or full, got {tuning!r}")
        self.name, self.tuning = name, tuning
        self.conv1 = visual.conv1
        self.class_embedding = visual.class_embedding
        self.positional_embedding = visual.positional_embedding
        self.patch_dropout = visual.patch_dropout
        self.ln_pre = visual.ln_pre
        self.resblocks = visual.transformer.resblocks
        self.batch_first = getattr(visual.transformer, "batch_first", True)
        self.image_size = tuple(visual.image_size)
        self.patch_size = tuple(visual.patch_size)
        self.grid_size = tuple(visual.grid_size)
        self.width = self.conv1.out_channels
        self.num_layers = len(self.resblocks)
        self.requires_grad_(tuning == "full")
        self.st_adapters = (
            nn.ModuleList(STAdapter(self.width, st_adapter_width) for _ in range(self.num_layers))
            if tuning == "st_adapter"
            else None
        )
        self.eval()

    def train(self, mode: bool = True) -> CLIPBackbone:
        """Always eval: the CLIP encoder must behave identically in training and testing."""
        return super().train(False)

    @property
    def uses_quick_gelu(self) -> bool:
        return any(isinstance(m, QuickGELU) for m in self.modules())

    def _check(self, frames: torch.Tensor) -> None:
        if frames.ndim != 4 or tuple(frames.shape[-2:]) != self.image_size or frames.shape[1] != 3:
            raise ValueError(
                f"{self.name} expects frames of shape (N, 3, {self.image_size[0]}, {self.image_size[1]}), "
                f"got {tuple(frames.shape)}"
            )

    def iter_blocks(
        self, frames: torch.Tensor, patch_bias: torch.Tensor | None = None, num_frames: int = 1
    ) -> Iterator[torch.Tensor]:
        """Yield each block's output (N, 1 + h*w, W) as soon as it is computed.

        frames (N, 3, H, W) with N = clips * num_frames (num_frames matters for ST-Adapter);
        patch_bias (N, h*w, W) is added to the patch embeddings before the class token and the
        positional embedding (the spatial SME placements). Each step enters and leaves its own
        grad mode before yielding, so the caller's code between steps runs in the caller's mode.
        """
        self._check(frames)
        tracked = self.tuning != "frozen" or (patch_bias is not None and patch_bias.requires_grad)
        mode = nullcontext if tracked else torch.no_grad
        with mode():
            x = self.conv1(frames.to(self.conv1.weight.dtype))
            x = x.flatten(2).transpose(1, 2)  # (N, h*w, W)
            if patch_bias is not None:
                x = x + patch_bias.to(x.dtype)
            cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
            x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
            x = self.ln_pre(self.patch_dropout(x))
        for index, block in enumerate(self.resblocks):
            with mode():
                if self.st_adapters is not None:
                    patches = self.st_adapters[index](x[:, 1:], num_frames, self.grid_size)
                    x = torch.cat([x[:, :1], patches], dim=1)
                x = block(x) if self.batch_first else block(x.transpose(0, 1)).transpose(0, 1)
            yield x

    def forward(
        self, frames: torch.Tensor, patch_bias: torch.Tensor | None = None, num_frames: int = 1
    ) -> list[torch.Tensor]:
        """frames (N, 3, H, W) -> L tensors (N, 1 + h*w, W), the output of each residual block."""
        return list(self.iter_blocks(frames, patch_bias, num_frames))


def available_backbones() -> list[str]:
    """ViT architectures this project can build (open_clip's plain ViTs plus the tiny configs)."""
    return [name for name in open_clip.list_models() if name.startswith(("ViT-", "tdsclip-"))]


def _vision_tower(name: str, quick_gelu: bool, device: str | torch.device) -> VisionTransformer:
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        import difflib

        close = difflib.get_close_matches(name, available_backbones(), n=3)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else f"expected one of {', '.join(PAPER_BACKBONES)} or tdsclip-tiny"
        )
        raise WeightsError(f"unknown backbone {name!r}; {hint}")
    with torch.device(device):
        visual = build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"], quick_gelu=quick_gelu)
    if not isinstance(visual, VisionTransformer):
        raise WeightsError(f"backbone {name!r} is a {type(visual).__name__}, expected an open_clip VisionTransformer")
    return visual


def _describe(state: dict[str, torch.Tensor]) -> str:
    """'width 768, patch 16, 12 layers, 224 px' from a visual state dict."""
    try:
        width = state["conv1.weight"].shape[0]
        patch = state["conv1.weight"].shape[-1]
        layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
        grid = round((state["positional_embedding"].shape[0] - 1) ** 0.5)
        return f"width {width}, patch {patch}, {layers} layers, {patch * grid} px"
    except (KeyError, IndexError):
        return "an unrecognised ViT layout"


def _load_visual_state(visual: VisionTransformer, loaded: LoadedWeights, name: str) -> None:
    """Strict load of the used parameters, with a one-line error on any mismatch."""
    model_state = {k: v for k, v in visual.state_dict().items() if not k.startswith(("ln_post.", "proj"))}
    file_state = {k: v for k, v in loaded.visual_state.items() if not k.startswith(("ln_post.", "proj"))}
    missing = [k for k in model_state if k not in file_state]
    unexpected = [k for k in file_state if k not in model_state]
    wrong_shape = [k for k in model_state if k in file_state and file_state[k].shape != model_state[k].shape]
    if missing or unexpected or wrong_shape:
        problems = []
        if wrong_shape:
            k = wrong_shape[0]
            problems.append(
                f"{len(wrong_shape)} shape mismatches (e.g. {k}: file {tuple(file_state[k].shape)}, model {tuple(model_state[k].shape)})"
            )
        if missing:
            problems.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise WeightsError(
            f"weights {loaded.source} do not fit {name}: the file holds {_describe(file_state)}, "
            f"{name} has {_describe(model_state)}; {'; '.join(problems)}"
        )
    visual.load_state_dict(file_state, strict=False)


def build_backbone(
    name: str = "ViT-B-16",
    weights: str = "",
    quick_gelu: bool | None = None,
    device: str | torch.device = "cpu",
    tuning: str = "frozen",
    st_adapter_width: int = 384,
) -> CLIPBackbone:
    """Build the frozen ViT `name` with `weights` (see tdsclip.model.weights), on `device`.

    weights "" or "random": random initialisation; "checkpoint": random here, the frozen weights
    come from the checkpoint loaded next (a released or converted one, which holds them).
    quick_gelu=None lets the weights decide: OpenAI archives and tags marked quick_gelu get it.
    device="meta" builds the architecture without allocating weights (for measurement).
    """
    loaded = load_weights(name, weights) if weights not in ("", "random", "checkpoint") else None
    if loaded is not None and loaded.openai_archive:
        if quick_gelu is False:
            raise WeightsError(
                f"weights {loaded.source} are an OpenAI CLIP archive, trained with QuickGELU; "
                "model.quick_gelu=false would give silently wrong features (leave it unset or true)"
            )
        quick_gelu = True
    elif loaded is not None and quick_gelu is None:
        quick_gelu = bool(loaded.tag_quick_gelu)
    visual = _vision_tower(name, bool(quick_gelu), "cpu" if loaded is not None else device)
    if loaded is not None:
        _load_visual_state(visual, loaded, name)
        visual = visual.to(device)
        log.info("loaded %s weights from %s (quick_gelu=%s)", name, loaded.source, bool(quick_gelu))
    with torch.device(device):  # the ST-Adapters are created on the backbone's device
        return CLIPBackbone(visual, name, tuning, st_adapter_width)
