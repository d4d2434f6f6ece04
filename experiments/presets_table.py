"""Table XIII rendered from the paper preset itself, the paper's cells beside it."""

from __future__ import annotations

from typing import Any

from experiments.spec import Spec
from tdsclip.config import RunConfig
from tdsclip.presets import resolve


def _cell(cfg: RunConfig, key: str) -> str:
    if key == "optim":
        o = cfg.optim
        return f"AdamW, weight decay={o.weight_decay:g}, betas=[{o.betas[0]:g}, {o.betas[1]:g}], schedule=Cosine"
    if key == "views":
        return f"{cfg.data.test_crops} spatial {cfg.data.test_clips} temporal"
    if key == "model.td_kernel":
        return f"{cfg.model.td_kernel} 1 1"
    if key == "data.crop_area":
        return f"RandomResizedCrop (area {cfg.data.crop_area[0]:g}-{cfg.data.crop_area[1]:g})"
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return f"{node:g}" if isinstance(node, float) else str(node)


def presets_table(spec: Spec, preset: str = "paper") -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per Table XIII line, one column per (dataset, backbone), then the
    paper's cells (one value when the paper prints one for all columns)."""
    columns = spec.extra["columns"]
    configs = [resolve(preset, [f"data.dataset={ds}", f"model.backbone={bb}"]) for ds, bb in columns]
    header = ["", *(f"{ds} {bb}" for ds, bb in columns), "paper"]
    rows = []
    for label, key, paper in spec.extra["rows"]:
        ours = [_cell(cfg, key) for cfg in configs]
        rows.append([label, *ours, " | ".join(paper)])
    return header, rows
