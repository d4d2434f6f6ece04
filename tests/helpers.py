"""Test data made on the spot: tiny CLIP models and weights files in each format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import open_clip
import torch
from torch import nn

import tdsclip.model.backbone  # noqa: F401  registers the tdsclip-tiny config with open_clip

REPO = Path(__file__).resolve().parents[1]


def tiny_clip(seed: int = 0, quick_gelu: bool = False) -> nn.Module:
    """A randomly initialised tdsclip-tiny CLIP (64 px, 4 blocks, width 128)."""
    torch.manual_seed(seed)
    return open_clip.create_model("tdsclip-tiny", force_quick_gelu=quick_gelu).eval()


class _Holder(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def write_openai_archive(state_dict: dict[str, torch.Tensor], path: Path) -> Path:
    """Save `state_dict` the way OpenAI released CLIP: a TorchScript archive with fp16 weights."""
    root = _Holder()
    for key, value in state_dict.items():
        *parents, leaf = key.split(".")
        module = root
        for name in parents:
            if not hasattr(module, name):
                module.add_module(name, _Holder())
            module = getattr(module, name)
        tensor = value.half() if value.is_floating_point() else value
        module.register_parameter(leaf, nn.Parameter(tensor.clone(), requires_grad=False))
    torch.jit.script(root).save(str(path))
    return path


def block_outputs(visual: nn.Module, frames: torch.Tensor) -> list[torch.Tensor]:
    """Each residual block's output while open_clip's own VisionTransformer.forward runs."""
    outputs: list[torch.Tensor] = []
    handles = [b.register_forward_hook(lambda m, i, o: outputs.append(o)) for b in visual.transformer.resblocks]
    try:
        with torch.no_grad():
            visual(frames)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter of this environment (so .pth start-up hooks apply)."""
    import os

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=300,
    )


def assert_same_maths(
    got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], exact: dict[str, torch.Tensor] | None = None
) -> None:
    """Per tensor max|a - b| <= 1e-5 max|b|: the same maths up to summation order. Names of
    gradients start with "grad". A gradient that is zero in exact arithmetic (a bias before a
    BatchNorm or a temporal difference, which remove constants) is rounding noise in both; it must
    stay below 1e-5 x the largest gradient instead. With `exact` (b's computation in float64),
    where a sum cancels (a LayerNorm bias's gradient summed over tokens) and b's own rounding error
    against it exceeds that bound, a may differ from b by twice b's error."""
    assert got.keys() == want.keys()
    largest = max(t.abs().max().item() for n, t in want.items() if n.startswith("grad"))
    for name, expected in want.items():
        assert got[name] is not None and expected is not None, name
        scale = expected.abs().max().item()
        if name.startswith("grad") and scale < 1e-5 * largest:
            assert got[name].abs().max().item() < 1e-5 * largest, f"{name} is zero in exact arithmetic"
            continue
        error = (got[name].double() - expected.double()).abs().max().item()
        allowed = 1e-5 * scale
        if exact is not None:
            allowed = max(allowed, 2 * (expected.double() - exact[name].double()).abs().max().item())
        assert error <= allowed, f"{name}: max|a-b| {error:.3g} against max|b| {scale:.3g}"
