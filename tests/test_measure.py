import json

import open_clip
import pytest
import torch
from helpers import run_python
from torch import nn

from tdsclip.config import RunConfig, apply_overrides
from tdsclip.measure import count_macs, count_parameters, format_measurement, measure, saved_activation_bytes

KNOWN_GMACS_PER_FRAME = {"ViT-B-16": 17.6, "ViT-L-14": 81.1}  # fvcore-style counts of the CLIP ViTs at 224 px


def cfg(*overrides: str) -> RunConfig:
    return apply_overrides(RunConfig(), list(overrides))


@pytest.mark.parametrize("backbone", ["ViT-B-16", "ViT-L-14"])
def test_backbone_flops_match_the_known_gmacs_per_frame(backbone):
    one_frame = measure(cfg(f"model.backbone={backbone}", "data.frames=1"), cuda=False, backbone_only=True)
    assert one_frame["gflops_per_view"] == pytest.approx(KNOWN_GMACS_PER_FRAME[backbone], rel=0.03)
    eight = measure(cfg(f"model.backbone={backbone}", "data.frames=8"), cuda=False, backbone_only=True)
    assert eight["gflops_per_view"] == pytest.approx(8 * one_frame["gflops_per_view"], rel=1e-9)


def test_parameters_of_the_bare_backbones():
    for name in ("ViT-B-16", "ViT-L-14"):
        visual = open_clip.create_model(name, device="meta").visual
        unused = visual.proj.numel() + sum(p.numel() for p in visual.ln_post.parameters())
        result = measure(cfg(f"model.backbone={name}"), cuda=False, backbone_only=True)
        assert result["total_params"] == sum(p.numel() for p in visual.parameters()) - unused
        assert result["trainable_params"] == 0
        assert result["saved_activation_bytes"] == 0, "the frozen backbone keeps nothing for backward"


def test_count_macs_is_one_per_multiply_add():
    layer = nn.Linear(32, 16)
    assert count_macs(lambda: layer(torch.randn(4, 32))) == 4 * 32 * 16
    conv = nn.Conv2d(3, 8, kernel_size=4, stride=4, bias=False)
    assert count_macs(lambda: conv(torch.randn(1, 3, 16, 16))) == 8 * 3 * 4 * 4 * 16


class Toy(nn.Module):
    """frozen Linear -> ReLU -> trainable Linear -> ReLU -> trainable Linear."""

    def __init__(self):
        super().__init__()
        self.frozen = nn.Sequential(nn.Linear(8, 16), nn.ReLU()).requires_grad_(False)
        self.head = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x):
        return self.head(self.frozen(x))


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_saved_activation_bytes_split_frozen_and_trainable(device):
    torch.manual_seed(0)
    model = Toy().to_empty(device=device) if device == "meta" else Toy()
    x = torch.randn(5, 8, device=device)
    saved = saved_activation_bytes(lambda: model(x), model, [model.frozen])
    # head[0] keeps its input (5x16), ReLU keeps its output (5x32), head[2] keeps the same tensor
    assert saved.trainable == (5 * 16 + 5 * 32) * 4
    assert saved.frozen == 0, "a frozen layer on a no-grad input saves nothing"

    model.frozen.requires_grad_(True)  # now the 'frozen' part trains too (as ST-Adapter's backbone would)
    saved = saved_activation_bytes(lambda: model(x), model, [model.frozen])
    assert saved.frozen == (5 * 8 + 5 * 16) * 4  # Linear input, ReLU output
    assert saved.total == saved.frozen + saved.trainable
    assert count_parameters(model) == (sum(p.numel() for p in model.parameters()),) * 2


def test_tiny_model_is_measured_at_its_own_resolution():
    result = measure(
        cfg(
            "model.backbone=tdsclip-tiny",
            "data.input_size=64",
            "data.frames=4",
            "model.side_width=64",
            "model.td_reduction=4",
        ),
        batch=2,
        cuda=False,
    )
    assert result["frames"] == 4 and result["batch"] == 2 and result["input_size"] == 64
    per_frame = 4 * (16 * 3 * 16 * 16) / 16 * 128 / 1e9  # just the patch embedding, a lower bound
    assert result["gflops_per_view"] > per_frame
    assert "one multiply-add counted as one FLOP" in format_measurement(result)


@pytest.mark.slow
def test_cli_json_and_errors():
    ok = run_python(
        "import sys; from tdsclip.measure import main; sys.exit(main(['--backbone', 'ViT-B-16', '--frames', '8', '--json']))"
    )
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    for key in ("trainable_params", "total_params", "gflops_per_view", "frames", "backbone", "saved_activation_bytes"):
        assert key in result
    assert result["frames"] == 8 and result["backbone"] == "ViT-B-16"
    assert 170 <= result["gflops_per_view"] <= 220, "TDS-CLIP B/16 8 frames: 0.17-0.22 TFLOPs per view"
    bare = run_python("from tdsclip.measure import main; main(['--frames', '8', '--backbone-only', '--json'])")
    assert json.loads(bare.stdout)["gflops_per_view"] == pytest.approx(8 * 17.6, rel=0.03)

    table = run_python("from tdsclip.measure import main; main(['--backbone', 'ViT-L-14'])")
    assert "ViT-L-14" in table.stdout and "TFLOPs" in table.stdout and "multiply-add" in table.stdout

    bad = run_python("import sys; from tdsclip.measure import main; sys.exit(main(['--backbone', 'tdsclip-tiny']))")
    assert bad.returncode == 2
    assert (
        bad.stderr.strip() == "error: data.input_size=224 but tdsclip-tiny takes 64 px frames; set data.input_size=64"
    )
    typo = run_python("import sys; from tdsclip.measure import main; sys.exit(main(['data.frame=8']))")
    assert typo.returncode == 2 and "did you mean 'data.frames'?" in typo.stderr


@pytest.mark.parametrize(
    "overrides", [[], ["model.backbone_tuning=st_adapter", "model.temporal=none", "model.sme_window=1"]]
)
def test_meta_saved_bytes_equal_a_real_cpu_forward(overrides):
    """On meta, attention is counted as the fused kernel the CPU runs: no attention matrix."""
    from tdsclip.measure import fused_attention_on_meta
    from tdsclip.model.build import build_model

    config = cfg(
        "model.backbone=tdsclip-tiny", "data.input_size=64", "model.side_width=64", "model.td_reduction=4", *overrides
    )
    saved = {}
    for device in ("cpu", "meta"):
        model = build_model(config.model, device).train()
        clips = torch.randn(2, 3, 4, config.model.sme_window, 64, 64, device=device)
        with fused_attention_on_meta():
            saved[device] = saved_activation_bytes(lambda: model(clips), model, [model.backbone])  # noqa: B023 - called within this iteration
    assert saved["meta"] == saved["cpu"]
    assert (saved["cpu"].frozen > 0) == bool(overrides)
