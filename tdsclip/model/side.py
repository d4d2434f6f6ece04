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

from tdsclip.model.adapters import TDAdapter, TemporalConv
from tdsclip.model.recompute import recompute


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


def tokens_to_video(x: torch.Tensor, frames: int, grid: tuple[int, int]) -> torch.Tensor:
    """(B*T, h*w, d) -> (B, d, T, h, w)."""
    bt, _, d = x.shape
    return x.reshape(bt // frames, frames, grid[0], grid[1], d).permute(0, 4, 1, 2, 3)


def video_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, d, T, h, w) -> (B*T, h*w, d)."""
    b, d, t, h, w = x.shape
    return x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, d)


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

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (N, 1 + n, d), already normalised -> (N, n, d) for the n patch queries.

        One projection of all 1 + n tokens, the extra token's query dropped: projecting the
        patch tokens' queries apart would make backward keep a copy of the sliced tokens beside
        the normalised tokens it keeps anyway (one (N, n, d) tensor per block) to save 1/(1 + n)
        of one projection. q, k and v stay views of that one tensor, which fused attention keeps
        with its output and log-sum-exp, never an (n x 1+n) attention matrix.
        """
        n_batch, n_tokens, d = tokens.shape
        q, k, v = self.in_proj(tokens).chunk(3, dim=-1)
        split = lambda t: t.reshape(n_batch, t.shape[1], self.heads, d // self.heads).transpose(1, 2)
        out = F.scaled_dot_product_attention(split(q[:, 1:]), split(k), split(v))
        return self.out_proj(out.transpose(1, 2).reshape(n_batch, n_tokens - 1, d))


class SideMLP(nn.Module):
    """BN3d pre-norm -> Linear(d, 4d) -> GELU -> Linear(4d, d)."""

    def __init__(self, width: int, num_layers: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm3d(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)
        nn.init.normal_(self.fc1.weight, std=(2 * width) ** -0.5)
        nn.init.normal_(self.fc2.weight, std=width**-0.5 * (2 * num_layers) ** -0.5)

    def forward(self, x: torch.Tensor, frames: int, grid: tuple[int, int]) -> torch.Tensor:
        normed = video_to_tokens(self.norm(tokens_to_video(x, frames, grid)))
        return self.fc2(F.gelu(self.fc1(normed)))


class TemporalBranch(nn.Module):
    """Step a of the TDS block, on (B, d, T, h, w); its output is added to x.

    kind 'conv3d':       TemporalConv(x)                        (Side4Video's branch)
    kind 'td' stacked:   TDAdapter(TemporalConv(x))             (released TDS-CLIP code)
    kind 'td' replace:   TDAdapter(BN(x))                       (the adapter in the conv's place)

    With `recompute` (model.td_recompute) the TD-Adapter and the layer that feeds it (the
    branch's last 1x1x1 conv, or the BN) run again in backward instead of keeping their outputs:
    that layer's input is all backward keeps, and the plain path keeps it too. The adapter's
    full-width tensors (its input, the restored BN's input, the sigmoid and the gate) are not
    kept; recomputing costs one d x d 1x1x1 conv and the adapter's d/r-wide layers. Same maths,
    same running statistics (tested).
    """

    def __init__(
        self, width: int, kind: str, td: dict | None = None, placement: str = "stacked", recompute: bool = False
    ) -> None:
        super().__init__()
        self.conv = TemporalConv(width) if kind == "conv3d" or placement == "stacked" else None
        self.norm = nn.BatchNorm3d(width) if self.conv is None else None
        self.td = TDAdapter(width, **td) if kind == "td" else None
        self.recompute = recompute

    def _adapted(self, y: torch.Tensor) -> torch.Tensor:
        """The TD-Adapter with the layer before it, from that layer's input."""
        return self.td(self.conv.last(y) if self.conv is not None else self.norm(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.td is None:
            return self.conv(x)
        y = self.conv.features(x) if self.conv is not None else x
        return recompute(self._adapted, y, norms=self) if self.recompute else self._adapted(y)


class TDSBlock(nn.Module):
    """One side block: temporal branch, attention with the shifted frozen CLS, BN-MLP."""

    def __init__(self, width: int, num_layers: int, temporal: TemporalBranch | None, cls_shift: bool) -> None:
        super().__init__()
        self.temporal = temporal
        self.cls_shift = cls_shift
        self.norm = nn.LayerNorm(width)
        self.attn = SideAttention(width, num_layers)
        self.mlp = SideMLP(width, num_layers)

    def forward(
        self, x: torch.Tensor, cls: torch.Tensor, pos: torch.Tensor, frames: int, grid: tuple[int, int]
    ) -> torch.Tensor:
        """x (B*T, h*w, d) side tokens; cls (B*T, 1, d) projected frozen CLS; pos (h*w, d)."""
        if self.temporal is not None:
            x = x + video_to_tokens(self.temporal(tokens_to_video(x, frames, grid)))
        extra = shift_cls(cls, frames) if self.cls_shift else cls
        x = x + self.attn(self.norm(torch.cat([extra, x + pos], dim=1)))
        return x + self.mlp(x, frames, grid)
