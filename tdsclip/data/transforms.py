"""Table XIII's augmentation, with one set of random parameters per clip.

Training (`TrainTransform`): resize (SS: 256 x 320, K400: short side 256), random resized crop to
224 (area 0.08-1, ratio 3/4-4/3), horizontal flip (0.5), RandAugment in timm's string format,
grayscale (0.2 on K400), CLIP normalisation. Every frame of a clip gets the same crop, flip,
RandAugment operations and magnitudes and grey decision, so frame differences (what the SME stem
and the TD-Adapters see) stay differences of motion, not of augmentation. The resize and the crop
are one resampling: the crop box is drawn on the resized size and mapped back to the frame.
A flip swaps the labels of classes it mirrors (`flip_pairs`, found by name).

Evaluation (`EvalTransform`): the same resize, then 1 centre crop or 3 crops (left, centre, right;
top, centre, bottom for portrait frames) of 224 along the longer side.

Input: uint8 frames (F, H, W, 3). Output: float32 (3, F, S, S), or (crops, 3, F, S, S).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2 import functional as F

from tdsclip.data.errors import DataError

CROP_AREA = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
MEAN = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)


def resized_shape(height: int, width: int, resize: Sequence[int]) -> tuple[int, int]:
    """(height, width) after the resize: (h, w) as given, or the short side scaled to resize[0]."""
    if len(resize) == 2:
        return int(resize[0]), int(resize[1])
    scale = resize[0] / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def normalise(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (F, 3, H, W) -> CLIP-normalised float32 (3, F, H, W)."""
    return ((frames.float() / 255 - MEAN) / STD).permute(1, 0, 2, 3).contiguous()


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise DataError(f"frames: expected uint8 (frames, height, width, 3), got {frames.dtype} {frames.shape}")
    with warnings.catch_warnings():  # read_frames may hand over decord's read-only buffer; nothing here writes to it
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)


class TrainTransform:
    """Random resized crop, flip with label swap, RandAugment, grayscale, normalisation; the
    random draws come from torch's generator (seeded per DataLoader worker)."""

    def __init__(
        self,
        size: int = 224,
        resize: Sequence[int] = (256, 320),
        randaugment: str = "",
        flip: float = 0.5,
        grayscale: float = 0.0,
        flip_labels: dict[int, int] | None = None,
        crop_area: Sequence[float] = CROP_AREA,
    ) -> None:
        self.size, self.resize, self.flip, self.grayscale = size, tuple(resize), flip, grayscale
        self.crop_area = list(crop_area)
        self.flip_labels = dict(flip_labels or {})
        self.randaugment = _randaugment(randaugment, size) if randaugment else None

    def __call__(self, frames: np.ndarray, label: int) -> tuple[torch.Tensor, int]:
        clip = _to_tensor(frames)
        height, width = clip.shape[-2:]
        rh, rw = resized_shape(height, width, self.resize)
        top, left, box_h, box_w = RandomResizedCrop.get_params(torch.empty(0, rh, rw), self.crop_area, list(CROP_RATIO))
        sy, sx = height / rh, width / rw
        clip = F.resized_crop(
            clip,
            round(top * sy),
            round(left * sx),
            max(1, round(box_h * sy)),
            max(1, round(box_w * sx)),
            [self.size, self.size],
            antialias=True,
        )
        if torch.rand(()) < self.flip:
            clip = clip.flip(-1)
            label = self.flip_labels.get(label, label)
        if self.randaugment is not None:
            clip = self._randaugment(clip)
        if torch.rand(()) < self.grayscale:
            clip = F.rgb_to_grayscale(clip, num_output_channels=3)
        return normalise(clip), label

    def _randaugment(self, clip: torch.Tensor) -> torch.Tensor:
        """timm's RandAugment on each frame with the same draws: its ops take their randomness from
        Python's and NumPy's global generators, so both are seeded alike before every frame (from
        torch's generator) and restored afterwards."""
        seed = int(torch.randint(2**31 - 1, ()))
        saved = random.getstate(), np.random.get_state()
        try:
            frames = []
            for frame in clip.permute(0, 2, 3, 1).numpy():
                random.seed(seed)
                np.random.seed(seed)
                frames.append(np.asarray(self.randaugment(Image.fromarray(frame))))
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


def _randaugment(config: str, size: int):
    from timm.data.auto_augment import rand_augment_transform

    hparams = {"translate_const": int(size * 0.45), "img_mean": tuple(round(255 * m) for m in OPENAI_DATASET_MEAN)}
    try:
        return rand_augment_transform(config, hparams)
    except (AssertionError, ValueError, KeyError) as error:
        raise DataError(
            f"randaugment {config!r}: expected timm's format like 'rand-m7-n4-mstd0.5-inc1' ({error})"
        ) from None


class EvalTransform:
    """Resize, then 1 centre crop or 3 crops along the longer side; normalisation."""

    def __init__(self, size: int = 224, resize: Sequence[int] = (256, 320), crops: int = 1) -> None:
        if crops not in (1, 3):
            raise DataError(f"test crops: expected 1 or 3, got {crops}")
        self.size, self.resize, self.crops = size, tuple(resize), crops

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        clip = _to_tensor(frames)
        rh, rw = resized_shape(*clip.shape[-2:], self.resize)
        if min(rh, rw) < self.size:
            raise DataError(
                f"resize {self.resize} gives {rh}x{rw} frames, smaller than the {self.size} px crop: "
                f"expected a resize of at least {self.size}"
            )
        clip = F.resize(clip, [rh, rw], antialias=True)
        views = [
            normalise(clip[..., top : top + self.size, left : left + self.size]) for top, left in self._corners(rh, rw)
        ]
        return torch.stack(views)

    def _corners(self, height: int, width: int) -> list[tuple[int, int]]:
        centre = ((height - self.size) // 2, (width - self.size) // 2)
        if self.crops == 1:
            return [centre]
        if width >= height:
            return [(centre[0], 0), centre, (centre[0], width - self.size)]
        return [(0, centre[1]), centre, (height - self.size, centre[1])]
