import json

import pytest
from helpers import run_python

from tdsclip.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    config_hash,
    flatten,
    format_config,
    from_dict,
    leaf_types,
    main,
    to_dict,
)


def test_overrides_set_typed_values():
    cfg = apply_overrides(
        RunConfig(),
        [
            "model.backbone=ViT-L-14",
            "optim.lr=1e-4",
            "data.frames=16",
            "optim.betas=0.9,0.98",
            "model.quick_gelu=true",
            "train.precision=fp16",
        ],
    )
    assert cfg.model.backbone == "ViT-L-14"
    assert cfg.optim.lr == pytest.approx(1e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.data.frames == 16 and isinstance(cfg.data.frames, int)
    assert cfg.optim.betas == (0.9, 0.98)
    assert cfg.model.quick_gelu is True
    assert cfg.train.precision == "fp16"
    assert RunConfig().optim.lr == 1e-3, "the defaults are untouched (configs are frozen)"
    assert apply_overrides(cfg, ["model.quick_gelu=none"]).model.quick_gelu is None


def test_defaults_follow_table_xiii_for_b16_ssv1():
    flat = flatten(RunConfig())
    assert flat["optim.lr"] == 1e-3 and flat["optim.weight_decay"] == 0.15
    assert flat["optim.betas"] == [0.9, 0.999] and flat["optim.warmup_epochs"] == 4.0
    assert flat["train.epochs"] == 40 and flat["train.seed"] == 1024
    assert flat["train.label_smoothing"] == 0.1 and flat["train.batch_size"] == 128
    assert flat["data.frames"] == 8 and flat["data.input_size"] == 224


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.learning_rate=1", "unknown config key 'optim.learning_rate'; did you mean 'optim.lr'?"),
        ("lr=1e-4", "unknown config key 'lr'; did you mean 'optim.lr'?"),
        ("optim.wd=0.1", "did you mean 'optim.weight_decay'?"),
        ("model.backbon=ViT-B-16", "did you mean 'model.backbone'?"),
        ("train.epoch=3", "did you mean 'train.epochs'?"),
        ("data.frames=eight", "data.frames: expected int, got 'eight'"),
        ("data.frames=8.5", "data.frames: expected int, got '8.5'"),
        ("optim.lr=fast", "optim.lr: expected float, got 'fast'"),
        ("optim.lr=nan", "optim.lr: expected float, got 'nan'"),
        ("optim.betas=0.9", "optim.betas: expected 2 comma-separated values (float, float), got '0.9'"),
        ("model.quick_gelu=maybe", "model.quick_gelu: expected bool or None, got 'maybe'"),
        ("train.precision=fp8", "train.precision: expected one of 'fp32', 'bf16', 'fp16', got 'fp8'"),
        ("data.frames=0", "data.frames: expected >= 1, got 0"),
        ("optim.lr=-1", "optim.lr: expected > 0, got -1.0"),
        ("model=ViT-B-16", "'model' is a config section"),
        ("optim.lr", "expected key=value"),
    ],
)
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(ConfigError) as error:
        apply_overrides(RunConfig(), [override])
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_every_key_is_reachable_and_round_trips():
    cfg = apply_overrides(RunConfig(), ["optim.lr=3e-4", "model.weights=/w/ViT-B-16.pt", "data.dataset=k400"])
    assert from_dict(to_dict(cfg)) == cfg
    assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg
    assert set(leaf_types()) == set(flatten(cfg))
    with pytest.raises(ConfigError, match="unknown config key 'model.colour'"):
        from_dict({"model": {"colour": "red"}})


def test_hash_identifies_the_resolved_config():
    base = RunConfig()
    assert config_hash(base) == config_hash(RunConfig())
    assert config_hash(apply_overrides(base, ["optim.lr=1e-4"])) == config_hash(
        apply_overrides(base, ["optim.lr=0.0001"])
    )
    assert config_hash(apply_overrides(base, ["optim.lr=1e-4"])) != config_hash(base)
    a = apply_overrides(base, ["data.frames=16", "optim.lr=1e-4"])
    b = apply_overrides(base, ["optim.lr=1e-4", "data.frames=16"])
    assert config_hash(a) == config_hash(b)
    assert len(config_hash(base)) == 64


def test_hash_is_stable_across_processes():
    overrides = ["model.backbone=ViT-L-14", "optim.lr=1e-4", "optim.betas=0.9,0.98", "data.frames=16"]
    expected = config_hash(apply_overrides(RunConfig(), overrides))
    code = (
        "from tdsclip.config import RunConfig, apply_overrides, config_hash;"
        f"print(config_hash(apply_overrides(RunConfig(), {overrides!r})))"
    )
    for seed in ("0", "1", "12345"):
        result = run_python(code, PYTHONHASHSEED=seed)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected


def test_format_and_cli_print_the_resolved_config(capsys):
    text = format_config(apply_overrides(RunConfig(), ["optim.lr=1e-4"]))
    assert "optim.lr" in text and "0.0001" in text and "model.backbone" in text
    assert main(["data.frames=16"]) == 0
    out = capsys.readouterr().out
    assert "data.frames" in out and "16" in out and "# config hash " in out
    assert main(["data.franes=16"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown config key 'data.franes'; did you mean 'data.frames'?"
