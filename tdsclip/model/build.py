"""TDS-CLIP: a frozen CLIP ViT and a side network that taps every block; `build_model(cfg)`.

    model = build_model(RunConfig().model)          # ViT-B/16, d 320, TD-Adapter, SME m 5
    logits = model(clips)                           # clips (B, 3, T, m, 224, 224) -> (B, K)

Input: clips (B, 3, T, m, H, W), CLIP-normalised, m = model.sme_window local frames around each
of the T sparse frames (the centre one, index m // 2, is the sparse frame); (B, 3, T, H, W) is
accepted when m = 1. x_c are the centre frames (B, 3, T, H, W), the only ones the frozen CLIP
and the RGB stem see; D = sme_differences(clips), (B, 3(m-1), T, H, W).

SME placements (alpha = model.sme_alpha, beta = model.sme_beta; Table XI):
    temporal          x_0 = alpha * RGB(x_c) + beta * SME(D)                 (released code)
    spatial           x_0 = alpha * RGB(x_c); CLIP's patch embeddings e += beta * SME_W(D)
    spatial_temporal  both: x_0 as temporal, and e += beta * SME_W(D) with a second stem
    cross             x_0 = alpha * RGB(x_c); s_0 = SME(D); before side block i x += beta * s_i,
                      after it (but the last) s_(i+1) = s_i + Linear_i(x)  (the paths exchange at every layer)
    additional        x_0 = alpha * RGB(x_c); a = GAP(BN(s + TemporalConv(s))) with s = SME(D);
                      the head sees GAP(BN(x_L)) + beta * a  (a separate path fused at the end)
RGB, SME are PatchStems to width d; SME_W is a PatchStem to CLIP's width W. Spatial placements
make gradients flow through the frozen CLIP blocks (their parameters stay frozen).

Side network: for each frozen block i, with z_i its output (B*T, 1 + h*w, W):
    c, p = split(Linear_i(LN_i(z_i)));  x = 0.5 * x + 0.5 * p;  x = TDSBlock_i(x, c)
The model.*_recompute knobs (all on by default) recompute cheap outputs in backward instead of
keeping them (the TD-Adapter, the side block's norms, GELU and depthwise conv;
tdsclip/model/recompute.py, tdsclip/model/linear_after.py) and fold the projection's LayerNorm into its Linear
(tdsclip/model/fold.py): same maths, less memory.
Head: logits = Linear_{d -> K}(mean over T, h, w of BN3d(x_L)).
Initialisation: model.init (paper | released), see tdsclip/config.py.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from tdsclip.config import ModelConfig, parse_layer_spec
from tdsclip.model import tokens
from tdsclip.model.adapters import PatchStem, TemporalConv, sme_differences
from tdsclip.model.backbone import CLIPBackbone, build_backbone
from tdsclip.model.fold import folded_norm_linear
from tdsclip.model.recompute import Knobs, recompute
from tdsclip.model.side import TDSBlock, TemporalBranch

RELEASED_INIT_DEPTH = 12
"""The released code's side blocks scale their output layers' init for 2 x 12 blocks at any depth."""


class SideInputs(NamedTuple):
    """The stems' outputs for one batch, before the first side block."""

    frames: torch.Tensor
    """Centre frames for CLIP, (B*T, 3, H, W)."""
    side: torch.Tensor
    """x_0, the side network's input tokens (B*T, h*w, d)."""
    sme_tokens: torch.Tensor | None
    """s_0 of the cross placement."""
    patch_bias: torch.Tensor | None
    """beta * SME_W(D), added to CLIP's patch embeddings (spatial placements)."""
    diffs: torch.Tensor | None
    """D, the SME differences."""
    frames_per_clip: int
    grid: tuple[int, int]


class AdditionalSMEPath(nn.Module):
    """a = GAP(BN(s + TemporalConv(s))), s = SME(D): the 'additional path' placement."""

    def __init__(self, stem: PatchStem, width: int) -> None:
        super().__init__()
        self.stem = stem
        self.temporal = TemporalConv(width)
        self.norm = nn.BatchNorm3d(width)

    def forward(self, diffs: torch.Tensor) -> torch.Tensor:
        video = self.stem(diffs)
        grid, s = tuple(video.shape[-2:]), tokens.as_tokens(video)
        return tokens.batch_norm(self.norm, s + self.temporal(s, grid), grid).mean(dim=(1, 2))


class TDSCLIP(nn.Module):
    """The frozen CLIP backbone, the stems, one TDS block per CLIP block, and the head."""

    def __init__(self, cfg: ModelConfig, backbone: CLIPBackbone) -> None:
        super().__init__()
        self.cfg, self.backbone = cfg, backbone
        d, width, layers = cfg.side_width, backbone.width, backbone.num_layers
        patch, pad = backbone.patch_size[0], cfg.stem_padding
        sme_channels = 3 * (cfg.sme_window - 1)
        placement = cfg.sme_placement if cfg.uses_sme else None

        self.rgb_stem = PatchStem(3, d, patch, pad) if cfg.sme_alpha > 0 else None
        self.sme_stem = (
            PatchStem(sme_channels, d, patch, pad) if placement in ("temporal", "spatial_temporal", "cross") else None
        )
        self.sme_spatial_stem = (
            PatchStem(sme_channels, width, patch, pad) if placement in ("spatial", "spatial_temporal") else None
        )
        self.cross = nn.ModuleList(nn.Linear(d, d) for _ in range(layers - 1)) if placement == "cross" else None
        self.additional = (
            AdditionalSMEPath(PatchStem(sme_channels, d, patch, pad), d) if placement == "additional" else None
        )

        self.proj_norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.projs = nn.ModuleList(nn.Linear(width, d) for _ in range(layers))
        if cfg.init == "paper":  # released: PyTorch's default (see ModelConfig.init)
            for proj in self.projs:
                nn.init.normal_(proj.weight, std=(2 * d) ** -0.5)
        self.pos = nn.Parameter(torch.empty(backbone.grid_size[0] * backbone.grid_size[1], d))
        nn.init.normal_(self.pos, std=0.01)

        td_layers = parse_layer_spec(cfg.td_layers, layers)
        td = dict(
            mode=cfg.td_mode,
            kernel=cfg.td_kernel,
            reduction=cfg.td_reduction,
            channel_mean=cfg.td_channel_mean,
            gate=cfg.td_gate,
            bias=cfg.td_bias,
        )

        knobs = Knobs(
            td=cfg.td_recompute, norm=cfg.norm_recompute, gelu=cfg.gelu_recompute, dwconv=cfg.dwconv_recompute
        )

        def temporal(i: int) -> TemporalBranch | None:
            if cfg.temporal == "none":
                return None
            kind = "td" if cfg.temporal == "td" and (td_layers is None or i in td_layers) else "conv3d"
            return TemporalBranch(d, kind, td, cfg.td_placement, knobs)

        init_depth = layers if cfg.init == "paper" else RELEASED_INIT_DEPTH
        self.blocks = nn.ModuleList(TDSBlock(d, init_depth, temporal(i), cfg.cls_shift, knobs) for i in range(layers))
        self.checkpoint_blocks = False
        """Recompute each side block in backward instead of keeping its activations (train.checkpoint_blocks)."""
        self.head_norm = nn.BatchNorm3d(d)
        self.fc = nn.Linear(d, cfg.num_classes)
        if cfg.init == "paper":
            nn.init.trunc_normal_(self.fc.weight, std=0.02)
            nn.init.zeros_(self.fc.bias)

    def _project(self, i: int, frozen: torch.Tensor) -> torch.Tensor:
        """Linear_i(LN_i(z_i)). With model.proj_recompute, backward keeps one CLIP-wide tensor per
        block, not two: with the CLIP frozen, z_i needs no gradient and the LayerNorm's affine is
        folded into the Linear (tdsclip/model/fold.py; also one matmul less); where z_i needs one
        (CLIP trained, SME in its patch embeddings), z_i is kept and the LayerNorm recomputed."""
        norm, proj = self.proj_norms[i], self.projs[i]
        if not self.cfg.proj_recompute or not torch.is_grad_enabled():
            return proj(norm(frozen))
        if not frozen.requires_grad:
            return folded_norm_linear(norm, proj, frozen)
        return recompute(lambda z: proj(norm(z)), frozen)

    def _windows(self, clips: torch.Tensor) -> torch.Tensor:
        m = self.cfg.sme_window
        if clips.ndim == 5 and m == 1:
            clips = clips.unsqueeze(3)
        if clips.ndim != 6 or clips.shape[1] != 3 or clips.shape[3] != m:
            raise ValueError(
                f"expected clips of shape (B, 3, T, m={m}, H, W) (model.sme_window={m}), got {tuple(clips.shape)}"
            )
        return clips

    def side_inputs(self, clips: torch.Tensor) -> SideInputs:
        """What the stems make of a batch of clips (B, 3, T, m, H, W): the placements' inputs."""
        clips = self._windows(clips)
        b, _, t, m, h, w = clips.shape
        cfg = self.cfg
        # A copy, not a view into all m frames: the RGB stem keeps its input for backward.
        centre = clips[:, :, :, m // 2].contiguous()
        diffs = sme_differences(clips) if cfg.uses_sme else None
        x = self.rgb_stem(centre) * cfg.sme_alpha if self.rgb_stem is not None else 0
        sme_tokens = None
        if self.sme_stem is not None:
            sme = self.sme_stem(diffs)
            if self.cross is not None:
                sme_tokens = tokens.video_to_tokens(sme)
            else:
                x = x + cfg.sme_beta * sme
        grid = tuple(x.shape[-2:])
        if grid != self.backbone.grid_size:
            raise ValueError(
                f"side stem grid {grid} differs from CLIP's patch grid {self.backbone.grid_size} at {h}x{w} px"
            )
        patch_bias = None
        if self.sme_spatial_stem is not None:
            patch_bias = cfg.sme_beta * tokens.video_to_tokens(self.sme_spatial_stem(diffs))
        frames = centre.transpose(1, 2).reshape(b * t, 3, h, w)
        return SideInputs(frames, tokens.video_to_tokens(x), sme_tokens, patch_bias, diffs, t, grid)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        inputs = self.side_inputs(clips)
        x, sme_tokens, t, grid, beta = (
            inputs.side,
            inputs.sme_tokens,
            inputs.frames_per_clip,
            inputs.grid,
            self.cfg.sme_beta,
        )
        for i, frozen in enumerate(self.backbone.iter_blocks(inputs.frames, inputs.patch_bias, t)):
            # One split, not two slices: backward then assembles the projection's gradient in one
            # copy, where each slice's backward fills a full-size zero tensor and a third pass adds them.
            cls, patches = self._project(i, frozen).split([1, x.shape[1]], dim=1)
            x = (x + patches).mul_(0.5)  # 0.5 * x + 0.5 * patches to the bit, in two passes, not three
            if sme_tokens is not None:
                x = x + beta * sme_tokens
            if self.checkpoint_blocks and self.training:
                x = recompute(self.blocks[i], x, cls, self.pos, t, grid, norms=self.blocks[i])
            else:
                x = self.blocks[i](x, cls, self.pos, t, grid)
            if sme_tokens is not None and i < len(self.cross):
                sme_tokens = sme_tokens + self.cross[i](x)

        features = self.head_norm(tokens.tokens_to_video(x, t, grid)).mean(dim=(2, 3, 4))
        if self.additional is not None:
            features = features + beta * self.additional(inputs.diffs)
        return self.fc(features)


def describe(cfg: ModelConfig) -> str:
    """One line naming the variant, e.g. for measurement output and run listings."""
    parts = [f"{cfg.backbone}", f"side d={cfg.side_width}"]
    if cfg.temporal == "td":
        parts.append(
            f"TD-Adapter {cfg.td_mode} k={cfg.td_kernel} r={cfg.td_reduction} {cfg.td_placement} layers={cfg.td_layers}"
        )
    else:
        parts.append({"none": "no temporal module", "conv3d": "3D conv"}[cfg.temporal])
    parts.append(
        f"SME m={cfg.sme_window} {cfg.sme_placement} alpha={cfg.sme_alpha:g} beta={cfg.sme_beta:g}"
        if cfg.uses_sme
        else "no SME"
    )
    if not cfg.cls_shift:
        parts.append("no CLS shift")
    if cfg.backbone_tuning != "frozen":
        parts.append({"st_adapter": "ST-Adapter in CLIP", "full": "CLIP fully fine-tuned"}[cfg.backbone_tuning])
    return ", ".join(parts)


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu") -> TDSCLIP:
    """TDS-CLIP (or the variant `cfg` names) on `device`; "meta" allocates no weights."""
    backbone = build_backbone(
        cfg.backbone, cfg.weights, cfg.quick_gelu, device, cfg.backbone_tuning, cfg.st_adapter_width
    )
    with torch.device(device):
        return TDSCLIP(cfg, backbone)
