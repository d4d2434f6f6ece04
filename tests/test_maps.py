"""Fig. 5's ingredients: rendered clips with the object's box, and the side network's maps."""

import numpy as np
import torch

from tdsclip import maps
from tdsclip.model.build import build_model
from tdsclip.presets import resolve


def test_boxes_follow_the_object_through_resize_and_crop():
    cfg = resolve("smoke")
    clips, frames, boxes, labels = maps.synthetic_clips(cfg, 6)
    assert clips.shape == (6, 3, 8, 3, 64, 64) and frames.shape == (6, 8, 64, 64, 3) and labels == list(range(6))
    inside = total = 0.0
    for clip_frames, clip_boxes in zip(frames.astype(float), boxes):
        for t in range(len(clip_frames) - 1):
            change = np.abs(clip_frames[t + 1] - clip_frames[t]).sum(-1) > 60  # above the sensor noise
            mask = np.zeros_like(change, dtype=bool)
            for x0, y0, x1, y1 in clip_boxes[t : t + 2]:
                if not np.isnan(x0):
                    mask[int(y0) : int(np.ceil(y1)) + 1, int(x0) : int(np.ceil(x1)) + 1] = True
            inside, total = inside + change[mask].sum(), total + change.sum()
    assert inside / total > 0.8, "what changes between frames is where the boxes say the object is"


def test_maps_are_one_per_frame_and_mass_is_a_fraction():
    cfg = resolve("smoke")
    torch.manual_seed(0)
    model = build_model(cfg.model)
    clips, _, boxes, _ = maps.synthetic_clips(cfg, 2)
    out = maps.side_activation_maps(model, clips).numpy()
    assert out.shape == (2, 8, 64, 64) and (out >= 0).all()
    mass = maps.box_mass(out, boxes)
    assert 0 < mass < 1
    assert maps.box_mass(np.ones_like(out), np.array([[[0, 0, 32, 64]] * 8] * 2, dtype=float)) == 0.5


def test_dataset_clips_recover_the_frames(tmp_path):
    cfg = resolve("smoke", ["data.synthetic_videos_per_class=4", f"data.cache_dir={tmp_path}"])
    clips, frames, boxes, labels = maps.dataset_clips(cfg, 3)
    assert clips.shape == (3, 3, 8, 3, 64, 64) and frames.dtype == np.uint8 and np.isnan(boxes).all()
    assert frames.std() > 10 and len(labels) == 3
