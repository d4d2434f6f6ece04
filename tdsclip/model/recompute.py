"""Recompute a region's activations in backward instead of keeping them, exactly.

    y = recompute(region, x)        # region(x), keeping only x for backward
    y = rerun(region, x, module)    # the same, for a region whose every activation backward needs

torch.utils.checkpoint (non-reentrant) runs the region without saving its intermediate tensors
and runs it again in backward, stopping once backward has what it needs; its cost per call
(hooks on every saved tensor, the rerun driven op by op) is what rerun() spares where there is
nothing to stop early for. A norm or GELU before a Linear has its own, leaner function
(tdsclip/model/linear_after.py). Two things make the second run differ from the first unless
handled: BatchNorm in training mode would update its running statistics a second time (momentum
0 keeps them, and the batch counter is put back), and random draws would differ (the regions used
here draw none, so the RNG state is not saved, which also spares its copy on every call).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

# Every trainable BatchNorm of torch.nn, by public names (tests/test_private_api.py checks the list).
BATCH_NORMS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LazyBatchNorm1d,
    nn.LazyBatchNorm2d,
    nn.LazyBatchNorm3d,
    nn.SyncBatchNorm,
)


@contextmanager
def frozen_norm_statistics(module: nn.Module) -> Iterator[None]:
    """While active, BatchNorm layers in `module` normalise with batch statistics as usual but
    leave their running statistics and batch counter as they were."""
    norms = [m for m in module.modules() if isinstance(m, BATCH_NORMS)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in norms]
    for norm in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, (momentum, tracked) in zip(norms, saved):
            norm.momentum = momentum
            if tracked is not None:
                norm.num_batches_tracked.copy_(tracked)


def _contexts(module: nn.Module | None) -> tuple[object, object]:
    return nullcontext(), frozen_norm_statistics(module) if module is not None else nullcontext()


def recompute(region: Callable[..., torch.Tensor], *args: object, norms: nn.Module | None = None) -> torch.Tensor:
    """region(*args), its activations recomputed in backward; `norms` holds the region's
    BatchNorm layers, if any (their statistics are updated once, in the first run).

    A plain call without grad, and under torch.compile, which rejects the context that keeps
    BatchNorm statistics exact (compiled code keeps the region's activations instead)."""
    if not torch.is_grad_enabled() or torch.compiler.is_compiling():
        return region(*args)
    return checkpoint(
        region, *args, use_reentrant=False, preserve_rng_state=False, context_fn=partial(_contexts, norms)
    )


def autocast_of_forward(device: torch.device) -> AbstractContextManager:
    """The autocast state a forward runs under, to enter again where its backward reruns it."""
    kind = device.type
    on = torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind)
    return torch.autocast(kind, torch.get_autocast_dtype(kind)) if on else nullcontext()


class _Rerun(torch.autograd.Function):
    @staticmethod
    def forward(ctx, region, module, x, *params):
        ctx.region, ctx.module, ctx.autocast = region, module, autocast_of_forward(x.device)
        ctx.save_for_backward(x)
        return region(x.detach())

    @staticmethod
    @once_differentiable  # a clear error for double backward, which these reruns do not give
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        needs = ctx.needs_input_grad
        params = [p for p, need in zip(ctx.module.parameters(), needs[3:]) if need]
        with torch.enable_grad(), ctx.autocast, frozen_norm_statistics(ctx.module):
            x = x.detach().requires_grad_(needs[2])
            out = ctx.region(x)
        inputs = ([x] if needs[2] else []) + params
        found = iter(torch.autograd.grad(out, inputs, grad, allow_unused=True))
        grad_x = next(found) if needs[2] else None
        return (None, None, grad_x, *(next(found) if need else None for need in needs[3:]))


def rerun(region: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """region(x), keeping only x for backward, which reruns the region whole; `module` holds
    every parameter and BatchNorm the region uses (others it holds get no gradient from here).

    Leaner than recompute() where all of a region's activations are needed in backward (no
    early stop to gain): one autograd node, one nested backward, no per-tensor hooks."""
    if not torch.is_grad_enabled() or torch.compiler.is_compiling():
        return region(x)
    return _Rerun.apply(region, module, x, *module.parameters())


def recompute_if(on: bool, region: Callable[..., torch.Tensor], *args: object, norms: nn.Module | None = None):
    """recompute(region, *args) when `on`, else region(*args) (the plain path)."""
    return recompute(region, *args, norms=norms) if on else region(*args)


@dataclass(frozen=True)
class Knobs:
    """What the side network recomputes in backward (the model.*_recompute keys; all exact).

    A norm or GELU recomputed for the Linear after it reruns the norm or GELU, never the
    Linear's matmul (tdsclip/model/linear_after.py); regions rerun by checkpoint stop at their
    last saved input (early stop)."""

    td: bool = False
    """The TD-Adapter and the layer feeding it, from that layer's input (model.td_recompute)."""
    norm: bool = False
    """Norm outputs feeding a Linear or 1x1x1 conv: the MLP's BN, the attention's LN, the 3D conv
    branch's BN (model.norm_recompute)."""
    gelu: bool = False
    """The MLP's GELU output, for its second Linear (model.gelu_recompute)."""
    dwconv: bool = False
    """The depthwise temporal conv's output, for the 1x1x1 conv after it (model.dwconv_recompute)."""
