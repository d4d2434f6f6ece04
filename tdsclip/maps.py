"""Activation maps of the side network (the paper's Fig. 5), and how much of a map is on the object.

Method: the per-patch L2 norm of the last side block's output tokens after removing their mean over
the frame's patches, upsampled bilinearly from the patch grid to the frame. On the synthetic
dataset the object's box is known in every frame, so `box_mass` measures how much of a map's mass
falls inside it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tdsclip.config import RunConfig
from tdsclip.data.sampling import eval_indices
from tdsclip.data.transforms import EvalTransform, resized_shape

METHOD = (
    "per-patch L2 norm of the last side block's output tokens after removing their mean over the frame's "
    "patches, bilinearly upsampled from the patch grid to the frame"
)


def side_activation_maps(model: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """(B, T, S, S) maps for clips (B, 3, T, m, S, S), from a forward hook on the last side block."""
    captured: list[torch.Tensor] = []
    hook = model.blocks[-1].register_forward_hook(lambda _m, _i, output: captured.append(output.detach()))
    try:
        with torch.no_grad():
            model.eval()(clips)
    finally:
        hook.remove()
    tokens = captured[-1]  # (B*T, h*w, d)
    b, t, size = clips.shape[0], clips.shape[2], clips.shape[-1]
    gh, gw = model.backbone.grid_size
    # Every patch's output shares a large common component (measured on the trained smoke models, the
    # raw norm is nearly flat: 13.4% of its mass in the object's box with SME, 13.7% without); what
    # sets a patch apart from the rest of its frame is its deviation from the frame's mean token.
    norms = (tokens - tokens.mean(dim=1, keepdim=True)).norm(dim=-1).reshape(b * t, 1, gh, gw)
    return F.interpolate(norms, size=(size, size), mode="bilinear", align_corners=False).reshape(b, t, size, size)


def synthetic_clips(
    cfg: RunConfig, count: int, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, list[int]]:
    """`count` fresh clips from the synthetic generator, prepared as evaluation clips (centre crop):
    clips (N, 3, T, m, S, S), the centre frames (N, T, S, S, 3) uint8, the object's box per frame
    in crop pixels (N, T, 4; NaN where off-frame) and the labels."""
    from tdsclip.data.synth import SynthSpec, render

    spec, data = SynthSpec(), cfg.data
    transform = EvalTransform(data.input_size, data.resize, 1)
    rng = np.random.default_rng([seed, 5])
    clips, frames, boxes, labels = [], [], [], []
    for number in range(count):
        label = number % data.synthetic_classes
        video, box, _ = render(rng, label, spec.frames, spec.width, spec.height, data.synthetic_classes)
        index = eval_indices(len(video), data.frames, cfg.model.sme_window, 1)[0]  # (T, m)
        clip = transform(video[index.reshape(-1)])[0]  # the single crop: (3, T*m, S, S)
        clips.append(clip.reshape(3, data.frames, cfg.model.sme_window, data.input_size, data.input_size))
        centre = index[:, index.shape[1] // 2]
        frames.append(_crop(video[centre], data.input_size, data.resize))
        boxes.append([_box_in_crop(box[i], spec.width, spec.height, data.input_size, data.resize) for i in centre])
        labels.append(label)
    return torch.stack(clips), np.stack(frames), np.asarray(boxes, dtype=np.float64), labels


def dataset_clips(cfg: RunConfig, count: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray, list[int]]:
    """The first `count` validation clips of a real dataset (centre view), their centre frames
    (N, T, S, S, 3) uint8 recovered from the normalised input, no boxes (NaN) and the labels."""
    from tdsclip.data.dataset import build_dataset
    from tdsclip.data.transforms import MEAN, STD

    val = build_dataset(cfg.data, "val", cfg.model.sme_window)
    items = [val[i] for i in range(min(count, len(val)))]
    clips = torch.stack([item.clips[0] for item in items])  # (N, 3, T, m, S, S)
    centre = clips[:, :, :, clips.shape[3] // 2].permute(0, 2, 1, 3, 4)  # (N, T, 3, S, S)
    frames = ((centre * STD + MEAN) * 255).round().clamp(0, 255).byte().permute(0, 1, 3, 4, 2).numpy()
    boxes = np.full((len(items), cfg.data.frames, 4), np.nan)
    return clips, frames, boxes, [int(item.labels[0]) for item in items]


def _geometry(width: int, height: int, size: int, resize: tuple[int, ...]) -> tuple[float, float, int, int]:
    rh, rw = resized_shape(height, width, resize)
    return rw / width, rh / height, (rw - size) // 2, (rh - size) // 2


def _crop(frames: np.ndarray, size: int, resize: tuple[int, ...]) -> np.ndarray:
    """The evaluation centre crop of uint8 frames (n, H, W, 3), unnormalised, for overlays."""
    tensor = torch.from_numpy(frames).permute(0, 3, 1, 2)
    rh, rw = resized_shape(frames.shape[1], frames.shape[2], resize)
    resized = F.interpolate(tensor.float(), size=(rh, rw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (rh - size) // 2, (rw - size) // 2
    return resized[..., top : top + size, left : left + size].round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def _box_in_crop(box: list | None, width: int, height: int, size: int, resize: tuple[int, ...]) -> list[float]:
    if box is None:
        return [np.nan] * 4
    sx, sy, left, top = _geometry(width, height, size, resize)
    x0, y0, x1, y1 = box
    return [
        min(max(x0 * sx - left, 0), size),
        min(max(y0 * sy - top, 0), size),
        min(max(x1 * sx - left, 0), size),
        min(max(y1 * sy - top, 0), size),
    ]


def box_mass(maps: np.ndarray, boxes: np.ndarray) -> float:
    """Mean over frames with a visible object of the fraction of the map's mass inside its box."""
    fractions = []
    for clip_maps, clip_boxes in zip(maps, boxes):
        for frame_map, (x0, y0, x1, y1) in zip(clip_maps, clip_boxes):
            if np.isnan(x0) or x1 - x0 < 1 or y1 - y0 < 1:
                continue
            inside = frame_map[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))].sum()
            fractions.append(float(inside / max(frame_map.sum(), 1e-12)))
    return float(np.mean(fractions)) if fractions else float("nan")
