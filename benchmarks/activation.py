"""Activation section: bytes kept for backward in one training step, per variant (tdsclip.measure).

Counted on the meta device (nothing computed, attention as the fused kernel real devices run,
equal to a real CPU step's count), ViT-B/16, 8 frames, fp32, with recomputation on (the default)
and on the plain path (every model.*_recompute knob off) beside it. Table XII
measured inference memory in GiB, which also holds weights and transient tensors; the paper's
ratios are printed beside ours for orientation, not as the same quantity. ST-Adapter and full
fine-tuning are compared two ways: as Table XII's rows (the side network with CLIP's blocks
trained too) and as the CLIP model alone (what the CLIP backbone keeps in those variants).
"""

from __future__ import annotations

from benchmarks.sections import Options, Result, Target, register
from benchmarks.variants import PAPER_SME_VS_ST, TABLE_XII, VARIANTS, config
from tdsclip.config import RECOMPUTE_KNOBS
from tdsclip.measure import model_saved_activations

SIDE_NETWORK = ("baseline", "conv3d", "td", "td_replace", "tds_clip")
"""Variants whose CLIP backbone is frozen and must keep nothing for backward."""
MIB = 2**20


def saved_bytes(frames: int, batch: int) -> dict[str, dict[str, dict[str, int]]]:
    """{variant: {'recompute' | 'plain': {'total', 'frozen'}}} plus TDS-CLIP with one knob off at a time."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for name in VARIANTS:
        out[name] = {}
        for mode, plain in (("recompute", False), ("plain", True)):
            saved = model_saved_activations(config(name, frames, plain=plain), batch)
            out[name][mode] = {"total": saved.total, "frozen": saved.frozen}
    for knob in RECOMPUTE_KNOBS:
        saved = model_saved_activations(config("tds_clip", frames, extra=(f"model.{knob}=false",)), batch)
        out["tds_clip"][f"without_{knob}"] = {"total": saved.total, "frozen": saved.frozen}
    saved = model_saved_activations(config("st_adapter", frames), batch, fused_attention=False)
    out["st_adapter"]["unfused_attention"] = {"total": saved.total, "frozen": saved.frozen}
    return out


def ratios(saved: dict[str, dict[str, dict[str, int]]]) -> dict[str, float]:
    total = lambda name, mode="recompute": saved[name][mode]["total"]
    keys: dict[str, float] = {
        "backbone_saved_bytes": max(saved[n][m]["frozen"] for n in SIDE_NETWORK for m in ("recompute", "plain"))
    }
    for mode, suffix in (("recompute", ""), ("plain", "_plain")):
        for other, key in (("conv3d", "conv_baseline"), ("st_adapter", "st_adapter"), ("full_ft", "full_ft")):
            keys[f"activation_ratio_vs_{key}{suffix}"] = total("tds_clip", mode) / total(other, mode)
        keys[f"activation_ratio_td_vs_conv_baseline{suffix}"] = total("td", mode) / total("conv3d", mode)
        keys[f"activation_ratio_td_replace_vs_conv_baseline{suffix}"] = total("td_replace", mode) / total(
            "conv3d", mode
        )
    keys["activation_ratio_vs_st_adapter_unfused"] = total("tds_clip") / total("st_adapter", "unfused_attention")
    for other, key in (("st_adapter", "st_adapter"), ("full_ft", "full_ft")):  # the CLIP model alone, no side network
        keys[f"activation_ratio_vs_{key}_clip_alone"] = total("tds_clip") / saved[other]["recompute"]["frozen"]
    keys["tds_clip_saved_bytes"] = total("tds_clip")
    keys["tds_clip_saved_bytes_plain"] = total("tds_clip", "plain")
    return keys


def report(saved: dict[str, dict[str, dict[str, int]]], keys: dict[str, float], frames: int, batch: int) -> list[str]:
    base = {mode: saved["baseline"][mode]["total"] for mode in ("recompute", "plain")}
    paper_base = VARIANTS["baseline"].paper_gib
    lines = [
        f"activation: bytes kept for backward, ViT-B/16, {frames} frames, {batch} clip(s), fp32 (meta device)",
        f"  {'variant':<44}{'recompute MiB':>14}{'plain MiB':>11}{'/ baseline':>11}{'paper / baseline':>18}",
    ]
    for name, variant in VARIANTS.items():
        paper = f"{variant.paper_gib / paper_base:.3f}" if variant.paper_gib is not None and name in TABLE_XII else ""
        on, plain = saved[name]["recompute"]["total"], saved[name]["plain"]["total"]
        lines.append(
            f"  {variant.label:<44}{on / MIB:>14.1f}{plain / MIB:>11.1f}{on / base['recompute']:>10.3f}x{paper:>18}"
        )
    tds = saved["tds_clip"]
    for knob in RECOMPUTE_KNOBS:
        lines.append(
            f"  model.{knob} saves TDS-CLIP {(tds[f'without_{knob}']['total'] - tds['recompute']['total']) / MIB:.1f} MiB"
        )
    unfused = saved["st_adapter"]["unfused_attention"]["total"] - saved["st_adapter"]["recompute"]["total"]
    lines.append(
        f"  ST-Adapter with unfused attention in CLIP (attention matrices kept) keeps {unfused / MIB:.1f} MiB more: "
        f"TDS-CLIP / ST-Adapter {keys['activation_ratio_vs_st_adapter_unfused']:.3f}x"
    )
    lines.append(f"  frozen CLIP keeps {keys['backbone_saved_bytes']:.0f} bytes in the side-network variants")
    for key, label in (
        ("conv_baseline", "3D-conv baseline"),
        ("st_adapter", "ST-Adapter"),
        ("full_ft", "full fine-tuning"),
    ):
        alone = (
            f", {label} as the CLIP model alone {keys[f'activation_ratio_vs_{key}_clip_alone']:.3f}x"
            if key != "conv_baseline"
            else ""
        )
        paper = f"   (paper, inference: {PAPER_SME_VS_ST:.2f} = 8.799 / 23.671)" if key == "st_adapter" else ""
        lines.append(
            f"  TDS-CLIP / {label}: {keys[f'activation_ratio_vs_{key}']:.3f}x, "
            f"plain path {keys[f'activation_ratio_vs_{key}_plain']:.3f}x{alone}{paper}"
        )
    return lines


@register("activation", "bytes kept for backward per training step, per variant, recompute on and plain")
def activation(options: Options) -> Result:
    frames = 8
    saved = saved_bytes(frames, options.batch)
    keys = ratios(saved)
    targets = [
        Target(
            "backbone_saved_bytes", keys["backbone_saved_bytes"], "==", 0, "the frozen CLIP keeps nothing for backward"
        ),
        Target(
            "activation_ratio_vs_conv_baseline",
            keys["activation_ratio_vs_conv_baseline"],
            "<=",
            1.10,
            "TD + SME keeps at most 1.10x the 3D-conv baseline's activations",
        ),
    ]
    details = {
        "frames": frames,
        "batch": options.batch,
        "saved_bytes": saved,
        "paper_sme_vs_st_adapter": PAPER_SME_VS_ST,
        "paper_table_xii_gib": {n: VARIANTS[n].paper_gib for n in TABLE_XII},
    }
    return Result(keys=keys, targets=targets, report=report(saved, keys, frames, options.batch), details=details)
