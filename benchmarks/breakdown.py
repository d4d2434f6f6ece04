"""Breakdown section: where a TDS-CLIP training step spends its time, per op class, beside its FLOPs.

One training step (forward, loss, backward, AdamW) of TD + SME at ViT-B/16 and the frozen CLIP's
forward alone are profiled (torch.profiler, self time of each aten op). Each op falls in one class:
matmul, convolution, attention, normalisation, elementwise, copies/layout, or other (allocation,
autograd bookkeeping, the optimiser's own small ops). The step's ops are split by phase: those run
inside the frozen CLIP's modules (its forward within the step), the side network's forward (the
rest of the forward), the backward, and the optimiser step. The FLOP floor is the step's
multiply-adds (forward and backward, torch's FlopCounterMode) over the frozen forward's: what the
step/frozen ratio would be if every multiply-add ran at the frozen forward's speed. Profiling adds
a little time to every op, most to the smallest, so the step section's ratio is the one to quote;
this section says where the difference from the floor goes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.sections import Options, Result, register
from benchmarks.step import step_inputs
from benchmarks.variants import config
from tdsclip.model.backbone import CLIPBackbone, build_backbone
from tdsclip.model.build import build_model
from tdsclip.train.optim import build_optimizer

CLASSES = ("matmul", "convolution", "attention", "normalisation", "elementwise", "copies/layout", "other")
PHASES = ("frozen_forward", "side_forward", "side_backward", "optimizer")
FROZEN_RANGE = "tdsclip.frozen"

_PATTERNS = (  # first match wins; ops are aten names without the namespace
    ("attention", r"_?(scaled_dot_product|native_multi_head_attention|transform_bias_rescale_qkv|_?softmax)"),
    ("matmul", r"(addmm|mm|bmm|baddbmm|addbmm|matmul|linear|addmv|mv)(_backward)?_?$"),
    ("convolution", r"_?(convolution|mkldnn_convolution|slow_conv|conv_depthwise|conv\d)"),
    ("normalisation", r"_?(native_)?(batch_norm|layer_norm|group_norm)"),
    ("copies/layout", r"_?(copy_|clone|contiguous|cat|to_copy|constant_pad_nd|index|stack|pad|unfold)"),
    (
        "elementwise",
        r"_?(foreach_)?(add|sub|mul|div|gelu|sigmoid|tanh|max_pool|avg_pool|mean|sum|where|neg|exp|log|sqrt|rsqrt|pow|"
        r"lerp|addcmul|addcdiv|maximum|minimum|threshold|fill_|zero_|masked_fill|clamp|nll_loss|log_softmax|sign|abs)",
    ),
)


def op_class(name: str) -> str:
    """The class of an aten op's name, e.g. 'aten::addmm' -> 'matmul'; 'other' when none fits."""
    op = name.removeprefix("aten::")
    return next((cls for cls, pattern in _PATTERNS if re.match(pattern, op)), "other")


def _ranged(modules: list[nn.Module], label: str) -> Callable[[], None]:
    """Run every call of `modules` inside a profiler range named `label`; returns the undo."""
    open_ranges: list[record_function] = []

    def enter(*_: object) -> None:
        open_ranges.append(record_function(label))
        open_ranges[-1].__enter__()

    def leave(*_: object) -> None:
        open_ranges.pop().__exit__(None, None, None)

    handles = [h for m in modules for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    return lambda: [h.remove() for h in handles]


def _self_ms(events, inside: str | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Self CPU ms per class of the aten ops in `events`, split into those under range `inside`
    (first dict) and the rest (second)."""
    within: dict[str, float] = defaultdict(float)
    outside: dict[str, float] = defaultdict(float)
    for event in events:
        if event.name == inside:
            continue
        cls = op_class(event.name) if event.name.startswith("aten::") else "other"
        parent, under = event.cpu_parent, False
        while parent is not None and inside is not None:
            if parent.name == inside:
                under = True
                break
            parent = parent.cpu_parent
        (within if under else outside)[cls] += event.self_cpu_time_total / 1000
    return dict(within), dict(outside)


def _profiled(fn: Callable[[], object]):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.events()


def _macs(fn: Callable[[], object]) -> dict[str, float]:
    """Multiply-adds per class of running `fn` (forward and whatever backward it runs)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    out: dict[str, float] = defaultdict(float)
    for op, flops in counter.get_flop_counts()["Global"].items():
        out[op_class(f"aten::{op.__name__.split('.')[0]}")] += flops / 2
    return dict(out)


def meta_macs(cfg, frames: int, batch: int) -> tuple[dict[str, float], dict[str, float]]:
    """Multiply-adds per class of the frozen forward and of a training step's forward and backward,
    counted on the meta device. On the CPU without grad, CLIP's attention takes PyTorch's fused fast
    path, whose projections FlopCounterMode does not see; on meta it runs as plain ops."""
    model = build_model(cfg.model, "meta").train()
    m = cfg.model.sme_window
    clips = torch.empty(batch, 3, frames, m, 224, 224, device="meta")
    centre = torch.empty(batch * frames, 3, 224, 224, device="meta")
    with torch.no_grad():
        frozen = _macs(lambda: model.backbone(centre, num_frames=frames))
    step = _macs(lambda: model(clips).sum().backward())
    return frozen, step


def breakdown(frames: int, batch: int) -> dict[str, object]:
    """Milliseconds per op class and phase of one TD + SME training step and of the frozen
    forward, and the multiply-adds of both."""
    cfg = config("tds_clip", frames)
    clips, centre, labels = step_inputs(frames, batch, torch.device("cpu"))
    backbone = build_backbone("ViT-B-16")
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    optimizer = build_optimizer(model, cfg.optim)

    def frozen() -> None:
        with torch.no_grad():
            backbone(centre, num_frames=frames)

    def forward() -> torch.Tensor:
        return F.cross_entropy(model(clips), labels, label_smoothing=0.1)

    def step() -> None:
        forward().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):  # warm-up: allocator, kernels, the optimiser's state
        frozen()
        step()
    frozen_modules = [sub for mod in model.modules() if isinstance(mod, CLIPBackbone) for sub in mod.modules()]
    undo = _ranged(frozen_modules, FROZEN_RANGE)
    try:
        ms_frozen_alone = _self_ms(_profiled(frozen))[1]
        loss: list[torch.Tensor] = []
        ms_frozen_in_step, ms_side_forward = _self_ms(_profiled(lambda: loss.append(forward())), FROZEN_RANGE)
    finally:
        undo()
    ms_backward = _self_ms(_profiled(loss.pop().backward))[1]
    ms_optimizer = _self_ms(_profiled(optimizer.step))[1]
    optimizer.zero_grad(set_to_none=True)

    macs_frozen, macs_step = meta_macs(cfg, frames, batch)
    return {
        "ms": {
            "frozen_alone": ms_frozen_alone,
            "frozen_forward": ms_frozen_in_step,
            "side_forward": ms_side_forward,
            "side_backward": ms_backward,
            "optimizer": ms_optimizer,
        },
        "macs": {"frozen_alone": macs_frozen, "step": macs_step},
    }


def keys_of(measured: dict[str, object]) -> dict[str, float]:
    ms, macs = measured["ms"], measured["macs"]
    frozen = sum(ms["frozen_alone"].values())
    step = sum(sum(ms[phase].values()) for phase in PHASES)
    keys = {
        "breakdown_step_ratio": step / frozen,
        "breakdown_flop_floor_ratio": sum(macs["step"].values()) / sum(macs["frozen_alone"].values()),
        "breakdown_frozen_ms": frozen,
    }
    for phase in PHASES:
        keys[f"breakdown_{phase}_ms"] = sum(ms[phase].values())
    return keys


def report(measured: dict[str, object], keys: dict[str, float], header: str) -> list[str]:
    ms, macs = measured["ms"], measured["macs"]
    frozen_macs = sum(macs["frozen_alone"].values())
    lines = [
        header,
        f"  {'op class':<15}{'frozen alone':>13}{'frozen in step':>15}{'side fwd':>10}{'side bwd':>10}"
        f"{'optimizer':>10}{'step / frozen':>14}{'GMAC in step':>13}",
    ]
    frozen_total = keys["breakdown_frozen_ms"]
    for cls in CLASSES:
        row = [ms[p].get(cls, 0.0) for p in ("frozen_alone", *PHASES)]
        if not any(row):
            continue
        share = sum(row[1:]) / frozen_total
        lines.append(
            f"  {cls:<15}{row[0]:>11.0f}ms{row[1]:>13.0f}ms{row[2]:>8.0f}ms{row[3]:>8.0f}ms{row[4]:>8.0f}ms"
            f"{share:>13.3f}x{macs['step'].get(cls, 0.0) / 1e9:>13.1f}"
        )
    totals = [keys["breakdown_frozen_ms"], *(keys[f"breakdown_{p}_ms"] for p in PHASES)]
    lines.append(
        f"  {'total':<15}{totals[0]:>11.0f}ms{totals[1]:>13.0f}ms{totals[2]:>8.0f}ms{totals[3]:>8.0f}ms"
        f"{totals[4]:>8.0f}ms{keys['breakdown_step_ratio']:>13.3f}x{sum(macs['step'].values()) / 1e9:>13.1f}"
    )
    lines.append(
        f"  FLOP floor {keys['breakdown_flop_floor_ratio']:.3f}x: the step's multiply-adds (forward and backward, "
        f"{sum(macs['step'].values()) / 1e9:.1f} G) over the frozen forward's ({frozen_macs / 1e9:.1f} G), the step / "
        f"frozen ratio if every multiply-add ran at the frozen forward's speed; measured here "
        f"{keys['breakdown_step_ratio']:.3f}x (profiled; the step section's ratio is the one to quote)"
    )
    return lines


@register("breakdown", "one TDS-CLIP step profiled per op class and phase, beside its FLOP floor")
def breakdown_section(options: Options) -> Result:
    frames = options.pick("frames", 8, 8)
    measured = breakdown(frames, options.batch)
    keys = keys_of(measured)
    header = (
        f"breakdown: TD + SME (TDS-CLIP), ViT-B/16, {frames} frames, {options.batch} clip(s), fp32, "
        f"{torch.get_num_threads()} threads; self CPU ms per op class (torch.profiler), one step after warm-up"
    )
    return Result(keys=keys, report=report(measured, keys, header), details={"frames": frames, **measured})
