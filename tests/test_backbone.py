import open_clip
import pytest
import torch
from helpers import block_outputs, tiny_clip
from open_clip.transformer import QuickGELU

from tdsclip.measure import saved_activation_bytes
from tdsclip.model.backbone import CLIPBackbone, build_backbone


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "tiny.bin"
    torch.save(tiny_clip(seed=3).state_dict(), path)
    return path


def test_every_block_output_equals_open_clips_own_forward(tiny_weights):
    backbone = build_backbone("tdsclip-tiny", str(tiny_weights))
    reference = open_clip.create_model("tdsclip-tiny", pretrained=str(tiny_weights)).visual.eval()
    frames = torch.randn(5, 3, 64, 64)
    ours = backbone(frames)
    theirs = block_outputs(reference, frames)
    assert len(ours) == backbone.num_layers == 4
    assert all(o.shape == (5, 1 + 16, 128) for o in ours)
    for index, (a, b) in enumerate(zip(ours, theirs)):
        assert torch.equal(a, b), f"block {index} differs from open_clip's forward"


def test_paper_backbones_have_the_expected_layout():
    for name, layers, width, grid in [("ViT-B-16", 12, 768, 14), ("ViT-L-14", 24, 1024, 16)]:
        backbone = build_backbone(name, device="meta")
        assert (backbone.num_layers, backbone.width, backbone.grid_size) == (layers, width, (grid, grid))
        outputs = backbone(torch.empty(2, 3, 224, 224, device="meta"))
        assert len(outputs) == layers and outputs[-1].shape == (2, 1 + grid * grid, width)


def test_backbone_is_frozen_builds_no_graph_and_saves_nothing(tiny_weights):
    backbone = build_backbone("tdsclip-tiny", str(tiny_weights))
    assert all(not p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training, "the frozen encoder stays in eval mode"
    frames = torch.randn(4, 3, 64, 64, requires_grad=True)
    outputs = backbone(frames)
    assert all(o.grad_fn is None and not o.requires_grad for o in outputs)

    head = torch.nn.Linear(128, 7)
    saved = saved_activation_bytes(lambda: head(backbone(frames)[-1]).sum(), head, [backbone])
    assert saved.frozen == 0
    assert saved.trainable == 4 * 17 * 128 * 4, "only the head's input is kept for backward"

    head(backbone(frames)[-1]).sum().backward()
    assert head.weight.grad is not None
    assert all(p.grad is None for p in backbone.parameters())
    assert frames.grad is None


def test_wrong_input_shape_is_a_clear_error():
    backbone = build_backbone("tdsclip-tiny")
    with pytest.raises(
        ValueError, match=r"tdsclip-tiny expects frames of shape \(N, 3, 64, 64\), got \(2, 3, 224, 224\)"
    ):
        backbone(torch.randn(2, 3, 224, 224))


def test_random_init_and_quick_gelu_switch():
    assert not build_backbone("tdsclip-tiny").uses_quick_gelu
    assert build_backbone("tdsclip-tiny", quick_gelu=True).uses_quick_gelu
    assert isinstance(build_backbone("tdsclip-tiny"), CLIPBackbone)
    assert not any(isinstance(m, QuickGELU) for m in build_backbone("ViT-B-16", device="meta").modules())
