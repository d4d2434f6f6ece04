"""Linear(f(x)) with f rerun in backward (tdsclip/model/linear_after.py) is the plain Linear(f(x)).

For each f the side network uses (BatchNorm3d on tokens, in training and in eval mode, LayerNorm,
GELU): output, gradients of x, the Linear's and f's parameters, and running statistics equal the
plain composition's; what backward keeps is x, not f(x); fp32 and bf16 autocast.
"""

import pytest
import torch
from helpers import assert_same_maths
from torch import nn

from tdsclip.model import tokens
from tdsclip.model.linear_after import BatchNormOf, Gelu, LayerNormOf, linear_after
from tdsclip.model.recompute import Knobs
from tdsclip.model.side import SideMLP

C_IN, C_OUT, GRID = 24, 40, (3, 3)
SHAPE = (2, 4, GRID[0] * GRID[1], C_IN)  # tokens (B, T, n, C)


def make(kind: str, training: bool = True):
    """(prefix, its module or None, the Linear) with weights away from the init's ones and zeros."""
    torch.manual_seed(0)
    module = {"batch_norm": nn.BatchNorm3d(C_IN), "layer_norm": nn.LayerNorm(C_IN), "gelu": None}[kind]
    if module is not None:
        with torch.no_grad():
            for param in module.parameters():
                param.add_(0.3 * torch.randn_like(param))
            if kind == "batch_norm":
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
        module.train(training)
    prefix = {"batch_norm": lambda: BatchNormOf(module, GRID), "layer_norm": lambda: LayerNormOf(module)}.get(
        kind, Gelu
    )()
    return prefix, module, nn.Linear(C_IN, C_OUT)


def step(kind: str, rerun: bool, training: bool = True, x_grad: bool = True, autocast: bool = False):
    prefix, module, linear = make(kind, training)
    generator = torch.Generator().manual_seed(1)
    x = (torch.randn(SHAPE, generator=generator) * 2 + 0.5).requires_grad_(x_grad)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = linear_after(prefix, x, linear.weight, linear.bias, rerun=rerun)
    out.float().backward(torch.randn(out.shape, generator=generator))
    tensors = {"output": out.detach().float(), "grad weight": linear.weight.grad, "grad bias": linear.bias.grad}
    if x_grad:
        tensors["grad x"] = x.grad
    if module is not None:
        tensors.update({f"grad {n}": p.grad for n, p in module.named_parameters()})
        tensors.update({f"buffer {n}": b.float() for n, b in module.named_buffers()})
    return tensors


@pytest.mark.parametrize(
    "kind, training", [("batch_norm", True), ("batch_norm", False), ("layer_norm", True), ("gelu", True)]
)
@pytest.mark.parametrize("x_grad", [True, False], ids=["x needs grad", "x needs none"])
def test_rerunning_f_in_backward_gives_the_plain_results(kind, training, x_grad):
    assert_same_maths(step(kind, True, training, x_grad), step(kind, False, training, x_grad))


@pytest.mark.parametrize("kind", ["batch_norm", "layer_norm", "gelu"])
def test_under_bf16_autocast_too(kind):
    got, want = step(kind, True, autocast=True), step(kind, False, autocast=True)
    assert got.keys() == want.keys()
    for name in want:  # the same bf16 products in the same order: equal, not merely close
        assert torch.equal(got[name], want[name]), name


def test_running_statistics_are_updated_once():
    prefix, norm, linear = make("batch_norm")
    before = norm.running_mean.clone()
    out = linear_after(prefix, torch.randn(SHAPE, requires_grad=True), linear.weight, linear.bias)
    after_forward = norm.running_mean.clone()
    out.sum().backward()
    assert not torch.equal(after_forward, before)
    assert torch.equal(norm.running_mean, after_forward), "backward's rerun moved the running mean"
    assert norm.num_batches_tracked.item() == 1


def test_backward_keeps_x_not_f_of_x():
    prefix, _, linear = make("batch_norm")
    x = torch.randn(SHAPE, requires_grad=True)
    kept: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        linear_after(prefix, x, linear.weight, linear.bias)
    assert [t for t in kept if t is not linear.weight] == [x]


def test_the_mlp_keeps_its_norm_input_and_gelu_input_alone():
    """SideMLP with the norm and GELU knobs: for its two Linears backward keeps x and h = fc1(BN(x))."""
    torch.manual_seed(0)
    mlp = SideMLP(C_IN, 2).train()
    x = torch.randn(SHAPE, requires_grad=True)
    params = {p.data_ptr() for p in mlp.parameters()}
    kept: list[torch.Size] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        mlp(x, GRID, Knobs(norm=True, gelu=True))
    assert [t.shape for t in kept if t.data_ptr() not in params] == [SHAPE, (*SHAPE[:-1], 4 * C_IN)]


def test_tokens_from_a_one_clip_video_are_contiguous():
    """A stem's (1, C, T, h, w) output became channels-first tokens: the residual stream's adds,
    norms and matmuls then ran on transposed memory (about 3% of a B/16 training step)."""
    video = torch.randn(1, C_IN, 4, *GRID)
    side_tokens = tokens.video_to_tokens(video)
    assert side_tokens.is_contiguous()
    assert torch.equal(side_tokens, video.permute(0, 2, 3, 4, 1).reshape(4, GRID[0] * GRID[1], C_IN))
    channels_last = video.contiguous(memory_format=torch.channels_last_3d)
    assert tokens.as_tokens(channels_last).data_ptr() == channels_last.data_ptr(), "no copy when channels-last"


def test_plain_call_without_grad_or_knob_is_the_composition():
    prefix, _, linear = make("layer_norm")
    x = torch.randn(SHAPE)
    want = linear(prefix(x))
    with torch.no_grad():
        assert torch.allclose(linear_after(prefix, x, linear.weight, linear.bias), want, atol=1e-6)
    assert torch.allclose(linear_after(prefix, x, linear.weight, linear.bias, rerun=False), want, atol=1e-6)
