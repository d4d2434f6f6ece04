"""Recomputation knobs (the model.*_recompute keys): the same maths and statistics, less kept for backward."""

import pytest
import torch
from helpers import assert_same_maths

from benchmarks.variants import VARIANTS
from tdsclip.config import RECOMPUTE_KNOBS, RunConfig, apply_overrides
from tdsclip.measure import measure
from tdsclip.model.build import build_model

TINY = [
    "model.backbone=tdsclip-tiny",
    "data.input_size=64",
    "model.side_width=64",
    "model.td_reduction=4",
    "model.num_classes=6",
]


def train_step(overrides: list[str], checkpoint_blocks: bool, dtype: torch.dtype = torch.float32) -> dict:
    """Output, gradients ("grad <name>") and buffers ("buffer <name>") after one forward and
    backward of a freshly seeded tiny model in `dtype`."""
    cfg = apply_overrides(RunConfig(), TINY + overrides)
    torch.manual_seed(0)
    model = build_model(cfg.model).train().to(dtype)
    model.checkpoint_blocks = checkpoint_blocks
    clips = torch.randn(2, 3, 4, cfg.model.sme_window, 64, 64, generator=torch.Generator().manual_seed(1))
    logits = model(clips.to(dtype))
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 4])).backward()
    tensors = {"output": logits.detach()}
    tensors.update({f"grad {n}": p.grad for n, p in model.named_parameters() if p.requires_grad})
    tensors.update({f"buffer {n}": b for n, b in model.named_buffers()})
    return tensors


VARIANT_OVERRIDES = {name: list(variant.overrides) for name, variant in VARIANTS.items()} | {
    "td_conv_layer1": ["model.td_mode=conv", "model.td_layers=1"]
}
"""Every variant the benchmarks measure, and the TD-Adapter's learnable-conv mode on one layer."""


@pytest.mark.parametrize("overrides", list(VARIANT_OVERRIDES.values()), ids=list(VARIANT_OVERRIDES))
@pytest.mark.parametrize("checkpoint_blocks", [False, True])
def test_recompute_gives_the_same_outputs_gradients_and_running_statistics(overrides, checkpoint_blocks):
    plain_overrides = overrides + [f"model.{k}=false" for k in RECOMPUTE_KNOBS]
    plain = train_step(plain_overrides, checkpoint_blocks)
    exact = train_step(plain_overrides, checkpoint_blocks, torch.float64)
    recomputed = train_step(overrides + [f"model.{k}=true" for k in RECOMPUTE_KNOBS], checkpoint_blocks)
    # outputs, gradients, and BatchNorm statistics updated once, not again when recomputed
    assert_same_maths(recomputed, plain, exact)
    assert all(b.item() == 1 for n, b in recomputed.items() if n.endswith("num_batches_tracked"))


def test_each_knob_keeps_less_for_backward_and_all_keep_at_most_0_6_of_the_plain_path():
    """B/16, 8 frames, one clip, counted on the meta device (deterministic, not timed)."""

    def saved(*overrides: str) -> int:
        return measure(apply_overrides(RunConfig(), list(overrides)), cuda=False)["saved_activation_bytes"]

    recomputed = saved()
    plain = saved(*(f"model.{knob}=false" for knob in RECOMPUTE_KNOBS))
    for knob in RECOMPUTE_KNOBS:
        assert saved(f"model.{knob}=false") > recomputed, knob
    assert recomputed <= 0.60 * plain, (recomputed, plain)
    tokens = 8 * 14 * 14
    # per block, the GELU output (4d wide) and the CLIP-wide LayerNorm output with its mean and 1/std
    assert saved("model.gelu_recompute=false") - recomputed == 12 * tokens * 4 * 320 * 4
    assert saved("model.proj_recompute=false") - recomputed == 12 * 8 * 197 * (768 + 2) * 4
    # the TD-Adapter adds nothing kept to the 3D conv branch: both keep the branch's input and its first conv's output
    assert saved("model.sme_window=1") == saved("model.sme_window=1", "model.temporal=conv3d")


def test_the_projection_of_a_frozen_block_runs_one_matmul_less_in_backward():
    """With model.proj_recompute, the LayerNorm's affine is folded into the projection, so backward
    computes the folded weight's gradient alone, not also the gradient of the LayerNorm's output
    (B/16, 8 frames, one clip, counted on the meta device)."""
    from benchmarks.breakdown import meta_macs

    def step_macs(*overrides: str) -> float:
        return sum(meta_macs(apply_overrides(RunConfig(), ["model.weights=random", *overrides]), 8, 1)[1].values())

    per_block = 8 * 197 * 768 * 320  # (T * (1 + h*w)) tokens x CLIP width x side width
    assert step_macs("model.proj_recompute=false") - step_macs() == 12 * per_block


def test_torch_compile_runs_the_plain_path_with_the_same_result():
    """torch.compile rejects the checkpoint context that keeps BatchNorm statistics exact, so
    compiled code takes the plain path (train.compile with the default knobs and checkpoint_blocks)."""
    eager = train_step([], checkpoint_blocks=True)
    cfg = apply_overrides(RunConfig(), TINY)
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    model.checkpoint_blocks = True
    clips = torch.randn(2, 3, 4, 5, 64, 64, generator=torch.Generator().manual_seed(1))
    logits = torch.compile(model, backend="eager")(clips)
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 4])).backward()
    torch.testing.assert_close(logits.detach(), eager["output"], rtol=1e-6, atol=1e-6)
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(param.grad, eager[f"grad {name}"], rtol=1e-5, atol=1e-6, msg=name)
