"""TDS-CLIP and every variant the paper's tables need: shapes, gradients, formulas, numbers."""

import pytest
import torch

from tdsclip.config import ConfigError, RunConfig, apply_overrides
from tdsclip.measure import count_parameters, measure, saved_activation_bytes
from tdsclip.model.adapters import TDAdapter, sme_differences
from tdsclip.model.build import build_model
from tdsclip.model.side import TDSBlock, TemporalBranch, shift_cls

TINY = [
    "model.backbone=tdsclip-tiny",
    "data.input_size=64",
    "model.side_width=64",
    "model.td_reduction=4",
    "model.num_classes=6",
]
VARIANTS = {
    "tds-clip": [],
    "baseline-no-temporal": ["model.temporal=none", "model.sme_window=1"],
    "baseline-3d-conv": ["model.temporal=conv3d", "model.sme_window=1"],
    "td-conv": ["model.td_mode=conv"],
    "td-direct": ["model.td_mode=direct"],
    "td-k7": ["model.td_kernel=7"],
    "td-replace": ["model.td_placement=replace"],
    "td-plain": ["model.td_gate=false", "model.td_channel_mean=false"],
    "td-layers-1-2": ["model.td_layers=1-2"],
    "td-layers-3-4": ["model.td_layers=3,4"],
    "sme-m3": ["model.sme_window=3"],
    "sme-only": ["model.sme_alpha=0"],
    "sme-half": ["model.sme_beta=0.5"],
    "spatial": ["model.sme_placement=spatial"],
    "spatial-temporal": ["model.sme_placement=spatial_temporal"],
    "cross": ["model.sme_placement=cross"],
    "additional": ["model.sme_placement=additional"],
    "no-cls-shift": ["model.cls_shift=false"],
    "stem-padding-0": ["model.stem_padding=0"],
    "st-adapter": ["model.backbone_tuning=st_adapter", "model.temporal=none", "model.sme_window=1"],
    "full-finetune": ["model.backbone_tuning=full"],
}


def tiny(*overrides: str) -> RunConfig:
    return apply_overrides(RunConfig(), TINY + list(overrides))


def clips_for(cfg: RunConfig, batch: int = 2, frames: int = 4) -> torch.Tensor:
    size = cfg.data.input_size
    return torch.randn(batch, 3, frames, cfg.model.sme_window, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_builds_runs_and_trains(name):
    cfg = tiny(*VARIANTS[name])
    torch.manual_seed(0)
    model = build_model(cfg.model)
    clips = clips_for(cfg)
    logits = model(clips)
    assert logits.shape == (2, 6) and torch.isfinite(logits).all()

    saved = saved_activation_bytes(lambda: model(clips), model, [model.backbone])
    torch.nn.functional.cross_entropy(model(clips), torch.tensor([1, 4])).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, f"trainable parameters without gradient: {missing[:5]}"
    clip_params = [p for n, p in model.backbone.named_parameters() if "st_adapters" not in n]
    assert all(p.grad is not None for p in clip_params) == (cfg.model.backbone_tuning == "full")
    if cfg.model.backbone_gets_gradients:
        assert saved.frozen > 0, "gradients flow through the CLIP blocks, so their activations are kept"
    else:
        assert saved.frozen == 0, "a frozen backbone keeps nothing for backward"
        assert all(p.grad is None for p in model.backbone.parameters())


@pytest.mark.slow  # a real ViT-B/16 forward over 8 frames
def test_real_b16_graph_on_one_clip():
    torch.manual_seed(0)
    model = build_model(RunConfig().model)
    clip = torch.randn(1, 3, 8, 5, 224, 224)
    with torch.no_grad():
        logits = model.eval()(clip)
    assert logits.shape == (1, 174) and torch.isfinite(logits).all()
    assert len(model.blocks) == 12 and model.backbone.grid_size == (14, 14)


def test_sme_channel_layout():
    b, t, m, size = 2, 3, 5, 4
    c = torch.arange(3).view(1, 3, 1, 1, 1, 1)
    seg = torch.arange(t).view(1, 1, t, 1, 1, 1)
    j = torch.arange(m).view(1, 1, 1, m, 1, 1)
    clips = (1000.0 * c + 10.0 * seg + j.float() ** 2).expand(b, 3, t, m, size, size)
    diffs = sme_differences(clips)
    assert diffs.shape == (b, 3 * (m - 1), t, size, size)
    for k in range(m - 1):
        for colour in range(3):
            # channel 3k + c holds frame k+1 minus frame k of colour c, in every segment
            assert torch.all(diffs[:, 3 * k + colour] == (k + 1) ** 2 - k**2)


def test_clip_sees_only_the_centre_frame_of_each_window():
    cfg = tiny()
    model = build_model(cfg.model).eval()
    seen = []
    model.backbone.conv1.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    clips = clips_for(cfg)
    model(clips)
    expected = clips[:, :, :, 2].transpose(1, 2).reshape(-1, 3, 64, 64)
    assert torch.equal(seen[0], expected)


@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_td_max_pool_difference_is_never_positive(kernel):
    adapter = TDAdapter(64, mode="pool", kernel=kernel, reduction=4)
    f = torch.randn(3, 8, 25, 16)  # tokens (B, T, n, C) on a 5 x 5 grid
    d = adapter.difference(f, (5, 5))
    assert d.shape == f.shape and (d <= 0).all() and (d < 0).any()
    direct = TDAdapter(64, mode="direct", reduction=4).difference(f, (5, 5))
    assert torch.equal(direct[:, 0], torch.zeros_like(f[:, 0]))
    assert torch.equal(direct[:, 1:], f[:, 1:] - f[:, :-1])


def test_td_gate_scales_the_input_between_half_and_one_and_a_half():
    adapter = TDAdapter(64, reduction=4).eval()
    x = torch.rand(2, 8, 9, 64) + 0.1  # tokens (B, T, n, C) on a 3 x 3 grid
    ratio = adapter(x, (3, 3)) / x
    assert (ratio > 0.5).all() and (ratio < 1.5).all()


def test_cls_shift_moves_half_the_channels_each_way():
    b, t, d = 2, 4, 6
    cls = torch.arange(b * t * d, dtype=torch.float).reshape(b * t, 1, d) + 1
    shifted = shift_cls(cls, t).reshape(b, t, d)
    original = cls.reshape(b, t, d)
    assert torch.equal(shifted[:, :-1, :3], original[:, 1:, :3])  # first half from frame t+1
    assert torch.equal(shifted[:, 1:, 3:], original[:, :-1, 3:])  # second half from frame t-1
    assert torch.all(shifted[:, -1, :3] == 0) and torch.all(shifted[:, 0, 3:] == 0)


@pytest.mark.parametrize("bias", [False, True])
def test_one_side_block_parameter_count_matches_its_formula(bias):
    d, r, layers = 320, 16, 12
    td = dict(mode="pool", kernel=3, reduction=r, channel_mean=True, gate=True, bias=bias)
    block = TDSBlock(d, layers, TemporalBranch(d, "td", td, "stacked"), cls_shift=True)
    conv_branch = 2 * d + (d * d + d) + (3 * d + d) + (d * d + d)  # BN, 1x1x1, depthwise (3,1,1), 1x1x1
    # two 1x1x1 convs (bias only with model.td_bias; the released code has none), each with its BN
    td_adapter = d * (d // r) + 2 * (d // r) + (d // r) * d + 2 * d + bias * (d // r + d)
    attention = 2 * d + (3 * d * d + 3 * d) + (d * d + d)  # LayerNorm, in_proj, out_proj
    mlp = 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d)  # BN pre-norm, fc1, fc2
    assert sum(p.numel() for p in block.parameters()) == conv_branch + td_adapter + attention + mlp


def test_b16_trainable_parameters_match_the_paper():
    trainable, _ = count_parameters(build_model(RunConfig().model, "meta"))
    assert trainable == pytest.approx(24.2e6, rel=0.03)
    model = build_model(RunConfig().model, "meta")
    assert sum(p.numel() for n, p in model.named_parameters() if ".td." in n) == pytest.approx(0.16e6, rel=0.05)
    assert sum(p.numel() for p in model.sme_stem.parameters()) == pytest.approx(2.95e6, rel=0.01)


def _side_network(*overrides: str):
    """The model of a config with its frozen CLIP on the meta device: the side network's real
    random init, without allocating (or initialising) the backbone."""
    from tdsclip.model.backbone import build_backbone
    from tdsclip.model.build import TDSCLIP

    cfg = apply_overrides(RunConfig(), list(overrides)).model
    torch.manual_seed(0)
    return TDSCLIP(cfg, build_backbone(cfg.backbone, "", cfg.quick_gelu, "meta"))


def _std(tensors) -> float:
    return torch.cat([t.detach().flatten() for t in tensors]).std().item()


def test_released_init_measures_as_the_released_code_behaves():
    # B/16, d 320: the released code's visual side projections keep nn.Linear's default init
    # (its initialize_parameters re-initialises the text tower's), std 1/sqrt(3 W) = 0.021; ours 0.040
    for init, expected in (("paper", (2 * 320) ** -0.5), ("released", (3 * 768) ** -0.5)):
        model = _side_network(f"model.init={init}")
        assert _std(p.weight for p in model.projs) == pytest.approx(expected, rel=0.02)
        assert round(_std(p.weight for p in model.projs), 3) == {"paper": 0.040, "released": 0.021}[init]
    # output layers: std d^-0.5 (2 L)^-0.5 with L = the depth (paper) or 12 whatever the depth (released);
    # a 4-block tower shows the difference (as L/14's 24 blocks would); the classifier keeps nn.Linear's
    # default init in the released code (uniform, std 1/sqrt(3d), a non-zero bias)
    tower = ["model.backbone=tdsclip-tiny", "model.side_width=320"]
    for init, depth, fc_std in (("paper", 4, 0.02), ("released", 12, (3 * 320) ** -0.5)):
        model = _side_network(*tower, f"model.init={init}")
        out = [b.attn.out_proj.weight for b in model.blocks] + [b.mlp.fc2.weight for b in model.blocks]
        assert _std(out) == pytest.approx(320**-0.5 * (2 * depth) ** -0.5, rel=0.02)
        assert _std([b.attn.in_proj.weight for b in model.blocks]) == pytest.approx(320**-0.5, rel=0.02)
        assert _std([model.fc.weight]) == pytest.approx(fc_std, rel=0.03)
        assert (model.fc.bias.abs().max().item() > 0) == (init == "released")


def test_released_code_preset_trains_from_the_released_init():
    from tdsclip.presets import resolve

    assert resolve("released-code").model.init == "released"
    assert resolve("paper").model.init == "paper"


def test_released_parameter_counts_are_exact(capsys):
    """The released code's TD-Adapter convs have no bias (model.td_bias=false, the default): the
    counts equal the authors' (tests/test_released.py checks them against their key lists too)."""
    import json

    from tdsclip.measure import main
    from tdsclip.presets import resolve

    assert main(["--json", "--no-cuda", "--preset", "released-code", "model.num_classes=174"]) == 0
    assert json.loads(capsys.readouterr().out)["trainable_params"] == 24_224_526

    def trainable(*overrides: str) -> int:
        return count_parameters(build_model(resolve("released-code", overrides).model, "meta"))[0]

    assert trainable("model.backbone=ViT-L-14", "model.num_classes=174") == 106_535_598
    assert trainable("model.backbone=ViT-L-14", "model.num_classes=400") == 106_651_536
    # the earlier form, biases on: + d/r + d per adapter, 12 adapters at B/16
    assert trainable("model.num_classes=174", "model.td_bias=true") == 24_224_526 + 12 * (20 + 320)


def test_l14_with_the_released_side_width_matches_the_released_parameter_count():
    cfg = apply_overrides(RunConfig(), ["model.backbone=ViT-L-14", "model.side_width=512"])
    trainable, _ = count_parameters(build_model(cfg.model, "meta"))
    assert trainable == pytest.approx(106.5e6, rel=0.03)


@pytest.mark.parametrize(
    "backbone, frames, low, high",
    [
        ("ViT-B-16", 8, 0.17, 0.22),
        ("ViT-B-16", 16, 0.34, 0.44),
        ("ViT-B-16", 32, 0.68, 0.86),
        ("ViT-L-14", 8, 0.72, 0.88),
        ("ViT-L-14", 16, 1.44, 1.76),
    ],
)
def test_tflops_per_view_match_the_paper(backbone, frames, low, high):
    result = measure(apply_overrides(RunConfig(), [f"model.backbone={backbone}", f"data.frames={frames}"]), cuda=False)
    assert low <= result["gflops_per_view"] / 1e3 <= high


def _intermediates(model, clips):
    """x_0 (the stems' side input), every CLIP block output, and the final side tokens."""
    record = {"clip": [], "side_in": model.side_inputs(clips).side.detach()}

    def side_out(module, args):
        record["side_out"] = args[0].detach().clone()

    def clip_out(module, args, output):
        record["clip"].append(output.detach().clone())

    model.head_norm.register_forward_pre_hook(side_out)
    for block in model.backbone.resblocks:
        block.register_forward_hook(clip_out)
    record["logits"] = model(clips).detach()
    return record


@pytest.mark.parametrize(
    "placement, clip_changes, side_input_changes, side_output_changes",
    [
        ("temporal", False, True, True),
        ("spatial", True, False, True),
        ("spatial_temporal", True, True, True),
        ("cross", False, False, True),
        ("additional", False, False, False),
    ],
)
def test_sme_placements_route_motion_where_their_formulas_say(
    placement, clip_changes, side_input_changes, side_output_changes
):
    """Changing only the non-centre frames changes D alone: see which paths feel it."""
    cfg = tiny(f"model.sme_placement={placement}")
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    clips = clips_for(cfg)
    moved = clips.clone()
    moved[:, :, :, [0, 1, 3, 4]] += torch.randn_like(moved[:, :, :, [0, 1, 3, 4]])
    a, b = _intermediates(model, clips), _intermediates(build_model_like(model, cfg), moved)
    assert (not torch.equal(a["clip"][-1], b["clip"][-1])) == clip_changes
    assert (not torch.equal(a["side_in"], b["side_in"])) == side_input_changes
    assert (not torch.equal(a["side_out"], b["side_out"])) == side_output_changes
    assert not torch.equal(a["logits"], b["logits"]), "motion always reaches the prediction"


def build_model_like(model, cfg):
    torch.manual_seed(0)
    clone = build_model(cfg.model).eval()
    clone.load_state_dict(model.state_dict())
    return clone


@pytest.mark.parametrize(
    "placement, path",
    [
        ("temporal", "sme_stem"),
        ("spatial", "sme_spatial_stem"),
        ("spatial_temporal", "sme_spatial_stem"),
        ("cross", "cross"),
        ("additional", "additional"),
    ],
)
def test_sme_stem_gradients_reach_their_path(placement, path):
    cfg = tiny(f"model.sme_placement={placement}")
    model = build_model(cfg.model)
    clip_grads = []

    def watch_gradient(module, args, output):
        if output.requires_grad:
            output.register_hook(clip_grads.append)

    for block in model.backbone.resblocks:
        block.register_forward_hook(watch_gradient)
    model(clips_for(cfg)).logsumexp(dim=1).sum().backward()
    path_params = list(getattr(model, path).parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in path_params)
    through_clip = placement in ("spatial", "spatial_temporal")
    assert len(clip_grads) == (len(model.backbone.resblocks) if through_clip else 0)
    assert all(p.grad is None for p in model.backbone.parameters()), "CLIP's own weights stay frozen"


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.side_width=100", "model.side_width: expected a positive multiple of 64"),
        ("model.stem_padding=2", "model.stem_padding: expected 0 or 1, got 2"),
        ("model.cls_shift=sometimes", "model.cls_shift: expected bool, got 'sometimes'"),
        ("model.temporal=lstm", "model.temporal: expected one of 'none', 'conv3d', 'td', got 'lstm'"),
        ("model.td_mode=avg", "model.td_mode: expected one of 'pool', 'conv', 'direct', got 'avg'"),
        ("model.td_kernel=4", "model.td_kernel: expected an odd number >= 1, got 4"),
        ("model.td_reduction=7", "model.td_reduction: expected a divisor of model.side_width=320, got 7"),
        ("model.td_channel_mean=2", "model.td_channel_mean: expected bool, got '2'"),
        ("model.td_gate=maybe", "model.td_gate: expected bool, got 'maybe'"),
        ("model.td_placement=before", "model.td_placement: expected one of 'stacked', 'replace', got 'before'"),
        (
            "model.td_layers=first",
            "model.td_layers: expected 'all', 'first-half', 'second-half' or 1-based layers like '1-6' or '1,3,5', got 'first'",
        ),
        ("model.td_layers=7-3", "model.td_layers: expected 1-based ascending ranges, got '7-3'"),
        ("model.sme_window=4", "model.sme_window: expected an odd number >= 1 (1, 3, 5), got 4"),
        ("model.sme_alpha=-1", "model.sme_alpha: expected >= 0, got -1.0"),
        (
            "model.sme_beta=0",
            "model.sme_beta: expected > 0 with model.sme_window=5 (set model.sme_window=1 to disable SME)",
        ),
        (
            "model.sme_placement=input",
            "model.sme_placement: expected one of 'temporal', 'spatial', 'spatial_temporal', 'cross', 'additional', got 'input'",
        ),
        (
            "model.backbone_tuning=lora",
            "model.backbone_tuning: expected one of 'frozen', 'st_adapter', 'full', got 'lora'",
        ),
        ("model.st_adapter_width=0", "model.st_adapter_width: expected >= 1, got 0"),
    ],
)
def test_every_model_knob_rejects_bad_values_in_one_line(override, message):
    with pytest.raises(ConfigError) as error:
        apply_overrides(RunConfig(), [override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_knob_combinations_and_build_time_checks():
    with pytest.raises(ConfigError, match="model.sme_alpha=0 leaves the side network without input"):
        apply_overrides(RunConfig(), ["model.sme_alpha=0", "model.sme_placement=cross"])
    assert apply_overrides(RunConfig(), ["model.sme_beta=0", "model.sme_window=1"]).model.sme_beta == 0
    with pytest.raises(ConfigError, match="model.td_layers='7-24' names layer 24 but the backbone has 12 layers"):
        build_model(apply_overrides(RunConfig(), ["model.td_layers=7-24"]).model, "meta")
    model = build_model(tiny("model.sme_window=3").model)
    with pytest.raises(ValueError, match=r"expected clips of shape \(B, 3, T, m=3, H, W\)"):
        model(torch.randn(1, 3, 4, 5, 64, 64))
