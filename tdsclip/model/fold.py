"""A LayerNorm's affine folded into the Linear after it, for inputs that need no gradient.

    linear(norm(z)) = z_hat @ (W * gamma)^T + (W @ beta + b),   z_hat = (z - mean) / std

When z needs no gradient (a frozen CLIP block's output), z_hat needs none either, so backward
keeps z_hat alone (one CLIP-wide tensor, as wide as z) and runs one matmul, the folded weight's
gradient, where the plain path keeps z, the norm's statistics and its output and runs two (the
Linear's weight gradient and its input gradient, needed only for gamma's and beta's gradients).
gamma's and beta's gradients come from the folded weight's and bias's by the chain rule. Same
maths up to summation order (tests/test_recompute.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def folded_norm_linear(norm: nn.LayerNorm, linear: nn.Linear, z: torch.Tensor) -> torch.Tensor:
    """linear(norm(z)) with the norm's affine folded into the Linear (z needs no gradient)."""
    z_hat = F.layer_norm(z, norm.normalized_shape, None, None, norm.eps)
    weight = linear.weight * norm.weight
    return F.linear(z_hat, weight, torch.addmv(linear.bias, linear.weight, norm.bias))
