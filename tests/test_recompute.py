"""Recomputation knobs (model.td_recompute, model.proj_recompute): the same maths and statistics, less kept for backward."""

import pytest
import torch

from tdsclip.config import RunConfig, apply_overrides
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
    clips = torch.randn(2, 3, 4, 5, 64, 64, generator=torch.Generator().manual_seed(1))
    logits = model(clips)
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 4])).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return logits.detach(), grads, {n: b.clone() for n, b in model.named_buffers()}


@pytest.mark.parametrize("overrides", [[], ["model.td_placement=replace"], ["model.td_mode=conv", "model.td_layers=1"]])
@pytest.mark.parametrize("checkpoint_blocks", [False, True])
def test_recompute_gives_the_same_outputs_gradients_and_running_statistics(overrides, checkpoint_blocks):
    plain = train_step(overrides + ["model.td_recompute=false", "model.proj_recompute=false"], checkpoint_blocks)
    recomputed = train_step(overrides + ["model.td_recompute=true", "model.proj_recompute=true"], checkpoint_blocks)
    torch.testing.assert_close(recomputed[0], plain[0], rtol=0, atol=0)
    assert recomputed[1].keys() == plain[1].keys()
    for name in plain[1]:
        torch.testing.assert_close(recomputed[1][name], plain[1][name], rtol=1e-6, atol=1e-7, msg=name)
    for name in plain[2]:  # BatchNorm statistics updated once, not again when recomputed
        torch.testing.assert_close(recomputed[2][name], plain[2][name], rtol=0, atol=0, msg=name)
    assert any(b.item() == 1 for n, b in recomputed[2].items() if n.endswith("td.reduce.1.num_batches_tracked"))


def test_recompute_keeps_no_more_than_the_3d_conv_branch_for_backward():
    """B/16, 8 frames, one clip: the TD-Adapter's full-width tensors are no longer kept."""

    def saved(*overrides: str) -> int:
        return measure(apply_overrides(RunConfig(), ["model.sme_window=1", *overrides]), cuda=False)[
            "saved_activation_bytes"
        ]

    conv3d, plain, recomputed = saved("model.temporal=conv3d"), saved("model.td_recompute=false"), saved()
    assert recomputed < plain
    assert recomputed == conv3d, "only the last 1x1x1 conv's input is kept, as in the 3D conv branch"
    assert saved("model.td_placement=replace") < saved("model.td_placement=replace", "model.td_recompute=false")
    # per block, the CLIP-wide LayerNorm output (8 x 197 x 768 floats) and its mean and 1/std are no longer kept
    assert saved("model.proj_recompute=false") - recomputed == 12 * 8 * 197 * (768 + 2) * 4


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
