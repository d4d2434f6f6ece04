"""The side network's block (the TDS block) and its parts.

One side block runs after each frozen CLIP block i. Before it, the frozen block's output is
projected to the side width and fused (tdsclip/model/build.py):

    c, p = split(Linear_{W -> d}(LN(z_i)))          # projected frozen CLS and patch tokens
    x    = 0.5 * x + 0.5 * p

The block, on side tokens x (B*T, h*w, d), each step a residual:

    a. x = x + Temporal(x)      Temporal = [3D conv branch] (+ TD-Adapter), per model.temporal
    b. x = x + Attn(q = LN(x + pos), kv = LN([shift(c); x + pos]))     per frame, d/64 heads
    c. x = x + Linear_{4d -> d}(GELU(Linear_{d -> 4d}(BN(x))))

pos is one (h*w, d) positional embedding shared by all blocks (std 0.01 at init). Init follows
the released code (Side4Video's): attention and MLP weights normal with CLIP's stds, norms at
one/zero, convolutions at PyTorch defaults; no dropout, no drop path. The output layers' std is
d^-0.5 (2 L)^-0.5 with L = `num_layers`, the depth the caller passes (model.init).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tdsclip.model import tokens
from tdsclip.model.adapters import TDAdapter, TemporalConv
from tdsclip.model.linear_after import BatchNormOf, Gelu, LayerNormOf, linear_after
from tdsclip.model.recompute import Knobs, recompute, recompute_if, rerun


def shift_cls(cls: torch.Tensor, frames: int) -> torch.Tensor:
    """CLS token shift: (B*T, 1, d) -> (B*T, 1, d), the first half of the channels taken from
    frame t+1 and the second half from frame t-1, zeros where that frame does not exist."""
    bt, _, d = cls.shape
    x = cls.reshape(bt // frames, frames, d)
    half = d // 2
    out = torch.zeros_like(x)
    out[:, :-1, :half] = x[:, 1:, :half]
    out[:, 1:, half:] = x[:, :-1, half:]
    return out.reshape(bt, 1, d)


class SideAttention(nn.Module):
    """Multi-head attention whose queries are the patch tokens and whose keys and values are
    [extra token; patch tokens] (the extra token is the shifted frozen CLS)."""

    def __init__(self, width: int, num_layers: int) -> None:
        super().__init__()
        self.heads = width // 64
        self.in_proj = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)
        nn.init.normal_(self.in_proj.weight, std=width**-0.5)
        nn.init.normal_(self.out_proj.weight, std=width**-0.5 * (2 * num_layers) ** -0.5)
        nn.init.zeros_(self.in_proj.bias)
        nn.init.zeros_(self.out_proj.bias)

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """qkv = in_proj(normalised tokens), (N, 1 + n, 3d) -> (N, n, d) for the n patch queries.

        One projection of all 1 + n tokens, the extra token's query dropped: projecting the
        patch tokens' queries apart would make backward keep a copy of the sliced tokens beside
        the normalised tokens it keeps anyway (one (N, n, d) tensor per block) to save 1/(1 + n)
        of one projection. q, k and v stay views of that one tensor, which fused attention keeps
        with its output and log-sum-exp, never an (n x 1+n) attention matrix.
        """
        n_batch, n_tokens, d = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
        q, k, v = qkv.chunk(3, dim=-1)
        split = lambda t: t.reshape(n_batch, t.shape[1], self.heads, d // self.heads).transpose(1, 2)
        out = F.scaled_dot_product_attention(split(q[:, 1:]), split(k), split(v))
        return self.out_proj(out.transpose(1, 2).reshape(n_batch, n_tokens - 1, d))


class SideMLP(nn.Module):
    """BN3d pre-norm -> Linear(d, 4d) -> GELU -> Linear(4d, d), on tokens (B, T, n, d)."""

    def __init__(self, width: int, num_layers: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm3d(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)
        nn.init.normal_(self.fc1.weight, std=(2 * width) ** -0.5)
        nn.init.normal_(self.fc2.weight, std=width**-0.5 * (2 * num_layers) ** -0.5)

    def forward(self, x: torch.Tensor, grid: tuple[int, int], knobs: Knobs = Knobs()) -> torch.Tensor:
        hidden = linear_after(BatchNormOf(self.norm, grid), x, self.fc1.weight, self.fc1.bias, rerun=knobs.norm)
        return linear_after(Gelu(), hidden, self.fc2.weight, self.fc2.bias, rerun=knobs.gelu)


class TemporalBranch(nn.Module):
    """Step a of the TDS block, on tokens (B, T, n, d); its output is added to x.

    kind 'conv3d':       TemporalConv(x)                        (Side4Video's branch)
    kind 'td' stacked:   TDAdapter(TemporalConv(x))             (released TDS-CLIP code)
    kind 'td' replace:   TDAdapter(BN(x))                       (the adapter in the conv's place)

    What backward keeps, by knob (tdsclip/model/recompute.py): knobs.norm keeps the branch's input
    x, not also its BN's output; knobs.dwconv keeps the depthwise conv's input, not also its
    output; knobs.td runs the TD-Adapter and the layer that feeds it (the last 1x1x1 conv, or the
    BN) again in backward, so none of the adapter's full-width tensors (its input, the restored
    BN's input, the sigmoid and the gate) is kept, for one d x d 1x1x1 conv and the adapter's
    d/r-wide layers more. All on: backward keeps x and the first 1x1x1 conv's output, two (B, T,
    n, d) tensors where the plain path keeps seven. Same maths, same running statistics (tested).
    """

    def __init__(
        self, width: int, kind: str, td: dict | None = None, placement: str = "stacked", knobs: Knobs = Knobs()
    ) -> None:
        super().__init__()
        self.conv = TemporalConv(width) if kind == "conv3d" or placement == "stacked" else None
        self.norm = nn.BatchNorm3d(width) if self.conv is None else None
        self.td = TDAdapter(width, **td) if kind == "td" else None
        self.knobs = knobs

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        knobs, conv, td = self.knobs, self.conv, self.td
        if conv is None:  # the TD-Adapter in the conv's place
            region = lambda x: td(tokens.batch_norm(self.norm, x, grid), grid)
            return recompute_if(knobs.td, region, x, norms=self)
        z = conv.first(x, grid, rerun_norm=knobs.norm)
        conv_tail = lambda z: conv.last(conv.depthwise(z))
        if td is None:
            return recompute_if(knobs.dwconv, conv_tail, z)
        if knobs.td and knobs.dwconv:
            return rerun(lambda z: td(conv_tail(z), grid), z, self)
        if knobs.td:
            return recompute(lambda y: td(conv.last(y), grid), conv.depthwise(z), norms=td)
        return td(recompute_if(knobs.dwconv, conv_tail, z), grid)


class TDSBlock(nn.Module):
    """One side block: temporal branch, attention with the shifted frozen CLS, BN-MLP."""

    def __init__(
        self, width: int, num_layers: int, temporal: TemporalBranch | None, cls_shift: bool, knobs: Knobs = Knobs()
    ) -> None:
        super().__init__()
        self.temporal = temporal
        self.cls_shift = cls_shift
        self.knobs = knobs
        self.norm = nn.LayerNorm(width)
        self.attn = SideAttention(width, num_layers)
        self.mlp = SideMLP(width, num_layers)

    def forward(
        self, x: torch.Tensor, cls: torch.Tensor, pos: torch.Tensor, frames: int, grid: tuple[int, int]
    ) -> torch.Tensor:
        """x (B*T, h*w, d) side tokens; cls (B*T, 1, d) projected frozen CLS; pos (h*w, d)."""
        bt, n, d = x.shape
        clip_tokens = lambda x: x.reshape(bt // frames, frames, n, d)  # (B, T, n, d), a view
        if self.temporal is not None:
            x = x + self.temporal(clip_tokens(x), grid).reshape(bt, n, d)
        extra = shift_cls(cls, frames) if self.cls_shift else cls
        in_proj = self.attn.in_proj
        kv_tokens = torch.cat([extra, x + pos], dim=1)
        qkv = linear_after(LayerNormOf(self.norm), kv_tokens, in_proj.weight, in_proj.bias, rerun=self.knobs.norm)
        x = x + self.attn.attend(qkv)
        return x + self.mlp(clip_tokens(x), grid, self.knobs).reshape(bt, n, d)
