"""The trainer's parts: sampling, schedule, multi-view ensembling, checkpoints."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from tdsclip.config import RunConfig, apply_overrides
from tdsclip.model.build import build_model
from tdsclip.train import checkpoint as ckpt
from tdsclip.train.optim import build_optimizer, lr_factor, parameter_groups
from tdsclip.train.sampling import EpochSeeded, ShardedOrder, StepBatches, epoch_order
from tdsclip.train.views import EvaluationError, ViewScores


def test_two_ranks_see_what_one_process_accumulating_two_micro_batches_sees():
    one = list(StepBatches(40, seed=1, epoch=3, batch_size=8, micro_batch=4, rank=0, world_size=1))
    r0 = list(StepBatches(40, seed=1, epoch=3, batch_size=8, micro_batch=4, rank=0, world_size=2))
    r1 = list(StepBatches(40, seed=1, epoch=3, batch_size=8, micro_batch=4, rank=1, world_size=2))
    assert len(one) == 10 and len(r0) == len(r1) == 5
    assert one[0::2] == r0 and one[1::2] == r1
    assert sorted(i for batch in one for _, i in batch) == list(range(40))
    assert epoch_order(1, 3, 40) != epoch_order(1, 4, 40), "each epoch has its own order"
    resumed = list(StepBatches(40, seed=1, epoch=3, batch_size=8, micro_batch=4, rank=0, world_size=1, start_step=2))
    assert resumed == one[4:]
    with pytest.raises(
        ValueError, match="train.batch_size=8 is not a multiple of train.micro_batch x processes = 3 x 1"
    ):
        StepBatches(40, seed=1, epoch=0, batch_size=8, micro_batch=3, rank=0, world_size=1)


def test_each_sample_draws_the_same_randomness_wherever_it_is_loaded():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, index):
            return torch.rand(3) + index

    data = EpochSeeded(Noisy(), seed=7)
    first = data[(2, 5)]
    torch.rand(100)  # whatever happened in between
    assert torch.equal(data[(2, 5)], first)
    assert not torch.equal(data[(3, 5)], first), "another epoch draws other augmentations"


def test_sharded_evaluation_covers_every_video_with_padding():
    shards = [list(ShardedOrder(10, rank, 3)) for rank in range(3)]
    assert all(len(s) == 4 for s in shards)
    assert sorted(set(i for s in shards for i in s)) == list(range(10))


def test_warm_up_then_cosine():
    assert lr_factor(0, 4, 20) == pytest.approx(0.25)
    assert lr_factor(3, 4, 20) == pytest.approx(1.0)
    assert lr_factor(4, 4, 20) == pytest.approx(1.0)
    assert lr_factor(12, 4, 20) == pytest.approx(0.5)
    assert lr_factor(20, 4, 20) == pytest.approx(0.0, abs=1e-12)


def test_only_trainable_parameters_reach_the_optimiser():
    cfg = apply_overrides(RunConfig(), ["model.backbone=tdsclip-tiny", "model.side_width=64", "model.td_reduction=4"])
    model = build_model(cfg.model)
    optimizer = build_optimizer(model, cfg.optim)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    decay, no_decay = parameter_groups(model, 0.15)
    assert all(p.ndim >= 2 for p in decay["params"]) and model.pos in [p for p in no_decay["params"]]


def test_views_are_ensembled_per_video_and_counted_once():
    scores = ViewScores(views=2)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 5.0]])
    scores.add(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1]), logits, torch.tensor([1, 1, 2, 2]))
    scores.add(
        torch.tensor([1]), torch.tensor([1]), torch.tensor([[9.0, 0.0, 0.0]]), torch.tensor([2])
    )  # a padded repeat
    result = scores.result()
    assert result.videos == 2 and result.top1 == 100.0 and result.top5 == 100.0
    ids, labels, per_view = scores.arrays()
    assert per_view.shape == (2, 2, 3) and list(ids) == [0, 1]
    missing = ViewScores(views=2)
    missing.add(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), logits[:3], torch.tensor([1, 2, 2]))
    with pytest.raises(EvaluationError, match=r"1 videos do not have exactly views 0..1 \(video 0: \[0\]\)"):
        missing.result()


def test_views_npz_round_trip(tmp_path):
    scores = ViewScores(views=1)
    scores.add(torch.arange(4), torch.zeros(4, dtype=torch.long), torch.randn(4, 5), torch.tensor([0, 1, 2, 3]))
    data = np.load(scores.save(tmp_path / "views.npz"))
    assert data["scores"].shape == (4, 1, 5) and list(data["label"]) == [0, 1, 2, 3]


def test_checkpoint_keeps_trainable_state_and_buffers_only(tmp_path):
    cfg = apply_overrides(RunConfig(), ["model.backbone=tdsclip-tiny", "model.side_width=64", "model.td_reduction=4"])
    torch.manual_seed(0)
    model = build_model(cfg.model)
    state = ckpt.model_state(model)
    assert not any(k.startswith("backbone.") for k in state), "frozen CLIP weights come from the weights file"
    assert any("running_mean" in k for k in state)
    other = build_model(cfg.model)
    ckpt.load_model_state(other, state, "test")
    restored = other.state_dict()
    assert all(torch.equal(value, restored[key]) for key, value in state.items())
    wrong = build_model(apply_overrides(cfg, ["model.side_width=128"]).model)
    with pytest.raises(ckpt.CheckpointError, match="does not fit this model"):
        ckpt.load_model_state(wrong, state, "test")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointError, match=f"cannot read checkpoint {tmp_path / 'junk.pt'}"):
        ckpt.load(tmp_path / "junk.pt")


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path):
    target = tmp_path / "latest.pt"
    ckpt.atomic_save({"model": {"w": torch.zeros(3)}, "step": 1}, target)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import torch
        from tdsclip.train.checkpoint import atomic_save
        big = {{"w": torch.ones(64, 1024, 1024)}}   # 256 MiB: the write takes a while
        step = 2
        while True:
            atomic_save({{"model": big, "step": step}}, {str(target)!r})
            step += 1
    """),
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait()
    state = ckpt.load(target)
    assert state["step"] >= 1 and state["model"]["w"].numel() in (3, 64 * 1024 * 1024)


def test_one_clip_per_forward_makes_every_training_logit_the_same():
    """Why training refuses it: the head's BatchNorm3d takes its batch statistics over exactly
    the tokens the head then averages, so one clip's features are the norm's bias, whatever the clip."""
    cfg = apply_overrides(RunConfig(), ["model.backbone=tdsclip-tiny", "data.input_size=64", "model.side_width=64"])
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    torch.nn.init.normal_(model.head_norm.bias)
    a, b = torch.randn(2, 1, 3, 8, 5, 64, 64).unbind(0)
    with torch.no_grad():
        one_a, one_b, two = model(a), model(3 * b + 1), model(torch.cat([a, b]))
    assert torch.allclose(one_a, one_b, atol=1e-5) and torch.allclose(
        one_a[0], model.fc(model.head_norm.bias), atol=1e-5
    )
    assert (two[0] - two[1]).abs().max() > 0.1


@pytest.mark.parametrize("extra", [(), ("train.sync_bn=true",)])
def test_training_refuses_one_clip_per_forward_and_writes_nothing(tmp_path, extra):
    from train_fixture import build, tiny_config

    from tdsclip.config import ConfigError
    from tdsclip.train.run import run_config

    cfg = tiny_config("train.micro_batch=1", "data.num_sample=1", *extra)
    message = (
        r"train.micro_batch=1 x data.num_sample=1 is one clip per forward on each process: the head's "
        r"BatchNorm3d normalises the very tokens it averages, so every logit would be the same whatever "
        r"the video and nothing but the classifier's bias would learn; use train.micro_batch >= 2"
    )
    with pytest.raises(ConfigError, match=message):
        run_config(cfg, preset="test", runs_dir=tmp_path, data_builder=build)
    assert list(tmp_path.iterdir()) == []
