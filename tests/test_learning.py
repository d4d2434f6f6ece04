"""Proof that the model learns what it should: motion, in order, on the synthetic dataset.

The smoke preset trains the tiny TDS-CLIP on the synthetic motion dataset (classes that differ
only in motion; any single frame is uninformative). It must reach 90% validation top-1; the same
model must be near chance on clips whose T x m frames are shuffled (no motion left), and on
time-reversed clips it must mostly predict the class of the opposite motion. Trained through
`python -m experiments.run fig5 --preset smoke`, whose '+ SME-Adapter' row is the smoke preset's
run, so the same training also checks Fig. 5: with the SME-Adapter, the side network's activation
maps put more of their mass inside the moving object's box than without it.
"""

import json

import pytest
import torch

from tdsclip.config import to_dict
from tdsclip.data.dataset import build_dataset, collate
from tdsclip.data.synth import opposite_classes
from tdsclip.model.build import build_model
from tdsclip.presets import resolve
from tdsclip.train import checkpoint as ckpt

pytestmark = pytest.mark.slow  # trains the smoke preset twice (minutes)

SMOKE_THREADS = 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Fig. 5 in the smoke preset: it trains Table III's '+ TD-Adapter' row and its '+ SME-Adapter'
    row, which is the smoke preset itself (one run), then draws both rows' activation maps."""
    from experiments.run import main

    root = tmp_path_factory.mktemp("smoke")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    mp.setenv("TDSCLIP_CACHE", str(root / "cache"))
    # The recipe's figures are measured at 2 intra-op threads, which is also what a fresh process
    # gets on a 2-core machine; another count reduces in another order and rounds differently.
    threads = torch.get_num_threads()
    torch.set_num_threads(SMOKE_THREADS)
    try:
        assert main(["fig5", "--preset", "smoke", "--runs-dir", str(root / "runs")]) == 0
        cfg = resolve("smoke")
        (summary,) = (root / "runs" / "figures").glob("fig5-smoke-*/summary.json")
        summary = json.loads(summary.read_text())
        run_dir = root / "runs" / summary["rows"]["with SME"]["run_id"]
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model)  # same seed as the run: the random frozen backbone is identical
        ckpt.load_model_state(model, ckpt.load(run_dir / ckpt.LATEST)["model"], "smoke")
        val = build_dataset(cfg.data, "val", cfg.model.sme_window)
        batch = collate([val[i] for i in range(len(val))])
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    assert json.loads((run_dir / "result.json").read_text())["config"] == to_dict(cfg), "the smoke preset's own run"
    return cfg, run_dir / "result.json", model.eval(), batch, summary


def test_smoke_preset_reaches_90_percent(trained):
    cfg, result_path, _, batch, _ = trained
    result = json.loads(result_path.read_text())
    assert result["metrics"]["test_videos"] >= 60 and cfg.model.num_classes >= 6
    # Measured with this recipe: 95.8 at 2 threads, 94.8 at 1 (docs/training.md: Presets); 90 fails only on a regression.
    assert result["metrics"]["val_top1_best"] >= 90.0, result["metrics"]
    assert result["torch_threads"] == SMOKE_THREADS, "the thread count the recipe's figures were measured at"
    assert len(batch.labels) >= 60


def _predict(model, clips):
    with torch.no_grad():
        return torch.cat([model(part).argmax(1) for part in clips.split(32)])


def test_shuffled_frames_score_near_chance(trained):
    cfg, _, model, batch, _ = trained
    clips = batch.clips  # (N, 3, T, m, H, W)
    n, c, t, m, h, w = clips.shape
    generator = torch.Generator().manual_seed(0)
    shuffled = torch.stack(
        [
            clip.reshape(c, t * m, h, w)[:, torch.randperm(t * m, generator=generator)].reshape(c, t, m, h, w)
            for clip in clips
        ]
    )
    accuracy = (_predict(model, shuffled) == batch.labels).float().mean().item()
    assert accuracy <= 1 / cfg.model.num_classes + 0.15, accuracy


def test_time_reversed_clips_get_the_opposite_motion(trained):
    cfg, _, model, batch, _ = trained
    reversed_clips = batch.clips.flip(2).flip(3)  # every one of the T x m frames in reverse order
    opposite = torch.tensor([opposite_classes(cfg.model.num_classes)[int(y)] for y in batch.labels])
    agreement = (_predict(model, reversed_clips) == opposite).float().mean().item()
    assert agreement >= 0.70, agreement


def test_fig5_maps_with_sme_put_more_mass_on_the_moving_object(trained):
    *_, summary = trained
    rows = summary["rows"]
    assert "L2 norm" in summary["method"]
    assert rows["with SME"]["box_mass"] > rows["without SME"]["box_mass"], rows
