"""GPU section (--gpu): training speed and peak memory in bf16, and Table XII's inference memory.

On one CUDA device, ViT-B/16, 8 frames, a fixed batch (--gpu-batch, default 8 clips), bf16
autocast (fused attention: SDPA picks flash or memory-efficient kernels for the side network,
the ST-Adapter and full fine-tuning, and the frozen CLIP's no-grad forward runs PyTorch's fused
multi-head attention):
- training clips/s of each variant, from the median step of interleaved rounds, and the step
  ratio over the frozen forward, as the step section measures it on the CPU;
- peak allocated memory (torch.cuda.max_memory_allocated) of one training step, forward to AdamW
  step, and of one inference forward for Table XII's five rows, each model alone on the device.
"""

from __future__ import annotations

import gc
import statistics

import torch

from benchmarks.sections import Options, Result, Target, register
from benchmarks.step import FROZEN, STEP_VARIANTS, step_ratios, step_report, step_targets, step_tasks
from benchmarks.timing import interleaved
from benchmarks.variants import PAPER_SME_VS_ST, TABLE_XII, VARIANTS, config
from tdsclip.measure import cuda_peak_bytes
from tdsclip.model.build import build_model

GIB = 2**30
FRAMES = 8


class NoCudaError(RuntimeError):
    """--gpu on a machine without a usable CUDA device."""


def require_cuda() -> torch.device:
    if not torch.cuda.is_available():
        raise NoCudaError(
            f"--gpu: CUDA is not available here (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda or 'none'})"
        )
    return torch.device("cuda")


def peak_bytes(name: str, batch: int, device: torch.device, train: bool) -> int:
    """Peak allocated bytes of one bf16 training step or inference forward of variant `name`, alone on the device."""
    cfg = config(name, FRAMES)
    model = build_model(cfg.model, device)
    size = cfg.data.input_size
    make = lambda: torch.randn(batch, 3, FRAMES, cfg.model.sme_window, size, size, device=device)
    try:
        return cuda_peak_bytes(model, make, train=train, precision="bf16")
    finally:
        del model
        gc.collect()
        torch.cuda.empty_cache()


@register(
    "gpu", "bf16 training clips/s, peak training and inference memory, step ratio on one CUDA device", needs_gpu=True
)
def gpu(options: Options) -> Result:
    device = require_cuda()
    batch, repeats = options.gpu_batch, options.pick("repeats", 5, 20)
    train_peak = {name: peak_bytes(name, batch, device, train=True) for name in STEP_VARIANTS}
    inference_peak = {name: peak_bytes(name, batch, device, train=False) for name in TABLE_XII}

    times = interleaved(
        step_tasks(STEP_VARIANTS, FRAMES, batch, device, precision="bf16"),
        repeats,
        warmup=3,
        sync=torch.cuda.synchronize,
    ).wall
    ratios = step_ratios(times)
    keys = {f"gpu_{key}": value for key, value in ratios.items()}
    for name, seconds in times.items():
        if name != FROZEN:
            keys[f"gpu_train_clips_per_s_{name}"] = batch / statistics.median(seconds)
    keys.update({f"gpu_train_peak_bytes_{name}": value for name, value in train_peak.items()})
    keys.update({f"gpu_inference_peak_bytes_{name}": value for name, value in inference_peak.items()})
    keys["gpu_inference_ratio_sme_vs_st_adapter"] = inference_peak["tds_clip"] / inference_peak["st_adapter"]
    keys["gpu_train_peak_ratio_vs_st_adapter"] = train_peak["tds_clip"] / train_peak["st_adapter"]

    name = torch.cuda.get_device_name(device)
    report = step_report(
        times,
        ratios,
        f"gpu: {name}, ViT-B/16, {FRAMES} frames, {batch} clips, bf16, median of {repeats} interleaved rounds",
    )
    report.append(f"  {'variant':<48}{'clips/s':>9}{'train peak GiB':>16}")
    for variant in STEP_VARIANTS:
        report.append(
            f"  {VARIANTS[variant].label:<48}{keys[f'gpu_train_clips_per_s_{variant}']:>9.1f}"
            f"{train_peak[variant] / GIB:>16.2f}"
        )
    report.append(f"  {f'Table XII row, inference peak, {batch} clips':<48}{'ours GiB':>10}{'paper GiB':>11}")
    for variant in TABLE_XII:
        report.append(
            f"  {VARIANTS[variant].label:<48}{inference_peak[variant] / GIB:>10.3f}{VARIANTS[variant].paper_gib:>11.3f}"
        )
    report.append(
        f"  TDS-CLIP / ST-Adapter inference peak: {keys['gpu_inference_ratio_sme_vs_st_adapter']:.3f} "
        f"(paper 8.799 / 23.671 = {PAPER_SME_VS_ST:.3f})"
    )
    targets = [Target(f"gpu_{t.key}", t.value, t.op, t.limit, t.claim) for t in step_targets(ratios, "GPU")]
    details = {
        "device": name,
        "batch": batch,
        "frames": FRAMES,
        "repeats": repeats,
        "seconds": times,
        "flash_sdp": torch.backends.cuda.flash_sdp_enabled(),
        "mem_efficient_sdp": torch.backends.cuda.mem_efficient_sdp_enabled(),
    }
    return Result(keys=keys, targets=targets, report=report, details=details)
