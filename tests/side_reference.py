"""The side block as the paper writes it: 3D ops on (B, d, T, h, w) videos, nothing recomputed.

The reference the token-layout side network (tdsclip/model/side.py, tokens.py) is tested against:
the layout and the model.*_recompute knobs must not change the maths. Written the way the authors'
code computes it (Conv3d, BatchNorm3d, MaxPool3d on contiguous 5D tensors). Modules are
parameter-for-parameter the library's, so one state dict loads into both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tdsclip.model.side import TDSBlock, shift_cls


def to_video(x: torch.Tensor, frames: int, grid: tuple[int, int]) -> torch.Tensor:
    """(B*T, n, d) -> contiguous (B, d, T, h, w)."""
    bt, _, d = x.shape
    return x.reshape(bt // frames, frames, grid[0], grid[1], d).permute(0, 4, 1, 2, 3).contiguous()


def to_tokens(video: torch.Tensor) -> torch.Tensor:
    """(B, d, T, h, w) -> contiguous (B*T, n, d)."""
    b, d, t, h, w = video.shape
    return video.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, d).contiguous()


def td_adapter(td: nn.Module, x: torch.Tensor) -> torch.Tensor:
    f = td.reduce(x)
    if td.mode == "pool":
        diff = f - F.max_pool3d(f, (td.kernel, 1, 1), stride=1, padding=(td.kernel // 2, 0, 0))
    elif td.mode == "conv":
        diff = f - td.temporal_conv(f)
    else:
        diff = torch.cat([torch.zeros_like(f[:, :, :1]), f[:, :, 1:] - f[:, :, :-1]], dim=2)
    y = 0.5 * diff + 0.5 * diff.mean(dim=1, keepdim=True) if td.channel_mean else diff
    g = td.restore(y)
    return x * (0.5 + torch.sigmoid(g)) if td.gate else x + g


def temporal_branch(branch: nn.Module, video: torch.Tensor) -> torch.Tensor:
    if branch.conv is None:
        return td_adapter(branch.td, branch.norm(video))
    y = branch.conv.convs(branch.conv.norm(video))
    return y if branch.td is None else td_adapter(branch.td, y)


def block_forward(
    block: TDSBlock, x: torch.Tensor, cls: torch.Tensor, pos: torch.Tensor, frames: int, grid: tuple[int, int]
) -> torch.Tensor:
    """What `block(x, cls, pos, frames, grid)` computes, on 5D videos with the modules' 5D ops."""
    if block.temporal is not None:
        x = x + to_tokens(temporal_branch(block.temporal, to_video(x, frames, grid)))
    extra = shift_cls(cls, frames) if block.cls_shift else cls
    tokens = block.norm(torch.cat([extra, x + pos], dim=1))
    n_batch, n_tokens, d = tokens.shape
    q, k, v = block.attn.in_proj(tokens).chunk(3, dim=-1)
    heads = block.attn.heads
    split = lambda t: t.reshape(n_batch, t.shape[1], heads, d // heads).transpose(1, 2)
    attended = F.scaled_dot_product_attention(split(q[:, 1:]), split(k), split(v))
    x = x + block.attn.out_proj(attended.transpose(1, 2).reshape(n_batch, n_tokens - 1, d))
    mlp = block.mlp
    normed = to_tokens(mlp.norm(to_video(x, frames, grid)))
    return x + mlp.fc2(F.gelu(mlp.fc1(normed)))
