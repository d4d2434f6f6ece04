"""A file of FLOPs and parameter counts per model configuration, so planners need no torch.

`experiments.run --dry-run` estimates GPU-hours from these numbers and must not import torch, so
they are measured once (by tdsclip.measure, on the meta device) and kept in a JSON file keyed by
`key(cfg)`: the hash of everything that decides them (the model config without its weights, the
frames and the input size). `python -m experiments.flops` refreshes the committed file and a test
checks every entry against a fresh measurement.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from tdsclip.config import RECOMPUTE_KNOBS, RunConfig

NOT_FLOPS = ("weights", "quick_gelu", *RECOMPUTE_KNOBS, "init", "init_from")
"""Model fields that change no forward FLOPs or parameter count (recomputation repeats work in
backward only; initialisation changes values, not shapes)."""


def key(cfg: RunConfig) -> str:
    model = {k: v for k, v in asdict(cfg.model).items() if k not in NOT_FLOPS}
    payload = {"model": model, "frames": cfg.data.frames, "input_size": cfg.data.input_size}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load(path: Path) -> dict[str, dict]:
    """The cache's entries ({} when the file does not exist)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return data.get("entries", {})


def measure_entry(cfg: RunConfig) -> dict:
    """GFLOPs per view (whole model and frozen backbone alone) and parameter counts (imports torch)."""
    import torch

    from tdsclip.measure import _build, _clips, bare_backbone, count_macs, count_parameters

    model = _build(cfg, "meta")
    trainable, total = count_parameters(model)
    view = _clips(cfg, 1, "meta")
    with torch.no_grad():
        macs = count_macs(lambda: model(view))
        backbone_macs = count_macs(lambda: bare_backbone(model.backbone)(view))
    return {
        "gflops_per_view": round(macs / 1e9, 4),
        "backbone_gflops_per_view": round(backbone_macs / 1e9, 4),
        "trainable_params": trainable,
        "total_params": total,
        "backbone_gets_gradients": cfg.model.backbone_gets_gradients,
        "model": cfg.model.backbone,
        "frames": cfg.data.frames,
    }


def save(path: Path, entries: dict[str, dict]) -> None:
    from tdsclip.atomic import atomic_write

    text = json.dumps(
        {
            "about": "GFLOPs (one multiply-add = one FLOP) per view and parameters per model config; "
            "refresh with python -m experiments.flops",
            "entries": dict(sorted(entries.items())),
        },
        indent=1,
        sort_keys=True,
    )
    atomic_write(path, lambda handle: handle.write((text + "\n").encode()))


def summaries(cfgs: list[RunConfig], path: Path) -> list[dict[str, object]]:
    """Per config, what the cache at `path` says of its model: GFLOPs per view, TFLOPs x views as
    the paper prints them, GFLOPs over the first config's, parameters ({} when not measured)."""
    flops = load(path)
    first = flops.get(key(cfgs[0]), {}) if cfgs else {}
    out: list[dict[str, object]] = []
    for cfg in cfgs:
        entry = flops.get(key(cfg))
        if not entry:
            out.append({})
            continue
        views = cfg.data.test_crops * cfg.data.test_clips
        out.append(
            {
                "gflops_per_view": entry["gflops_per_view"],
                "tflops_x_views": f"{entry['gflops_per_view'] / 1000:.2f}x{views}",
                "gflops_over_first_row": entry["gflops_per_view"]
                - first.get("gflops_per_view", entry["gflops_per_view"]),
                "trainable_params": entry["trainable_params"],
                "total_params": entry["total_params"],
            }
        )
    return out
