"""Measure a model: parameters, FLOPs per view, activation memory, CUDA peak memory.

    python -m tdsclip.measure [--preset P] --backbone ViT-B-16 --frames 8 [key=value ...] [--batch N] [--json]

--preset resolves the config as `python -m tdsclip.train` does (paper by default), e.g.
`--preset released-code model.backbone=ViT-L-14 model.num_classes=400` for the authors' L/14 K400 model.

Conventions (printed with every measurement):
- FLOPs count one multiply-add as one FLOP, the convention of the paper's TFLOPs column
  (torch's FlopCounterMode counts 2 per multiply-add; we halve it). One view is one clip of
  `data.frames` frames at `data.input_size` pixels.
- FLOPs, parameters and saved activations are computed on the meta device: no weight is
  allocated and nothing is computed, so even ViT-L/14 at 16 frames takes well under a second.
- Saved activations are the bytes autograd keeps for backward in one training forward
  (saved-tensor hooks, each storage counted once, parameters excluded), split into those saved
  inside the CLIP backbone (zero whenever it is frozen and no SME placement feeds it) and those
  saved by the trainable side network. On the meta device attention is counted as the fused
  kernel the CPU and CUDA devices run (it keeps q, k, v, the output and the log-sum-exp, no
  attention matrix), not as the unfused maths PyTorch would otherwise dispatch there.
- On a CUDA device, peak allocated memory of one training step (forward, backward, AdamW step)
  and of one inference forward at `--batch` clips, with the run's precision.

The model is TDS-CLIP or any variant of it (model.* keys, see tdsclip/config.py); weights are
random, since none of these numbers depends on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tdsclip.config import ConfigError, RunConfig
from tdsclip.presets import PRESETS, resolve
from tdsclip.private_api import flash_attention_cpu, storage_id

if TYPE_CHECKING:
    import torch
    from torch import nn

# torch is imported inside the functions that use it, so `python -m tdsclip.measure --help` and a
# bad argument answer without loading it (several seconds).

FLOP_CONVENTION = "one multiply-add counted as one FLOP, the paper's TFLOPs convention"


@dataclass(frozen=True)
class SavedActivations:
    """Bytes of activations saved for backward, by where they were saved."""

    total: int
    frozen: int
    trainable: int


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; shared parameters are counted once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def count_macs(forward: Callable[[], object]) -> int:
    """Multiply-adds of calling `forward()` (conv, linear, matmul and attention ops)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        forward()
    return counter.get_total_flops() // 2


def _storage_key(tensor: torch.Tensor) -> int:
    # One id per storage on every device, the meta device included. Saved storages stay alive
    # until the graph is freed, so an id is not reused while it is counted.
    return storage_id(tensor)


@contextmanager
def fused_attention_on_meta() -> Iterator[None]:
    """Count attention on the meta device as the fused kernel real devices run.

    On meta tensors PyTorch dispatches `F.scaled_dot_product_attention` to the unfused maths,
    which keeps the (L x L) attention matrices for backward; the CPU (flash kernel) and CUDA
    (flash or memory-efficient kernels) keep q, k, v, the output and the log-sum-exp only. Inside
    this context, meta calls without mask or dropout run the CPU flash kernel's meta function, so
    meta measurements equal a real CPU step's (tested). The module attribute is replaced rather
    than a TorchFunctionMode used, because a mode cannot see the call nested inside
    `F.multi_head_attention_forward` (CLIP's attention), which it handles itself.
    """
    import torch.nn.functional as F

    plain = F.scaled_dot_product_attention

    def fused(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if query.device.type == "meta" and query.ndim == 4 and attn_mask is None and not dropout_p and not enable_gqa:
            return flash_attention_cpu(query, key, value, is_causal=is_causal, scale=scale)
        return plain(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)

    F.scaled_dot_product_attention = fused
    try:
        yield
    finally:
        F.scaled_dot_product_attention = plain


def saved_activation_bytes(
    forward: Callable[[], object], model: nn.Module, frozen: Iterable[nn.Module] = ()
) -> SavedActivations:
    """Bytes autograd saves for backward while `forward()` runs, split frozen/trainable.

    A tensor counts as frozen when it is saved while any module in `frozen`, or any of their
    submodules, is running (submodules count too: a module may be driven part by part, as the
    CLIP backbone is through `iter_blocks`).
    """
    import torch

    exclude = {_storage_key(t) for t in list(model.parameters()) + list(model.buffers())}
    depth = 0
    saved: dict[int, tuple[int, bool]] = {}

    def enter(*_):
        nonlocal depth
        depth += 1

    def leave(*_):
        nonlocal depth
        depth -= 1

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key not in exclude and key not in saved:
            saved[key] = (tensor.untyped_storage().nbytes(), depth > 0)
        return tensor

    handles = []
    for module in {id(m): m for part in frozen for m in part.modules()}.values():
        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave, always_call=True))
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            output = forward()
        del output
    finally:
        for handle in handles:
            handle.remove()
    frozen_bytes = sum(n for n, is_frozen in saved.values() if is_frozen)
    total = sum(n for n, _ in saved.values())
    return SavedActivations(total=total, frozen=frozen_bytes, trainable=total - frozen_bytes)


def _scalar(output: object) -> torch.Tensor | None:
    """A scalar to call backward on, from a tensor or a list of tensors; None if nothing has grad."""
    import torch

    tensors = [output] if isinstance(output, torch.Tensor) else list(output)
    parts = [t.float().sum() for t in tensors if isinstance(t, torch.Tensor) and t.requires_grad]
    return torch.stack(parts).sum() if parts else None


def cuda_peak_bytes(
    model: nn.Module, make_input: Callable[[], torch.Tensor], train: bool, precision: str = "bf16"
) -> int:
    """Peak allocated CUDA memory of one training step (forward, backward, AdamW) or one inference forward."""
    import torch

    device = next(model.parameters()).device
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = torch.autocast("cuda", dtype=dtype) if dtype is not None else nullcontext()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable) if train and trainable else None
    inputs = make_input()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    model.train(train)
    with ExitStack() as stack:
        stack.enter_context(autocast)
        if not train:
            stack.enter_context(torch.no_grad())
        output = model(inputs)
    if train:
        loss = _scalar(output)
        if loss is not None:
            loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    del output
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))


# ----------------------------------------------------------------------------- the model of a config


def bare_backbone(backbone: nn.Module) -> nn.Module:
    """The CLIP backbone alone, fed the centre frames of the clips (--backbone-only)."""
    from torch import nn

    class BareBackbone(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, clips: torch.Tensor) -> list[torch.Tensor]:
            b, c, t, m, h, w = clips.shape
            return self.backbone(clips[:, :, :, m // 2].transpose(1, 2).reshape(b * t, c, h, w), num_frames=t)

    return BareBackbone()


def _build(cfg: RunConfig, device: str | torch.device, backbone_only: bool = False) -> nn.Module:
    """The model a config describes, with random weights (measurements need no real ones)."""
    from tdsclip.model.build import build_model

    model = build_model(dataclasses.replace(cfg.model, weights=""), device)
    if backbone_only:
        model = bare_backbone(model.backbone)
    size = model.backbone.image_size[0]
    if (cfg.data.input_size, cfg.data.input_size) != tuple(model.backbone.image_size):
        raise ConfigError(
            f"data.input_size={cfg.data.input_size} but {cfg.model.backbone} takes {size} px frames; "
            f"set data.input_size={size}"
        )
    return model


def _clips(cfg: RunConfig, batch: int, device: str | torch.device) -> torch.Tensor:
    """`batch` views: (batch, 3, T, m, S, S), T = data.frames, m = model.sme_window."""
    import torch

    size = cfg.data.input_size
    return torch.randn(batch, 3, cfg.data.frames, cfg.model.sme_window, size, size, device=device)


def _backbone_parts(model: nn.Module) -> list[nn.Module]:
    from tdsclip.model.backbone import CLIPBackbone

    return [m for m in model.modules() if isinstance(m, CLIPBackbone)]


def model_saved_activations(
    cfg: RunConfig, batch: int = 1, model: nn.Module | None = None, fused_attention: bool = True
) -> SavedActivations:
    """Bytes one training forward of the model `cfg` describes keeps for backward at `batch`
    clips, computed on the meta device (`model`: one already built there by `_build`).
    fused_attention=False counts attention as unfused maths that keeps its attention matrices."""
    model = (model if model is not None else _build(cfg, "meta")).train()
    clips = _clips(cfg, batch, "meta")
    with fused_attention_on_meta() if fused_attention else nullcontext():
        return saved_activation_bytes(lambda: model(clips), model, _backbone_parts(model))


def measure(cfg: RunConfig, batch: int = 1, cuda: bool | None = None, backbone_only: bool = False) -> dict[str, object]:
    """Every measurement of the model `cfg` describes, as one flat dict (the --json output).

    backbone_only measures the bare CLIP backbone of the config instead of the whole model.
    """
    import torch

    from tdsclip.model.build import describe

    if batch < 1:
        raise ConfigError(f"--batch: expected >= 1, got {batch}")
    model = _build(cfg, "meta", backbone_only)
    trainable, total = count_parameters(model)
    view = _clips(cfg, 1, "meta")
    with torch.no_grad():
        macs = count_macs(lambda: model(view))
    saved = model_saved_activations(cfg, batch, model)
    result: dict[str, object] = {
        "backbone": cfg.model.backbone,
        "model": f"{cfg.model.backbone} backbone alone ({cfg.model.backbone_tuning})"
        if backbone_only
        else describe(cfg.model),
        "backbone_gets_gradients": cfg.model.backbone_gets_gradients,
        "frames": cfg.data.frames,
        "input_size": cfg.data.input_size,
        "trainable_params": trainable,
        "total_params": total,
        "gflops_per_view": macs / 1e9,
        "flop_convention": FLOP_CONVENTION,
        "batch": batch,
        "saved_activation_bytes": saved.total,
        "saved_activation_bytes_frozen": saved.frozen,
        "saved_activation_bytes_trainable": saved.trainable,
        "saved_activation_dtype": "float32",
        "cuda_device": None,
        "cuda_peak_train_bytes": None,
        "cuda_peak_inference_bytes": None,
    }
    if cuda is None:
        cuda = torch.cuda.is_available()
    if cuda:
        if not torch.cuda.is_available():
            raise ConfigError("--cuda: no CUDA device is available here")
        gpu_model = _build(cfg, "cuda", backbone_only)
        make = lambda: _clips(cfg, batch, "cuda")
        result["cuda_device"] = torch.cuda.get_device_name()
        result["cuda_peak_inference_bytes"] = cuda_peak_bytes(
            gpu_model, make, train=False, precision=cfg.train.precision
        )
        result["cuda_peak_train_bytes"] = cuda_peak_bytes(gpu_model, make, train=True, precision=cfg.train.precision)
    return result


def _bytes(n: object) -> str:
    if n is None:
        return "not measured"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_measurement(m: dict[str, object]) -> str:
    gflops = float(m["gflops_per_view"])
    cuda = m["cuda_device"] or "no CUDA device"
    lines = [
        f"model            {m['model']}",
        f"view             {m['frames']} frames x {m['input_size']} px",
        f"parameters       trainable {int(m['trainable_params']) / 1e6:.2f} M | total {int(m['total_params']) / 1e6:.2f} M",
        f"FLOPs per view   {gflops:.4g} GFLOPs = {gflops / 1e3:.4g} TFLOPs ({FLOP_CONVENTION})",
        f"saved for backward, {m['batch']} clip(s), {m['saved_activation_dtype']}: total {_bytes(m['saved_activation_bytes'])}"
        f" | CLIP backbone {_bytes(m['saved_activation_bytes_frozen'])} | trainable {_bytes(m['saved_activation_bytes_trainable'])}",
        f"CUDA peak ({cuda})  train step {_bytes(m['cuda_peak_train_bytes'])} | inference {_bytes(m['cuda_peak_inference_bytes'])}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tdsclip.measure",
        description="Parameters, FLOPs per view, activation and CUDA memory of a model config.",
        epilog="Any config key can be set as key=value, e.g. model.num_classes=400 data.input_size=224.",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument(
        "--preset", default="paper", help=f"recipe the config resolves with: {', '.join(PRESETS)} (default paper)"
    )
    parser.add_argument("--backbone", help="shorthand for model.backbone=NAME (default ViT-B-16)")
    parser.add_argument("--frames", type=int, help="shorthand for data.frames=N (default 8)")
    parser.add_argument("--batch", type=int, default=1, help="clips per step for the memory measurements (default 1)")
    parser.add_argument(
        "--cuda",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure CUDA peak memory (default: when a CUDA device is present)",
    )
    parser.add_argument(
        "--backbone-only", action="store_true", help="measure the bare CLIP backbone, not the whole model"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    from tdsclip.model.weights import WeightsError  # imports torch: after the arguments are read

    overrides = list(args.overrides)
    if args.backbone is not None:
        overrides.append(f"model.backbone={args.backbone}")
    if args.frames is not None:
        overrides.append(f"data.frames={args.frames}")
    try:
        cfg = resolve(args.preset, overrides)
        result = measure(cfg, batch=args.batch, cuda=args.cuda, backbone_only=args.backbone_only)
    except (ConfigError, WeightsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else format_measurement(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
