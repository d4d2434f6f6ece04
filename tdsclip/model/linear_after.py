"""Linear(f(x)) that keeps x for backward, not f(x): f (a norm or GELU) is rerun in backward.

    y = linear_after(BatchNormOf(norm, grid), x, fc.weight, fc.bias)     # fc(norm(x))

The side network feeds every norm and its MLP's GELU straight into a Linear. The Linear's
weight gradient needs f(x), and f's backward needs x, so the plain path keeps both; keeping x
alone and rerunning f in backward saves one tensor per pair. torch.utils.checkpoint does the
same for any region, at a cost that is paid per call whatever the tensors' size (saved-tensor
hooks, frames, a rerun driven from Python op by op): on a 2-core CPU the recomputation knobs cost
a model of this structure with tiny widths 4 ms per side block that way (1 ms now), which a B/16
profile does not show op by op. Here the pair's backward is written out with the ops
autograd runs for it (addmm's, and the norm's or GELU's own backward kernel), so the results
are those of the plain path, and f's rerun is one kernel call.

f's forward is the module's own call, so a BatchNorm's running statistics are updated once, in
forward; the rerun computes the same batch statistics again and updates nothing.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from tdsclip.model import tokens
from tdsclip.model.recompute import autocast_of_forward


class Prefix(Protocol):
    """The f in Linear(f(x)): its forward, a side-effect-free rerun, and its backward."""

    params: tuple[torch.Tensor | None, ...]
    """f's own tensors that may need gradients (a norm's weight and bias), in backward's order."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def rerun(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """f(x) exactly as forward computed it, and what backward needs besides x."""

    def backward(
        self, grad: torch.Tensor, x: torch.Tensor, state: tuple[torch.Tensor, ...], needs: tuple[bool, ...]
    ) -> tuple[torch.Tensor | None, ...]:
        """Gradients for (x, *params), those `needs` marks False may be None."""


class BatchNormOf:
    """A BatchNorm3d applied to tokens (B, T, n, C) on their channels-last video view."""

    def __init__(self, norm: nn.BatchNorm3d, grid: tuple[int, int]) -> None:
        self.norm, self.grid = norm, grid
        self.params = (norm.weight, norm.bias)
        # Batch statistics in training or without running statistics, as F.batch_norm decides.
        self.batch_stats = norm.training or norm.running_mean is None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return tokens.batch_norm(self.norm, x, self.grid)

    def _running(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return (None, None) if self.batch_stats else (self.norm.running_mean, self.norm.running_var)

    def rerun(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        norm = self.norm
        out, mean, invstd = torch.ops.aten.native_batch_norm(
            tokens.as_video(x, self.grid), norm.weight, norm.bias, *self._running(), self.batch_stats, 0.0, norm.eps
        )
        return tokens.as_tokens(out), (mean, invstd)

    def backward(self, grad, x, state, needs):
        mean, invstd = state
        grad_video, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            tokens.as_video(grad, self.grid),
            tokens.as_video(x, self.grid),
            self.norm.weight,
            *self._running(),
            mean,
            invstd,
            self.batch_stats,
            self.norm.eps,
            list(needs),
        )
        return (tokens.as_tokens(grad_video) if grad_video is not None else None, grad_weight, grad_bias)


class LayerNormOf:
    """A LayerNorm over the last dimension."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        self.norm = norm
        self.params = (norm.weight, norm.bias)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)

    def rerun(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        norm = self.norm
        out, mean, rstd = torch.ops.aten.native_layer_norm(
            x, list(norm.normalized_shape), norm.weight, norm.bias, norm.eps
        )
        return out, (mean, rstd)

    def backward(self, grad, x, state, needs):
        norm = self.norm
        mean, rstd = state
        return torch.ops.aten.native_layer_norm_backward(
            grad, x, list(norm.normalized_shape), mean, rstd, norm.weight, norm.bias, list(needs)
        )


class Gelu:
    """The exact (erf) GELU."""

    params: tuple[torch.Tensor | None, ...] = ()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)

    def rerun(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        return F.gelu(x), ()

    def backward(self, grad, x, state, needs):
        return (torch.ops.aten.gelu_backward(grad, x) if needs[0] else None,)


class _LinearAfter(torch.autograd.Function):
    @staticmethod
    def forward(ctx, prefix: Prefix, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *params):
        ctx.prefix = prefix
        ctx.autocast = autocast_of_forward(x.device)  # the plain path's graph would be under it too
        ctx.save_for_backward(x, weight)
        # Detached: hooks that follow module inputs needing gradients (FlopCounterMode's module
        # tracker) must not see x inside this no-grad forward.
        return tokens.linear(prefix(x.detach()), weight, bias)

    @staticmethod
    @once_differentiable  # a clear error for double backward, which these reruns do not give
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        with ctx.autocast:
            f_x, state = ctx.prefix.rerun(x)
            grad_2d = grad.reshape(-1, grad.shape[-1])
            grad_weight = grad_2d.t().mm(f_x.reshape(-1, f_x.shape[-1])) if needs[2] else None
            grad_bias = grad_2d.sum(0) if needs[3] else None
            grads = (None,) * (1 + len(needs[4:]))
            if needs[1] or any(needs[4:]):
                # Under autocast the product is in the lower precision; f's gradient is in f_x's.
                grad_f = grad_2d.mm(weight).view(f_x.shape).to(f_x.dtype)
                grads = ctx.prefix.backward(grad_f, x, state, (needs[1], *needs[4:]))
        return (None, grads[0], grad_weight, grad_bias, *grads[1:])


def linear_after(
    prefix: Prefix, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, rerun: bool = True
) -> torch.Tensor:
    """Linear(prefix(x)) on tokens (..., C); with `rerun`, backward keeps x, not prefix(x).

    The plain call (rerun False, no grad, or under torch.compile, which traces the plain maths)."""
    if not rerun or not torch.is_grad_enabled() or torch.compiler.is_compiling():
        return tokens.linear(prefix(x), weight, bias)
    return _LinearAfter.apply(prefix, x, weight, bias, *prefix.params)
