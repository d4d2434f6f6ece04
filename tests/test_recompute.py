"""Recomputation knobs (the model.*_recompute keys): the same maths and statistics, less kept for backward."""

import pytest
import torch

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


def train_step(overrides: list[str], checkpoint_blocks: bool) -> tuple[torch.Tensor, dict, dict]:
    """Logits, gradients and buffers after one fp32 forward and backward of a freshly seeded tiny model."""
    cfg = apply_overrides(RunConfig(), TINY + overrides)
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    model.checkpoint_blocks = checkpoint_blocks
    clips = torch.randn(2, 3, 4, cfg.model.sme_window, 64, 64, generator=torch.Generator().manual_seed(1))
    logits = model(clips)
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 4])).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return logits.detach(), grads, {n: b.clone() for n, b in model.named_buffers()}


VARIANT_OVERRIDES = {name: list(variant.overrides) for name, variant in VARIANTS.items()} | {
    "td_conv_layer1": ["model.td_mode=conv", "model.td_layers=1"]
}
"""Every variant the benchmarks measure, and the TD-Adapter's learnable-conv mode on one layer."""


@pytest.mark.parametrize("overrides", list(VARIANT_OVERRIDES.values()), ids=list(VARIANT_OVERRIDES))
@pytest.mark.parametrize("checkpoint_blocks", [False, True])
def test_recompute_gives_the_same_outputs_gradients_and_running_statistics(overrides, checkpoint_blocks):
    plain = train_step(overrides + [f"model.{k}=false" for k in RECOMPUTE_KNOBS], checkpoint_blocks)
    recomputed = train_step(overrides + [f"model.{k}=true" for k in RECOMPUTE_KNOBS], checkpoint_blocks)
    torch.testing.assert_close(recomputed[0], plain[0], rtol=0, atol=0)
    assert recomputed[1].keys() == plain[1].keys()
    for name in plain[1]:
        torch.testing.assert_close(recomputed[1][name], plain[1][name], rtol=1e-6, atol=1e-7, msg=name)
    for name in plain[2]:  # BatchNorm statistics updated once, not again when recomputed
        torch.testing.assert_close(recomputed[2][name], plain[2][name], rtol=0, atol=0, msg=name)
    assert all(b.item() == 1 for n, b in recomputed[2].items() if n.endswith("num_batches_tracked"))


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
    torch.testing.assert_close(logits.detach(), eager[0], rtol=1e-6, atol=1e-6)
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(param.grad, eager[1][name], rtol=1e-5, atol=1e-6, msg=name)
