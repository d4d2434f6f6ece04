"""Presets against Table XIII cell by cell, the released code's differences, and locations."""

import pytest

from tdsclip import locations
from tdsclip.config import ConfigError
from tdsclip.identity import run_id
from tdsclip.presets import resolve

TABLE_XIII = {  # (dataset, backbone): (lr, epochs, test clips)
    ("ssv1", "ViT-B-16"): (1e-3, 40, 2),
    ("ssv1", "ViT-L-14"): (1e-4, 30, 2),
    ("ssv2", "ViT-B-16"): (1e-3, 30, 2),
    ("ssv2", "ViT-L-14"): (1e-4, 30, 2),
    ("k400", "ViT-B-16"): (1e-3, 30, 4),
    ("k400", "ViT-L-14"): (1e-4, 30, 4),
}


@pytest.mark.parametrize("dataset, backbone", list(TABLE_XIII))
def test_paper_preset_is_table_xiii(dataset, backbone):
    cfg = resolve("paper", [f"data.dataset={dataset}", f"model.backbone={backbone}"])
    lr, epochs, clips = TABLE_XIII[(dataset, backbone)]
    assert cfg.optim.lr == lr and cfg.train.epochs == epochs
    assert (cfg.data.test_crops, cfg.data.test_clips) == (3, clips)
    assert cfg.model.side_width == 320 and cfg.model.sme_window == 5
    assert (cfg.model.td_mode, cfg.model.td_kernel) == ("pool", 3)
    assert cfg.optim.weight_decay == 0.15 and cfg.optim.betas == (0.9, 0.999) and cfg.optim.warmup_epochs == 4
    assert cfg.train.seed == 1024 and cfg.train.label_smoothing == 0.1
    assert cfg.train.batch_size == 128 and cfg.data.num_sample == 2, "128 videos = 256 clips per step"
    assert cfg.data.randaugment == "rand-m7-n4-mstd0.5-inc1" and cfg.data.flip == 0.5
    assert cfg.model.num_classes == (400 if dataset == "k400" else 174)
    assert cfg.data.resize == ((256,) if dataset == "k400" else (256, 320))
    assert cfg.data.grayscale == (0.2 if dataset == "k400" else 0.0)
    assert (cfg.model.sme_alpha, cfg.model.sme_beta) == (1.0, 1.0)


def test_released_code_preset_differs_where_the_code_does():
    assert resolve("released-code", ["data.dataset=ssv1"]).model.sme_beta == 0.5
    assert resolve("released-code", ["model.backbone=ViT-L-14"]).model.side_width == 512
    assert resolve("released-code", ["model.backbone=ViT-B-16"]).model.side_width == 320
    assert resolve("released-code", ["data.dataset=k400"]).data.randaugment == ""
    assert resolve("released-code", ["data.dataset=ssv2"]).data.randaugment == "rand-m7-n4-mstd0.5-inc1"


def test_user_overrides_win_and_bad_presets_are_one_line():
    assert resolve("paper", ["optim.lr=3e-4", "data.dataset=k400"]).optim.lr == 3e-4
    assert resolve("smoke").model.backbone == "tdsclip-tiny" and resolve("smoke").data.dataset == "synthetic"
    with pytest.raises(ConfigError, match="unknown preset 'papr'; expected one of paper, released-code, smoke"):
        resolve("papr")


def test_locations_from_environment_then_file_with_errors_naming_what_to_set(tmp_path):
    cfg = resolve("paper", ["data.dataset=ssv2"])
    file = tmp_path / "locations.toml"
    env = {"TDSCLIP_LOCATIONS": str(file)}
    with pytest.raises(
        ConfigError,
        match=f"data.root for ssv2: set TDSCLIP_SSV2_ROOT or \\[datasets.ssv2\\] root .* locations file {file}",
    ):
        locations.fill(cfg, require_weights=True, environ=env)
    file.write_text(
        '[datasets.ssv2]\nroot = "/data/ssv2"\ntrain = "/data/t.json"\nval = "/data/v.json"\nlabels = "/data/l.json"\n'
        '[weights]\n"ViT-B-16" = "/w/ViT-B-16.pt"\n'
    )
    filled = locations.fill(cfg, require_weights=True, environ={**env, "TDSCLIP_SSV2_ROOT": "/fast/ssv2"})
    assert filled.data.root == "/fast/ssv2" and filled.data.val_annotations == "/data/v.json"
    assert filled.model.weights == "/w/ViT-B-16.pt"
    k400 = resolve("paper", ["data.dataset=k400", "model.backbone=ViT-L-14"])
    with pytest.raises(ConfigError, match="data.root for k400: set TDSCLIP_K400_ROOT"):
        locations.fill(k400, require_weights=True, environ=env)
    k400_env = {
        **env,
        "TDSCLIP_K400_ROOT": "/k",
        "TDSCLIP_K400_TRAIN": "/k/train.csv",
        "TDSCLIP_K400_VAL": "/k/val.csv",
    }
    with pytest.raises(ConfigError, match="model.weights for ViT-L-14: set TDSCLIP_WEIGHTS_VIT_L_14"):
        locations.fill(k400, require_weights=True, environ=k400_env)
    (tmp_path / "broken.toml").write_text("[datasets\n")
    with pytest.raises(ConfigError, match="locations file"):
        locations.fill(cfg, require_weights=True, environ={"TDSCLIP_LOCATIONS": str(tmp_path / "broken.toml")})


def test_run_identity_ignores_locations_but_not_the_recipe(tmp_path):
    cfg = resolve("paper", ["data.dataset=ssv1", "data.root=/a", "model.weights=random"])
    moved = resolve("paper", ["data.dataset=ssv1", "data.root=/b", "data.num_workers=2", "model.weights=random"])
    assert run_id(cfg, "m1") == run_id(moved, "m1")
    assert run_id(cfg, "m1") != run_id(cfg, "m2")
    assert run_id(cfg, "m1") != run_id(
        resolve("paper", ["data.dataset=ssv1", "optim.lr=2e-3", "model.weights=random"]), "m1"
    )
