"""TDS-CLIP's adapters: the patch stems, SME differences, the TD-Adapter, and ST-Adapter.

Shapes: B clips, T sparse frames, m local frames per sparse frame, d side width, W CLIP width,
p patch size, (h, w) the patch grid, n = h*w. The stems take videos (B, C, T, H, W); the side
network's features are tokens (B, T, n, C), on which the 3D ops run (tdsclip/model/tokens.py).
"""

from __future__ import annotations

import torch
from torch import nn

from tdsclip.model import tokens
from tdsclip.model.linear_after import BatchNormOf, linear_after


class PatchStem(nn.Module):
    """Conv3d with kernel (3, p, p), stride (1, p, p), padding (1, s, s), then BatchNorm3d.

    (B, C_in, T, H, W) -> (B, C_out, T, h, w): one token per CLIP patch and frame; the kernel's
    temporal extent 3 mixes each frame with its neighbours. s = model.stem_padding (1 in
    TDS-CLIP's code, offsetting the grid by one pixel from CLIP's; 0 in Side4Video's).
    """

    def __init__(self, in_channels: int, out_channels: int, patch: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, (3, patch, patch), (1, patch, patch), (1, padding, padding))
        self.norm = nn.BatchNorm3d(out_channels)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(video))


def sme_differences(clips: torch.Tensor) -> torch.Tensor:
    """Forward differences inside each SME window, concatenated on channels.

    clips (B, 3, T, m, H, W) -> (B, 3*(m-1), T, H, W) with channel 3*k + c holding
    x[k+1] - x[k] of colour c, for k = 0 .. m-2 (m = 5: [x2-x1, x3-x2, x4-x3, x5-x4]).
    """
    diffs = clips[:, :, :, 1:] - clips[:, :, :, :-1]  # (B, 3, T, m-1, H, W)
    return diffs.permute(0, 3, 1, 2, 4, 5).flatten(1, 2)  # (B, (m-1)*3, T, H, W), k major


class TDAdapter(nn.Module):
    """Temporal Difference Adapter, on the temporal branch's output x, tokens (B, T, n, d).

        f   = BN(Conv1x1x1_{d -> d/r}(x))
        D   = f - MaxPool_t^k(f)            mode 'pool'   (stride 1, same padding; D <= 0)
            = f - TConv_t^k(f)              mode 'conv'   (learnable Conv3d d/r -> d/r, kernel (k,1,1))
            = f_t - f_(t-1),  D_0 = 0       mode 'direct'
        y   = 0.5 * D + 0.5 * mean_c(D)     channel_mean on (released code); y = D when off
        g   = BN(Conv1x1x1_{d/r -> d}(y))
        out = x * (0.5 + sigmoid(g))        gate on (released code); out = x + g when off

    The two 1x1x1 convolutions have no bias, as in the released code (model.td_bias adds them).
    The ops run on the token layout (tdsclip/model/tokens.py); the modules are the 5D ones.
    """

    def __init__(
        self,
        width: int,
        mode: str = "pool",
        kernel: int = 3,
        reduction: int = 16,
        channel_mean: bool = True,
        gate: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        reduced = width // reduction
        self.mode, self.kernel, self.channel_mean, self.gate = mode, kernel, channel_mean, gate
        self.reduce = nn.Sequential(nn.Conv3d(width, reduced, 1, bias=bias), nn.BatchNorm3d(reduced))
        self.temporal_conv = (
            nn.Conv3d(reduced, reduced, (kernel, 1, 1), padding=(kernel // 2, 0, 0)) if mode == "conv" else None
        )
        self.restore = nn.Sequential(nn.Conv3d(reduced, width, 1, bias=bias), nn.BatchNorm3d(width))

    def difference(self, f: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        if self.mode == "pool":
            return f - tokens.temporal_max_pool(f, self.kernel, grid)
        if self.mode == "conv":
            return f - tokens.as_tokens(self.temporal_conv(tokens.as_video(f, grid)))
        return torch.cat([torch.zeros_like(f[:, :1]), f[:, 1:] - f[:, :-1]], dim=1)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        d = self.difference(tokens.batch_norm(self.reduce[1], tokens.pointwise(self.reduce[0], x), grid), grid)
        y = 0.5 * d + 0.5 * d.mean(dim=-1, keepdim=True) if self.channel_mean else d
        g = tokens.batch_norm(self.restore[1], tokens.pointwise(self.restore[0], y), grid)
        return x * (0.5 + torch.sigmoid(g)) if self.gate else x + g


class TemporalConv(nn.Module):
    """The '3D conv' temporal branch: BN3d -> Conv1x1x1 -> depthwise Conv(3,1,1) -> Conv1x1x1.

    On tokens (B, T, n, d) (tdsclip/model/tokens.py); the side block adds its output to x (a
    residual). Its three parts are separate so that the caller can recompute them apart.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm3d(width)
        self.convs = nn.Sequential(
            nn.Conv3d(width, width, 1),
            nn.Conv3d(width, width, (3, 1, 1), padding=(1, 0, 0), groups=width),
            nn.Conv3d(width, width, 1),
        )

    def first(self, x: torch.Tensor, grid: tuple[int, int], rerun_norm: bool = False) -> torch.Tensor:
        """BN, then the first 1x1x1 conv; rerun_norm keeps x for backward, not the BN's output
        (tdsclip/model/linear_after.py)."""
        conv = self.convs[0]
        return linear_after(BatchNormOf(self.norm, grid), x, conv.weight.flatten(1), conv.bias, rerun=rerun_norm)

    def depthwise(self, z: torch.Tensor) -> torch.Tensor:
        return tokens.temporal_depthwise(self.convs[1], z)

    def last(self, y: torch.Tensor) -> torch.Tensor:
        """The last 1x1x1 conv."""
        return tokens.pointwise(self.convs[2], y)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        return self.last(self.depthwise(self.first(x, grid)))


class STAdapter(nn.Module):
    """ST-Adapter (Pan et al. 2022) on a frozen block's patch tokens, before its attention.

        a = Linear_{W -> w}(x);  a = DWConv3d_{(3,1,1)}(a over time);  x <- x + Linear_{w -> W}(a)

    The conv and the output layer start at zero (the block starts as the frozen one); no
    activation. Gradients must flow through the frozen blocks to train it.
    """

    def __init__(self, width: int, bottleneck: int = 384) -> None:
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.conv = nn.Conv3d(bottleneck, bottleneck, (3, 1, 1), padding=(1, 0, 0), groups=bottleneck)
        self.up = nn.Linear(bottleneck, width)
        for layer in (self.conv, self.up):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, patches: torch.Tensor, frames: int, grid: tuple[int, int]) -> torch.Tensor:
        """patches (B*T, h*w, W) -> the same shape, adapted."""
        bt, n, _ = patches.shape
        a = self.down(patches)
        a = a.reshape(bt // frames, frames, grid[0], grid[1], -1).permute(0, 4, 1, 2, 3)
        a = self.conv(a).permute(0, 2, 3, 4, 1).reshape(bt, n, -1)
        return patches + self.up(a)
