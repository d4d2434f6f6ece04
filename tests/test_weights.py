"""Each weights format is written here, loaded back through build_backbone, and compared."""

import os

import open_clip
import pytest
import torch
from helpers import block_outputs, tiny_clip, write_openai_archive
from safetensors.torch import save_file

from tdsclip.model.backbone import build_backbone
from tdsclip.model.weights import WeightsError, is_torchscript_archive

FRAMES = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def assert_same_blocks(backbone, visual):
    ours, theirs = backbone(FRAMES), block_outputs(visual.eval(), FRAMES)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


@pytest.fixture(scope="module")
def model():
    return tiny_clip(seed=7)


@pytest.mark.parametrize("fmt", ["bin", "pt-checkpoint", "ddp", "compiled", "safetensors", "visual-only"])
def test_state_dict_formats_load_identically(tmp_path, model, fmt):
    state = model.state_dict()
    if fmt == "bin":
        path = tmp_path / "open_clip_pytorch_model.bin"
        torch.save(state, path)
    elif fmt == "pt-checkpoint":  # what open_clip's trainer writes
        path = tmp_path / "epoch_10.pt"
        torch.save({"epoch": 10, "name": "run", "state_dict": state}, path)
    elif fmt == "ddp":
        path = tmp_path / "ddp.pth"
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    elif fmt == "compiled":
        path = tmp_path / "compiled.pth"
        torch.save({f"_orig_mod.{k}": v for k, v in state.items()}, path)
    elif fmt == "safetensors":
        path = tmp_path / "open_clip_model.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        path = tmp_path / "visual.bin"
        torch.save({k: v for k, v in state.items() if k.startswith("visual.")}, path)
    backbone = build_backbone("tdsclip-tiny", str(path))
    assert not backbone.uses_quick_gelu
    assert_same_blocks(backbone, model.visual)


def test_openai_archive_gets_quick_gelu_and_matches_open_clip(tmp_path):
    model = tiny_clip(seed=11, quick_gelu=True)
    path = write_openai_archive(model.state_dict(), tmp_path / "ViT-tiny.pt")
    assert is_torchscript_archive(path)
    backbone = build_backbone("tdsclip-tiny", str(path))
    assert backbone.uses_quick_gelu, "OpenAI CLIP weights need QuickGELU"
    assert_same_blocks(backbone, open_clip.load_openai_model(str(path), device="cpu").visual)
    with pytest.raises(WeightsError, match="OpenAI CLIP archive, trained with QuickGELU; model.quick_gelu=false"):
        build_backbone("tdsclip-tiny", str(path), quick_gelu=False)


def test_quick_gelu_changes_features(tmp_path):
    path = tmp_path / "w.bin"
    torch.save(tiny_clip(seed=2).state_dict(), path)
    gelu = build_backbone("tdsclip-tiny", str(path), quick_gelu=False)(FRAMES)[-1]
    quick = build_backbone("tdsclip-tiny", str(path), quick_gelu=True)(FRAMES)[-1]
    assert not torch.allclose(gelu, quick)


def test_cached_pretrained_tag_loads_without_network(tmp_path, monkeypatch):
    """ViT-B-16's `openai` tag, as open_clip's hub download would have cached it (visual tower, fp16)."""
    snapshot = tmp_path / "hub" / "models--timm--vit_base_patch16_clip_224.openai" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    torch.manual_seed(0)
    visual = build_backbone("ViT-B-16", quick_gelu=True)
    reference = open_clip.create_model("ViT-B-16", force_quick_gelu=True).visual
    state = {f"visual.{k}": v.half() for k, v in reference.state_dict().items()}
    save_file(state, str(snapshot / "open_clip_model.safetensors"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backbone = build_backbone("ViT-B-16", "openai")
    assert backbone.uses_quick_gelu, "the openai tag is marked quick_gelu in open_clip"
    frames = torch.randn(1, 3, 224, 224)
    expected = reference.half().float().eval()
    ours, theirs = backbone(frames), block_outputs(expected, frames)
    assert torch.equal(ours[-1], theirs[-1])
    del visual


def test_missing_tag_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("TDSCLIP_CLIP_CACHE", str(tmp_path / "empty-clip"))
    with pytest.raises(WeightsError, match="pretrained tag 'openai' of ViT-B-16 is not in the local cache"):
        build_backbone("ViT-B-16", "openai")
    with pytest.raises(WeightsError, match="neither an existing file nor an open_clip pretrained tag of ViT-B-16"):
        build_backbone("ViT-B-16", "not-a-tag")


def test_missing_unreadable_and_mismatched_files(tmp_path, model):
    def error_of(*args, **kwargs) -> str:
        with pytest.raises(WeightsError) as info:
            build_backbone(*args, **kwargs)
        assert "\n" not in str(info.value)
        return str(info.value)

    assert f"weights file {tmp_path / 'absent.pt'} does not exist" in error_of(
        "tdsclip-tiny", str(tmp_path / "absent.pt")
    )

    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(256))
    assert f"cannot read weights file {junk}" in error_of("tdsclip-tiny", str(junk))

    truncated = tmp_path / "truncated.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:1000])
    assert f"cannot read weights file {truncated}" in error_of("tdsclip-tiny", str(truncated))

    text_only = tmp_path / "text.bin"
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("visual.")}, text_only)
    assert "hold no CLIP visual tower" in error_of("tdsclip-tiny", str(text_only))

    not_a_state_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], not_a_state_dict)
    assert "holds a list, not a state dict" in error_of("tdsclip-tiny", str(not_a_state_dict))

    tiny = tmp_path / "tiny.bin"
    torch.save(model.state_dict(), tiny)
    message = error_of("ViT-B-16", str(tiny))
    assert f"weights {tiny} do not fit ViT-B-16: the file holds width 128, patch 16, 4 layers, 64 px" in message
    assert "ViT-B-16 has width 768, patch 16, 12 layers, 224 px" in message

    partial = tmp_path / "partial.bin"
    torch.save({k: v for k, v in model.state_dict().items() if "resblocks.3" not in k}, partial)
    assert "missing keys (e.g. transformer.resblocks.3." in error_of("tdsclip-tiny", str(partial))

    assert "unknown backbone 'ViT-B-61'; did you mean ViT-B-16" in error_of("ViT-B-61")
