"""The authors' released checkpoints: exact import, every key of the real layouts, every refusal.

Fixtures (tests/fixtures/released/, see its README) were made by running the authors' own code at
their published commit with random weights.
"""

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from tdsclip.data.classmap import checkpoint_order, class_rows, normalise, read_id_name_csv, reorder_classifier
from tdsclip.data.errors import DataError
from tdsclip.measure import count_parameters
from tdsclip.model.build import build_model
from tdsclip.model.released import (
    ReleasedError,
    authors_key,
    check_fits,
    convert,
    infer_config,
    load_released,
    project_checkpoint,
    read_released,
)
from tdsclip.train.checkpoint import CheckpointError, load, load_for_evaluation

FIXTURES = Path(__file__).parent / "fixtures" / "released"
TINY = FIXTURES / "tiny-authors-checkpoint.pt"
FROZEN = re.compile(r"visual\.(conv1|class_embedding|positional_embedding|ln_pre|transformer\.resblocks)\.?")


def authors_input(io: dict) -> torch.Tensor:
    """The stored (B*T*m, 3, H, W) clip in the project's layout (B, 3, T, m, H, W)."""
    b, t, m = io["config"]["batch"], io["config"]["num_segments"], io["config"]["num_diff"]
    x = io["input"]
    return x.reshape(b, t, m, *x.shape[1:]).permute(0, 3, 1, 2, 4, 5)


@pytest.fixture(scope="module")
def io() -> dict:
    return torch.load(FIXTURES / "tiny-authors-io.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def tiny_state() -> dict:
    return torch.load(TINY, map_location="cpu", weights_only=True)


def test_the_tiny_checkpoint_reproduces_the_authors_logits(io):
    model, cfg = load_released(TINY)
    assert (cfg.backbone, cfg.side_width, cfg.sme_window, cfg.num_classes, cfg.td_reduction) == (
        "tdsclip-authors-tiny",
        64,
        5,
        10,
        16,
    )
    assert (cfg.sme_beta, cfg.stem_padding, cfg.quick_gelu, cfg.td_bias, cfg.weights) == (
        0.5,
        1,
        True,
        False,
        "checkpoint",
    )
    assert not model.training
    with torch.no_grad():
        logits = model(authors_input(io))
    assert (logits - io["logits"]).abs().max().item() < 1e-5
    assert model.backbone.uses_quick_gelu and not any(p.requires_grad for p in model.backbone.parameters())


def _meta_state(name: str) -> dict[str, torch.Tensor]:
    state = {}
    for line in (FIXTURES / name).read_text().splitlines():
        key, shape, dtype = line.split("\t")
        state[key] = torch.empty(json.loads(shape), dtype=getattr(torch, dtype.removeprefix("torch.")), device="meta")
    return state


@pytest.mark.parametrize(
    "name, backbone, side, classes",
    [
        ("b16-ssv1-keys.tsv", "ViT-B-16", 320, 174),
        ("l14-k400-keys.tsv", "ViT-L-14", 512, 400),
    ],
)
def test_every_key_of_the_real_layouts_maps_onto_the_inferred_model(name, backbone, side, classes):
    state = _meta_state(name)  # meta tensors: shapes only, nothing allocated
    cfg = infer_config(state, source=name)
    assert (cfg.backbone, cfg.side_width, cfg.num_classes, cfg.sme_window, cfg.td_reduction) == (
        backbone,
        side,
        classes,
        5,
        16,
    )
    model = build_model(cfg, "meta")
    converted = convert(state)
    check_fits(converted, model.state_dict(), name)  # raises on any missing, extra or misshapen key
    assert set(converted) == set(model.state_dict()) and len(converted) == len(state)
    assert all(authors_key(key) in state for key in converted)  # the mapping is one to one, both ways
    # and the trainable parameters are exactly the released ones
    trainable = sum(
        math.prod(t.shape)
        for k, t in state.items()
        if not FROZEN.match(k) and not re.search(r"running_|num_batches", k)
    )
    assert count_parameters(model)[0] == trainable == {"ViT-B-16": 24_224_526, "ViT-L-14": 106_651_536}[backbone]


# ----------------------------------------------------------------------------- refusals


def _save_variant(tmp_path: Path, tiny_state: dict, change) -> Path:
    state = {**tiny_state, "model_state_dict": dict(tiny_state["model_state_dict"])}
    change(state["model_state_dict"])
    path = tmp_path / "variant.pt"
    torch.save(state, path)
    return path


def test_a_renamed_key_is_named(tmp_path, tiny_state):
    def rename(sd):
        sd["visual.side_post_bn.gamma"] = sd.pop("visual.side_post_bn.weight")

    with pytest.raises(ReleasedError, match=r"^unknown key visual\.side_post_bn\.gamma \[64\]") as error:
        load_released(_save_variant(tmp_path, tiny_state, rename))
    assert "\n" not in str(error.value)


def test_a_missing_key_is_named(tmp_path, tiny_state):
    def drop(sd):
        del sd["visual.transformer.side_transformer.1.mse.bn2.running_var"]

    with pytest.raises(
        ReleasedError,
        match=r"lacks visual\.transformer\.side_transformer\.1\.mse\.bn2\.running_var "
        r"\(this model's blocks\.1\.temporal\.td\.restore\.1\.running_var",
    ):
        load_released(_save_variant(tmp_path, tiny_state, drop))


def test_a_wrong_shape_names_the_key_and_both_shapes(tmp_path, tiny_state):
    def grow(sd):
        sd["visual.transformer.side_transformer.2.attn.in_proj_weight"] = torch.zeros(192, 65)

    with pytest.raises(
        ReleasedError,
        match=r"side_transformer\.2\.attn\.in_proj_weight has shape \[192, 65\] in the "
        r"file, \[192, 64\] in the inferred model",
    ):
        load_released(_save_variant(tmp_path, tiny_state, grow))


def test_a_truncated_file_is_refused_in_one_line(tmp_path):
    path = tmp_path / "truncated.pt"
    path.write_bytes(TINY.read_bytes()[: TINY.stat().st_size // 2])
    with pytest.raises(
        ReleasedError, match=r"^cannot read released checkpoint .*truncated\.pt: .*; expected the authors'"
    ) as error:
        load_released(path)
    assert "\n" not in str(error.value)


def test_a_project_checkpoint_passed_as_released_says_what_it_is(tmp_path):
    converted = tmp_path / "converted.pt"
    torch.save(project_checkpoint(TINY), converted)
    with pytest.raises(
        ReleasedError, match=r"is not a released TDS-CLIP checkpoint: it holds a tdsclip project checkpoint"
    ):
        read_released(converted)


def test_a_released_checkpoint_passed_as_a_project_one_says_what_it_is():
    with pytest.raises(CheckpointError, match=r"is one of the authors' released checkpoints .*--released.*convert"):
        load(TINY)


def test_clip_weights_passed_as_released_say_what_they_are(tmp_path, tiny_state):
    clip = {k: v for k, v in tiny_state["model_state_dict"].items() if FROZEN.match(k)}
    torch.save(clip, tmp_path / "clip.pt")
    with pytest.raises(ReleasedError, match=r"holds CLIP weights .*model\.weights"):
        read_released(tmp_path / "clip.pt")


def test_a_ddp_prefix_is_accepted(tmp_path, tiny_state, io):
    path = _save_variant(tmp_path, tiny_state, lambda sd: [sd.__setitem__(f"module.{k}", sd.pop(k)) for k in list(sd)])
    model, _ = load_released(path)
    with torch.no_grad():
        assert (model(authors_input(io)) - io["logits"]).abs().max().item() < 1e-5


# ----------------------------------------------------------------------------- the converted checkpoint


def test_a_converted_checkpoint_loads_as_a_project_checkpoint(tmp_path, io):
    from tdsclip.config import from_dict
    from tdsclip.model.released import main

    dst = tmp_path / "converted.pt"
    assert main(["convert", str(TINY), str(dst), "data.dataset=ssv2"]) == 0
    state = load(dst)
    cfg = from_dict(state["extra"]["config"])
    assert (cfg.model.weights, cfg.data.dataset, cfg.data.input_size) == ("checkpoint", "ssv2", 16)
    assert state["extra"]["released"]["sha256"].startswith("cb1c943d8d93ae26")
    model = build_model(cfg.model)
    load_for_evaluation(model, cfg.model, state["model"], str(dst))
    with torch.no_grad():
        assert (model.eval()(authors_input(io)) - io["logits"]).abs().max().item() < 1e-5
    # the frozen CLIP weights are in the file, so a copy without them is refused, not run with a random CLIP
    partial = {k: v for k, v in state["model"].items() if not k.startswith("backbone.resblocks.0.")}
    with pytest.raises(CheckpointError, match=r"frozen parameters .*model\.weights=checkpoint needs them all"):
        load_for_evaluation(build_model(cfg.model), cfg.model, partial, "partial")


def test_init_from_starts_a_run_from_the_converted_model_and_names_it_in_the_run_id(tmp_path, io):
    from tdsclip.identity import run_id
    from tdsclip.model.released import released_run_config
    from tdsclip.train.checkpoint import init_from

    dst = tmp_path / "converted.pt"
    torch.save(project_checkpoint(TINY), dst)
    from dataclasses import replace

    cfg = released_run_config(load_released(TINY)[1])
    cfg = replace(cfg, model=replace(cfg.model, init_from=str(dst)))
    model = build_model(cfg.model)
    init_from(model, cfg.model.init_from, cfg.model.weights)
    with torch.no_grad():
        assert (model.eval()(authors_input(io)) - io["logits"]).abs().max().item() < 1e-5
    other = tmp_path / "other.pt"
    state = load(dst)
    state["model"]["fc.bias"] = state["model"]["fc.bias"] + 1
    torch.save(state, other)
    moved = tmp_path / "moved.pt"
    shutil.copy(dst, moved)
    with_file = lambda path: replace(cfg, model=replace(cfg.model, init_from=str(path)))
    assert run_id(with_file(dst), "m") == run_id(with_file(moved), "m")  # the contents decide, not the path
    assert run_id(with_file(dst), "m") != run_id(with_file(other), "m")
    assert run_id(with_file(dst), "m") != run_id(replace(cfg, model=replace(cfg.model, init_from="")), "m")


# ----------------------------------------------------------------------------- class order

AUTHORS_SS = [
    "Lifting something up completely without letting it drop down",
    "Lifting something up completely then letting it drop down",
    "Pushing something from left to right",
]


def test_classes_map_by_name_onto_the_authors_order(tmp_path):
    # our SSv1 order (labels file line order) and names with commas; the authors' CSV drops commas
    ours = [
        "Pushing something from left to right",
        "Lifting something up completely, then letting it drop down",
        "Lifting something up completely without letting it drop down",
    ]
    csv = tmp_path / "sth_labels.csv"
    csv.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(AUTHORS_SS)))
    order = checkpoint_order(ours, csv)
    assert order == tuple(AUTHORS_SS) == read_id_name_csv(csv)
    rows = class_rows(ours, order, rows=3)
    assert rows == [2, 1, 0]
    # the default, the dataset's names sorted, is the authors' order here too (',' sorts after ' ')
    assert [normalise(n) for n in checkpoint_order(ours)] == [normalise(n) for n in AUTHORS_SS]
    fc = torch.nn.Linear(4, 3)
    before = fc(torch.ones(1, 4)).detach()
    reorder_classifier(fc, rows)
    assert torch.equal(fc(torch.ones(1, 4)).detach(), before[:, rows])


def test_class_mapping_refusals(tmp_path):
    with pytest.raises(DataError, match=r"dataset class 'Throwing something' has no counterpart"):
        class_rows(["Throwing something", *AUTHORS_SS[1:]], AUTHORS_SS)
    with pytest.raises(DataError, match=r"the dataset has 2 classes but the checkpoint's class list has 3"):
        class_rows(AUTHORS_SS[:2], AUTHORS_SS)
    with pytest.raises(DataError, match=r"the class list has 3 names but the checkpoint's classifier has 174 rows"):
        class_rows(AUTHORS_SS, AUTHORS_SS, rows=174)
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nabseiling\n")
    with pytest.raises(DataError, match=r"expected a header 'id,name'"):
        read_id_name_csv(bad)


# ----------------------------------------------------------------------------- the commands


def _tiny_ssv1(root: Path, names: list[str]) -> list[str]:
    """An SSv1-format dataset (JPEG folders, labels csv in our line order, train/val csv): one
    12-frame video per class and split; returns the data.* overrides."""
    import numpy as np

    from tdsclip.data.synth import write_jpegs

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    (root / "labels.csv").write_text("".join(f"{n}\n" for n in names))
    for split in ("train", "val"):
        lines = []
        for i, name in enumerate(names):
            vid = f"{split}{i}"
            write_jpegs(root / "frames" / vid, rng.integers(0, 255, (12, 20, 24, 3), dtype=np.uint8))
            lines.append(f"{vid};{name}\n")
        (root / f"{split}.csv").write_text("".join(lines))
    return [
        "data.dataset=ssv1",
        f"data.root={root / 'frames'}",
        f"data.train_annotations={root / 'train.csv'}",
        f"data.val_annotations={root / 'val.csv'}",
        f"data.labels={root / 'labels.csv'}",
        "data.resize=20,24",
        "data.num_workers=0",
        "train.precision=fp32",
        "train.micro_batch=4",
    ]


def test_evaluate_released_and_its_conversion_agree_and_record_their_source(tmp_path, capsys):
    import numpy as np

    from tdsclip.evaluate import main as evaluate
    from tdsclip.model.released import main as released

    names = [f"Class {c}, something" for c in "JIHGFEDCBA"]  # line order is not alphabetical
    data = _tiny_ssv1(tmp_path / "ssv1", names)
    authors = tmp_path / "authors.csv"  # the authors' list: alphabetical, commas dropped
    authors.write_text("id,name\n" + "".join(f"{i},Class {c} something\n" for i, c in enumerate("ABCDEFGHIJ")))
    assert (
        evaluate(
            [
                "--released",
                str(TINY),
                *data,
                "views=1x2",
                "--classes",
                str(authors),
                "--scores",
                str(tmp_path / "released.npz"),
                "--out",
                str(tmp_path / "released.json"),
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert record == json.loads((tmp_path / "released.json").read_text())
    assert (
        record["released"]["sha256"].startswith("cb1c943d8d93ae26") and record["views"] == 2 and record["videos"] == 10
    )
    assert record["classes"] == {"source": str(authors), "order": [f"Class {c} something" for c in "ABCDEFGHIJ"]}

    dst = tmp_path / "converted.pt"
    assert released(["convert", str(TINY), str(dst)]) == 0
    capsys.readouterr()
    # the converted classifier keeps the authors' row order; the dataset's alphabetical order is theirs
    assert evaluate(["--checkpoint", str(dst), *data, "views=1x2", "--scores", str(tmp_path / "converted.npz")]) == 0
    converted = json.loads(capsys.readouterr().out)
    assert converted["released"]["sha256"] == record["released"]["sha256"]
    ours, theirs = np.load(tmp_path / "released.npz"), np.load(tmp_path / "converted.npz")
    reorder = [9 - i for i in range(10)]  # dataset class i (our line order J..A) is authors' row 9 - i
    assert np.allclose(ours["scores"], theirs["scores"][..., reorder], atol=1e-6)


def test_evaluate_refuses_a_class_list_that_does_not_fit(tmp_path, capsys):
    from tdsclip.evaluate import main as evaluate

    data = _tiny_ssv1(tmp_path / "ssv1", [f"Class {c}" for c in "ABCDEFGHIJ"])
    wrong = tmp_path / "k400.csv"
    wrong.write_text("id,name\n" + "".join(f"{i},class {i}\n" for i in range(10)))
    assert evaluate(["--released", str(TINY), *data, "views=1x1", "--classes", str(wrong)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: dataset class 'Class A' has no counterpart in the checkpoint's class list"
    )
    assert evaluate(["--checkpoint", str(TINY), *data]) == 2
    assert "--released" in capsys.readouterr().err


def test_training_with_weights_from_a_checkpoint_needs_init_from(tmp_path):
    from tdsclip.config import ConfigError
    from tdsclip.model.released import released_run_config
    from tdsclip.train.run import run_config

    cfg = released_run_config(load_released(TINY)[1])
    assert cfg.model.weights == "checkpoint" and not cfg.model.init_from
    with pytest.raises(ConfigError, match=r"model\.weights=checkpoint .* model\.init_from, which is not set"):
        run_config(cfg, preset="released-code", runs_dir=tmp_path)


@pytest.mark.slow  # trains
def test_a_training_run_starts_from_the_converted_model(tmp_path, monkeypatch):
    from tdsclip.identity import file_sha256
    from tdsclip.model.released import main as released
    from tdsclip.presets import resolve
    from tdsclip.train.run import run_config

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    dst = tmp_path / "converted.pt"
    assert released(["convert", str(TINY), str(dst)]) == 0
    data = _tiny_ssv1(tmp_path / "ssv1", [f"Class {c}" for c in "ABCDEFGHIJ"])
    model = [
        "model.backbone=tdsclip-authors-tiny",
        "model.side_width=64",
        "model.num_classes=10",
        "model.td_reduction=16",
        "model.weights=checkpoint",
        f"model.init_from={dst}",
        "data.input_size=16",
    ]
    cfg = resolve(
        "released-code",
        [
            *model,
            *data,
            "data.randaugment=",
            "data.num_sample=1",
            "data.test_crops=1",
            "data.test_clips=1",
            "train.epochs=1",
            "train.batch_size=5",
            "train.micro_batch=5",
            "train.val_every=0",
            "optim.lr=1e-9",
            "optim.warmup_epochs=0",
        ],
    )
    outcome = run_config(cfg, preset="released-code", runs_dir=tmp_path / "runs")
    assert outcome.status == "finished"
    run = outcome.path.parent
    assert json.loads((run / "run.json").read_text())["params"]["model.init_from"] == f"sha256:{file_sha256(str(dst))}"
    trained, start = load(run / "latest.pt")["model"], load(dst)["model"]
    # lr 1e-9 for 2 steps: the trainable weights are still the converted model's, not a fresh init
    assert torch.allclose(trained["fc.weight"], start["fc.weight"], atol=1e-6)
    assert torch.allclose(trained["projs.0.weight"], start["projs.0.weight"], atol=1e-6)
