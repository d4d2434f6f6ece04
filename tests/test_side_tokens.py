"""The side block on its token layout, with and without recomputation, computes the paper's maths.

Against tests/side_reference.py (the block on 5D videos with the 3D modules, as the authors' code
runs it): outputs, gradients (inputs and parameters) and BatchNorm running statistics agree within
max|a - b| <= 1e-5 x max|b| per tensor in fp32, for every temporal branch and with the recompute
knobs all on or all off.
"""

import pytest
import torch
from helpers import assert_same_maths
from side_reference import block_forward

from tdsclip.model.recompute import Knobs
from tdsclip.model.side import TDSBlock, TemporalBranch

D, FRAMES, GRID = 64, 4, (3, 3)
ON = Knobs(td=True, norm=True, gelu=True, dwconv=True)
BRANCHES = {
    "none": None,
    "conv3d": ("conv3d", "stacked", {}),
    "td_pool": ("td", "stacked", {}),
    "td_replace": ("td", "replace", {}),
    "td_conv": ("td", "stacked", {"mode": "conv"}),
    "td_direct_no_gate": ("td", "stacked", {"mode": "direct", "gate": False, "channel_mean": False}),
}


def make_block(branch: str, knobs: Knobs) -> TDSBlock:
    torch.manual_seed(0)
    spec = BRANCHES[branch]
    temporal = None
    if spec is not None:
        kind, placement, td = spec
        temporal = TemporalBranch(D, kind, dict(reduction=4, **td), placement, knobs)
    block = TDSBlock(D, 4, temporal, cls_shift=True, knobs=knobs).train()
    with torch.no_grad():  # away from the init's ones and zeros, so every parameter matters
        for name, param in block.named_parameters():
            if "norm" in name or name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
    return block


def run(block: TDSBlock, forward) -> dict[str, torch.Tensor]:
    """Output, gradients of inputs and parameters, and buffers after one forward and backward."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2 * FRAMES, GRID[0] * GRID[1], D, generator=generator, requires_grad=True)
    cls = torch.randn(2 * FRAMES, 1, D, generator=generator, requires_grad=True)
    pos = torch.randn(GRID[0] * GRID[1], D, generator=generator, requires_grad=True)
    out = forward(block, x, cls, pos, FRAMES, GRID)
    out.backward(torch.randn(out.shape, generator=generator))
    tensors = {"output": out.detach(), "grad x": x.grad, "grad cls": cls.grad, "grad pos": pos.grad}
    tensors.update({f"grad {n}": p.grad for n, p in block.named_parameters()})
    tensors.update({f"buffer {n}": b for n, b in block.named_buffers()})
    return tensors


@pytest.mark.parametrize("knobs", [ON, Knobs()], ids=["recompute", "plain"])
@pytest.mark.parametrize("branch", list(BRANCHES))
def test_token_layout_block_equals_the_5d_reference(branch, knobs):
    reference = run(make_block(branch, knobs), block_forward)
    ours = run(make_block(branch, knobs), lambda block, *args: block(*args))
    assert_same_maths(ours, reference)
    assert any(v.item() == 1 for n, v in ours.items() if n.endswith("num_batches_tracked")), "statistics updated once"


@pytest.mark.parametrize("branch", ["td_pool", "td_replace", "conv3d"])
def test_recompute_equals_the_plain_path_under_bf16_autocast(branch):
    def autocast(block, *args):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return block(*args).float()

    assert_same_maths(run(make_block(branch, ON), autocast), run(make_block(branch, Knobs()), autocast))
