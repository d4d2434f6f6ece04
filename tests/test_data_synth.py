"""The synthetic motion dataset: real formats that the loaders read back, classes told apart by
motion only, per-frame boxes, left/right pairs for the flip, idempotent cached generation."""

import json
import os

import numpy as np
import pytest

from tdsclip.data.annotations import find_samples, flip_pairs, read_split
from tdsclip.data.errors import DataError
from tdsclip.data.synth import TEMPLATES, SynthSpec, ensure_synthetic, render, trajectory, write_synthetic
from tdsclip.data.video import frame_count


def _fit_and_score(features, labels):
    """Accuracy of a per-class Gaussian classifier, fitted on one half and scored on the other."""
    half = len(labels) // 2
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[:half], order[half:]
    scores = []
    for c in range(len(TEMPLATES)):
        x = features[train][labels[train] == c]
        mean, cov = x.mean(0), np.cov(x.T) + 1e-6 * np.eye(x.shape[1])
        d = features[test] - mean
        scores.append(-0.5 * np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d) - 0.5 * np.linalg.slogdet(cov)[1])
    return float((np.argmax(np.stack(scores, 1), 1) == labels[test]).mean())


def test_a_single_frame_says_nothing_about_the_class_but_two_frames_do():
    rng = np.random.default_rng(0)
    states = [(trajectory(rng, label, 24), label) for label in range(len(TEMPLATES)) for _ in range(500)]
    labels = np.array([label for _, label in states])
    one_frame = np.stack([s[rng.integers(len(s))] for s, _ in states])
    first_and_last = np.stack([np.concatenate([s[0], s[-1]]) for s, _ in states])
    chance = 1 / len(TEMPLATES)
    assert _fit_and_score(one_frame, labels) < chance + 0.05, "object position/size/opacity of one frame"
    assert _fit_and_score(first_and_last, labels) > 0.98


def test_rendered_boxes_follow_the_motion():
    for label, (axis, sign) in [(0, (0, +1)), (1, (0, -1)), (2, (1, -1)), (3, (1, +1))]:
        video, boxes, look = render(np.random.default_rng(label), label, 20, 96, 72)
        assert video.shape == (20, 72, 96, 3) and len(boxes) == 20
        centres = np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for b in boxes])
        assert sign * (centres[-1, axis] - centres[0, axis]) > 15, (label, centres[[0, -1]])
        assert abs(centres[-1, 1 - axis] - centres[0, 1 - axis]) < 1, "the other coordinate stays"
    video, boxes, _ = render(np.random.default_rng(9), 4, 20, 96, 72)  # towards the camera: grows
    assert (boxes[-1][2] - boxes[-1][0]) > 1.5 * (boxes[0][2] - boxes[0][0])


@pytest.mark.parametrize("fmt", ["ssv1", "ssv2", "k400"])
def test_each_format_is_written_as_its_owners_do_and_reads_back(tmp_path, fmt):
    data = write_synthetic(
        SynthSpec(format=fmt, classes=6, videos_per_class=3, frames=12, width=64, height=48), tmp_path / fmt
    )
    boxes = json.loads(open(data.boxes).read())
    for part, expected in (("train", 6 * 2), ("val", 6 * 1)):
        split = read_split(fmt, getattr(data, part), data.labels)
        found = find_samples(split, data.root)
        assert len(found.samples) == expected and not found.missing
        assert len(split.classes) == 6 and sorted({s.label for s in found.samples}) == list(range(6))
        assert flip_pairs(split.classes), "a left/right pair to exercise the label-swapping flip"
        for sample in found.samples:
            frames = frame_count(os.path.join(data.root, sample.path), sample.frames)
            assert 9 <= frames <= 15 and len(boxes[sample.id]["boxes"]) == frames
            assert boxes[sample.id]["class"] == split.classes[sample.label]
    assert {s.frames for s in found.samples} == {fmt == "ssv1"}
    if data.test:
        assert all(e.label == -1 for e in read_split(fmt, data.test, data.labels).entries)


def test_ensure_synthetic_generates_once_and_refuses_to_overwrite(tmp_path):
    spec = SynthSpec(format="ssv2", classes=6, videos_per_class=2, frames=8, width=32, height=32)
    first = ensure_synthetic(tmp_path, spec)
    stamp = os.stat(first.train).st_mtime_ns
    again = ensure_synthetic(tmp_path, spec)
    assert again == first and os.stat(again.train).st_mtime_ns == stamp, "second call reuses the cache"
    assert [p.name for p in (tmp_path / "synthetic").iterdir()] == [os.path.basename(os.path.dirname(first.train))]
    with pytest.raises(DataError, match="already exists: expected a new folder"):
        write_synthetic(spec, os.path.dirname(first.train))
    with pytest.raises(DataError, match="synthetic classes: expected 6 to 8, got 5"):
        SynthSpec(classes=5)


def test_a_coordinate_no_class_moves_rests_visible():
    rng = np.random.default_rng(1)
    six = [trajectory(rng, label, 12, classes=6) for label in range(6) for _ in range(50)]
    assert all(((s[:, 3] >= 0.85) & (s[:, 3] <= 1.0)).all() for s in six), "no fading class: the object stays visible"
    eight = np.concatenate([trajectory(rng, 0, 12, classes=8)[:, 3] for _ in range(200)])
    assert eight.min() < 0.3, "with the fading classes present, opacity follows their law in every class"
