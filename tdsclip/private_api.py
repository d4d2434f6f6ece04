"""The private functions and attributes of other libraries that tdsclip uses, one adapter each.

Why: a name with a leading underscore may change in any release without notice. Each one is
called from here only, with the version it was checked against, and tests/test_private_api.py
pins its behaviour (a known input, the output it must give) and fails when a pin in
pyproject.toml moves away from CHECKED_AGAINST. An upgrade then fails loudly in one place instead
of somewhere downstream. slurm/private_api.py does the same for submitit (tdsclip may not import
slurm/).

Imports stay inside the functions: `import tdsclip` must stay light (no torch, no mlflow).
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from open_clip.transformer import VisionTransformer

# distribution -> the version every adapter below was checked against (pyproject.toml's pin)
CHECKED_AGAINST = {"torch": "2.13.0", "open_clip_torch": "3.3.0", "mlflow": "3.17.2"}


def private(module: str, name: str, distribution: str, checked_against: dict[str, str] = CHECKED_AGAINST) -> Any:
    """`module.name`, or an ImportError naming the version it was checked against and the installed one."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        try:
            installed = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        raise ImportError(
            f"{module}.{name}: private to {distribution}, checked against {checked_against[distribution]}, "
            f"missing in the installed {installed}; adapt {__name__} or pin {distribution}=={checked_against[distribution]}"
        ) from error


def build_vision_tower(embed_dim: int, vision_cfg: dict[str, Any], quick_gelu: bool) -> VisionTransformer:
    """open_clip's image tower alone, as `create_model` would build it (no text tower, no weights).
    open_clip 3.3.0: `open_clip.model._build_vision_tower(embed_dim, vision_cfg, quick_gelu)`."""
    build = private("open_clip.model", "_build_vision_tower", "open_clip_torch")
    return build(embed_dim, vision_cfg, quick_gelu=quick_gelu)


def mlflow_schema_head() -> str:
    """The alembic revision of MLflow's newest database schema: what a fully migrated store holds.
    MLflow 3.17.2: `mlflow.store.db.utils._get_latest_schema_revision()`."""
    return private("mlflow.store.db.utils", "_get_latest_schema_revision", "mlflow")()


def storage_id(tensor: torch.Tensor) -> int:
    """An id of the storage under `tensor`, equal for all its views, on every device, the meta device
    included (where data_ptr() is always 0). torch 2.13.0: the StorageImpl address,
    `tensor.untyped_storage()._cdata`."""
    return tensor.untyped_storage()._cdata


def flash_attention_cpu(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, is_causal: bool, scale: float | None
) -> torch.Tensor:
    """Attention by the CPU flash kernel (what F.scaled_dot_product_attention runs on CPU without
    mask or dropout); on the meta device its meta function, which saves for backward what the fused
    kernels save. torch 2.13.0: `torch.ops.aten._scaled_dot_product_flash_attention_for_cpu`, whose
    first output is the attention output."""
    import torch

    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query, key, value, is_causal=is_causal, scale=scale
    )[0]
