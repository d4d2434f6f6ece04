"""Read CLIP weights from local files only, whatever their format, with one-line errors.

Accepted sources (`model.weights`):
- OpenAI's released CLIP checkpoints (`ViT-B-16.pt`, `ViT-L-14.pt`): TorchScript archives whose
  weights were trained with QuickGELU;
- open_clip state dicts: `.bin` / `.pt` / `.pth` (torch.save, read with weights_only=True) and
  `.safetensors`, bare or wrapped in {"state_dict": ...}, with DDP `module.` or torch.compile
  `_orig_mod.` prefixes; the visual tower alone (`visual.*` keys) is enough;
- an open_clip pretrained tag (e.g. `openai`, `laion2b_s34b_b88k`) whose file is already in the
  local cache (Hugging Face hub cache, or ~/.cache/clip for URL downloads). Nothing is downloaded.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

FORMATS = (
    "an OpenAI CLIP .pt archive, an open_clip .bin/.pt/.pth/.safetensors state dict, "
    "or an open_clip pretrained tag already in the local cache"
)
_STRIP_PREFIXES = ("module.", "_orig_mod.")


class WeightsError(ValueError):
    """A missing, unreadable or mismatched weights source; one line naming it."""


@dataclass(frozen=True)
class LoadedWeights:
    """The visual tower's state dict (keys without `visual.`) and where it came from."""

    visual_state: dict[str, torch.Tensor]
    source: str
    openai_archive: bool
    """True for OpenAI TorchScript archives, which require QuickGELU."""
    tag_quick_gelu: bool | None = None
    """What an open_clip pretrained tag says about QuickGELU; None for files."""


def looks_like_path(weights: str) -> bool:
    return (
        os.sep in weights
        or weights.startswith(("~", "."))
        or Path(weights).suffix in {".pt", ".pth", ".bin", ".safetensors", ".ckpt"}
        or Path(weights).exists()
    )


def is_torchscript_archive(path: Path) -> bool:
    """TorchScript zips hold `<name>/constants.pkl` and `<name>/code/`; torch.save zips do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def load_error_line(error: BaseException) -> str:
    """The informative line of a load error (torch's weights_only errors bury it in a preamble)."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0].split(". Please")[0]
        return f"torch.load(weights_only=True) refused it ({detail}): damaged, not a torch.save file, or holding objects other than tensors"
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _read_file(path: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """State dict of a weights file and whether it was an OpenAI TorchScript archive."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist (or is not a file); expected {FORMATS}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu"), False
        if is_torchscript_archive(path):
            archive = torch.jit.load(str(path), map_location="cpu")
            return dict(archive.state_dict()), True
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load, torch.jit.load and safetensors raise many kinds
        raise WeightsError(f"cannot read weights file {path}: {load_error_line(error)}; expected {FORMATS}") from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise WeightsError(
            f"weights file {path} holds a {type(checkpoint).__name__}, not a state dict; expected {FORMATS}"
        )
    return checkpoint, False


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _STRIP_PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return state


def visual_part(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The `visual.*` entries with the prefix removed (the text tower is never used here)."""
    state = _strip_prefixes(state)
    visual = {key[len("visual.") :]: value for key, value in state.items() if key.startswith("visual.")}
    if not visual:
        sample = ", ".join(list(state)[:3]) or "none"
        raise WeightsError(
            f"weights {source} hold no CLIP visual tower (no 'visual.*' keys; first keys: {sample}); expected {FORMATS}"
        )
    return visual


def cached_tag_file(backbone: str, tag: str) -> Path | None:
    """The locally cached file of an open_clip pretrained tag, or None; never downloads."""
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(backbone, tag)
    hf_hub, url = cfg.get("hf_hub", ""), cfg.get("url", "")
    if hf_hub:
        from huggingface_hub import try_to_load_from_cache

        hub_cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
            os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
        )
        repo_id, filename = os.path.split(hf_hub)  # "org/repo/" -> ("org/repo", ""): default names
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in names:
            found = try_to_load_from_cache(repo_id, name, cache_dir=hub_cache)
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
    if url:
        clip_cache = Path(os.environ.get("TDSCLIP_CLIP_CACHE", "~/.cache/clip")).expanduser()
        candidate = clip_cache / os.path.basename(url)
        if candidate.is_file():
            return candidate
    return None


def load_weights(backbone: str, weights: str) -> LoadedWeights:
    """Resolve `weights` (a file or a cached tag) for `backbone` and read its visual tower."""
    if looks_like_path(weights):
        path = Path(weights).expanduser()
        state, openai = _read_file(path)
        return LoadedWeights(visual_part(state, str(path)), str(path), openai)

    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    tags = list_pretrained_tags_by_model(backbone)
    if weights not in tags:
        known = ", ".join(tags) if tags else "none"
        raise WeightsError(
            f"model.weights={weights!r} is neither an existing file nor an open_clip pretrained tag of "
            f"{backbone} (tags: {known}); expected {FORMATS}"
        )
    path = cached_tag_file(backbone, weights)
    if path is None:
        raise WeightsError(
            f"pretrained tag {weights!r} of {backbone} is not in the local cache (HF_HUB_CACHE or "
            f"~/.cache/clip) and nothing is downloaded at run time; copy the file here and pass its path"
        )
    state, openai = _read_file(path)
    tag_quick_gelu = bool(get_pretrained_cfg(backbone, weights).get("quick_gelu", False))
    return LoadedWeights(visual_part(state, f"{path} (tag {weights})"), str(path), openai, tag_quick_gelu)
