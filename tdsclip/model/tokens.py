"""The side network's video ops on its own token layout, so no op copies between layouts.

Side features live as tokens (B, T, n, C), n = h*w patches, channels last in memory. The ops the
paper writes on (B, C, T, h, w) videos run on that layout without a permuted copy:

    BatchNorm3d           on the channels-last (B, C, T, h, w) view of the tokens (a view, no copy)
    Conv3d 1x1x1          a Linear with the conv's weight viewed (C_out, C_in)
    depthwise Conv (3,1,1) a depthwise Conv2d (3, 1) on the (B, C, T, n) view
    MaxPool (k,1,1)       on the channels-last view

Each equals the 5D op up to summation order (tests/test_side_tokens.py); parameters and state
dicts are the modules' own, so checkpoints and released weights load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def as_video(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Tokens (B, T, n, C) -> the (B, C, T, h, w) view of the same memory (channels-last 3D)."""
    b, t, _, c = x.shape
    return x.reshape(b, t, grid[0], grid[1], c).permute(0, 4, 1, 2, 3)


def as_tokens(video: torch.Tensor) -> torch.Tensor:
    """(B, C, T, h, w) -> tokens (B, T, n, C): a view when the video is channels-last, else a copy.

    Always contiguous tokens: a reshape alone would return a channels-first view of a
    (1, C, T, h, w) video (a stem's output at one clip), and every op after it, the residual
    stream's adds, norms and matmuls, would then run on transposed memory."""
    b, c, t, h, w = video.shape
    return video.permute(0, 2, 3, 4, 1).reshape(b, t, h * w, c).contiguous()


def tokens_to_video(x: torch.Tensor, frames: int, grid: tuple[int, int]) -> torch.Tensor:
    """Frame tokens (B*T, n, C), the side blocks' layout -> the (B, C, T, h, w) view."""
    bt, n, c = x.shape
    return as_video(x.reshape(bt // frames, frames, n, c), grid)


def video_to_tokens(video: torch.Tensor) -> torch.Tensor:
    """(B, C, T, h, w) -> frame tokens (B*T, n, C), the side blocks' layout."""
    return as_tokens(video).flatten(0, 1)


def batch_norm(norm: nn.Module, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A BatchNorm3d (its statistics over B, T, h, w per channel) applied to tokens (B, T, n, C)."""
    return as_tokens(norm(as_video(x, grid)))


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear on tokens of any rank (..., C_in) -> (..., C_out), as one matrix product.

    F.linear folds only 2D and 3D inputs into one addmm; on (B, T, n, C) tokens it runs a matmul
    and then adds the bias in a second pass over the output, one more read and write of a
    (B*T*n, C_out) tensor per layer. Flattening first (a view: the side network's tokens are
    contiguous) gives the bias to the matrix product."""
    return F.linear(x.flatten(0, -2), weight, bias).unflatten(0, x.shape[:-1])


def pointwise(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1x1 Conv3d applied to tokens (..., C_in) -> (..., C_out)."""
    return linear(x, conv.weight.flatten(1), conv.bias)


def temporal_depthwise(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """A depthwise Conv3d with kernel (3, 1, 1) and padding (1, 0, 0) applied to tokens (B, T, n, C),
    as the depthwise 2D conv it is on the (B, C, T, n) view (channels-last, no copy in): one
    kernel, about 3x faster than three shifted multiply-adds on a 2-core CPU, and counted as a
    convolution."""
    c = conv.weight.shape[0]
    y = F.conv2d(x.permute(0, 3, 1, 2), conv.weight.view(c, 1, 3, 1), conv.bias, padding=(1, 0), groups=c)
    return y.permute(0, 2, 3, 1).contiguous()


def temporal_max_pool(x: torch.Tensor, kernel: int, grid: tuple[int, int]) -> torch.Tensor:
    """MaxPool3d with kernel (k, 1, 1), stride 1 and padding (k // 2, 0, 0) on tokens (B, T, n, C)."""
    return as_tokens(F.max_pool3d(as_video(x, grid), (kernel, 1, 1), stride=1, padding=(kernel // 2, 0, 0)))
