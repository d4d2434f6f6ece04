"""Each private function of another library the project uses, called through its one adapter with a
known input: an upgrade that changes one fails here, naming the version it was checked against."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import open_clip
import pytest
import tomllib
import torch
import torch.nn.functional as F
from helpers import REPO
from open_clip.transformer import QuickGELU, VisionTransformer
from torch import nn

import slurm.private_api as slurm_private
import tdsclip.private_api as private
from tdsclip.model.recompute import BATCH_NORMS


def pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = [pin for group in project["optional-dependencies"].values() for pin in group]
    return dict(dependency.split("==") for dependency in [*project["dependencies"], *extras])


@pytest.mark.parametrize("adapter", [private, slurm_private], ids=lambda m: m.__name__)
def test_each_adapter_was_checked_against_the_pinned_version(adapter):
    """Moving a pin in pyproject.toml fails here until every adapter of that library is re-checked
    (its test below passes) and CHECKED_AGAINST says the new version."""
    pinned = pins()
    for distribution, checked in adapter.CHECKED_AGAINST.items():
        assert pinned[distribution] == checked, (
            f"{distribution} is pinned to {pinned[distribution]} but {adapter.__name__} was checked against "
            f"{checked}: run tests/test_private_api.py, adapt, then update CHECKED_AGAINST"
        )


def test_a_missing_private_name_is_one_error_naming_both_versions():
    with pytest.raises(
        ImportError,
        match=r"^open_clip\.model\._gone: private to open_clip_torch, checked against 3\.3\.0, missing in the installed 3\.3\.0;",
    ):
        private.private("open_clip.model", "_gone", "open_clip_torch")


def test_open_clip_vision_tower_is_create_models_image_tower():
    config = open_clip.get_model_config("tdsclip-tiny")
    torch.manual_seed(0)
    tower = private.build_vision_tower(config["embed_dim"], config["vision_cfg"], quick_gelu=True)
    assert isinstance(tower, VisionTransformer)
    assert len(tower.transformer.resblocks) == config["vision_cfg"]["layers"]
    assert isinstance(tower.transformer.resblocks[0].mlp.gelu, QuickGELU)
    torch.manual_seed(0)
    reference = open_clip.create_model("tdsclip-tiny", force_quick_gelu=True).visual
    shapes = {key: value.shape for key, value in reference.state_dict().items()}
    assert {key: value.shape for key, value in tower.state_dict().items()} == shapes
    plain = private.build_vision_tower(config["embed_dim"], config["vision_cfg"], quick_gelu=False)
    assert isinstance(plain.transformer.resblocks[0].mlp.gelu, nn.GELU)


def test_mlflow_schema_head_is_what_a_new_store_is_migrated_to(tmp_path):
    from mlflow.tracking import MlflowClient

    head = private.mlflow_schema_head()
    assert re.fullmatch(r"[0-9a-f]{12}", head), head
    db = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()  # creates and fully migrates the store
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_storage_id_is_one_per_storage_on_every_device(device):
    base = torch.zeros(4, 6, device=device)
    other = torch.zeros(4, 6, device=device)
    assert private.storage_id(base) == private.storage_id(base[1:].t()) == private.storage_id(base.view(24))
    assert private.storage_id(base) != private.storage_id(other)
    assert isinstance(private.storage_id(base), int)


def test_flash_attention_cpu_equals_scaled_dot_product_attention():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8) for _ in range(3))
    for is_causal, scale in ((False, None), (True, 0.5)):
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale)
        torch.testing.assert_close(private.flash_attention_cpu(q, k, v, is_causal, scale), expected)
    meta = private.flash_attention_cpu(*(t.to("meta") for t in (q, k, v)), False, None)
    assert (meta.device.type, meta.shape) == ("meta", (2, 3, 5, 8))


def test_the_public_batch_norms_are_every_trainable_batch_norm_of_torch_nn():
    """recompute.BATCH_NORMS replaced torch's private `_BatchNorm` base: it must still be all of them."""

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    found = {c for c in subclasses(nn.modules.batchnorm._BatchNorm) if c.__module__.startswith("torch.nn.")}
    assert found == set(BATCH_NORMS)


def test_submitit_node_list_grammar():
    assert slurm_private.parse_node_list("gpu[007-009,011],cpu1") == ["gpu007", "gpu008", "gpu009", "gpu011", "cpu1"]
    assert slurm_private.parse_node_list("node1") == ["node1"]
    assert slurm_private.parse_node_list("") == []
    with pytest.raises(Exception, match="Unrecognized format for SLURM_JOB_NODELIST"):
        slurm_private.parse_node_list("gpu[1-")


def test_submitit_batch_script_text(tmp_path: Path):
    script = slurm_private.sbatch_string(
        slurm_private.SUBMIT_COMMAND,
        tmp_path,
        4,
        job_name="t",
        time=30,
        nodes=2,
        ntasks_per_node=8,
        array_parallelism=2,
        signal_delay_s=120,
        setup=["export X=1"],
    )
    out, err = f"{tmp_path}/%A_%a_0_log.out", f"{tmp_path}/%A_%a_0_log.err"
    srun_out, srun_err = f"{tmp_path}/%A_%a_%t_log.out", f"{tmp_path}/%A_%a_%t_log.err"
    assert script == "\n".join(
        [
            "#!/bin/bash",
            "",
            "# Parameters",
            "#SBATCH --array=0-3%2",
            f"#SBATCH --error={err}",
            "#SBATCH --job-name=t",
            "#SBATCH --nodes=2",
            "#SBATCH --ntasks-per-node=8",
            "#SBATCH --open-mode=append",
            f"#SBATCH --output={out}",
            "#SBATCH --signal=USR2@120",
            "#SBATCH --time=30",
            "#SBATCH --wckey=submitit",
            "",
            "# setup",
            "export X=1",
            "",
            "# command",
            "export SUBMITIT_EXECUTOR=slurm",
            f"srun --unbuffered --output {srun_out} --error {srun_err} <python> -u -m submitit.core._submit <folder>",
            "",
        ]
    )


def test_submitit_submit_command_is_the_executors():
    import submitit

    executor = submitit.SlurmExecutor(Path("/jobs"), python="<python>")
    assert executor._submitit_command_str.replace("/jobs", "<folder>") == slurm_private.SUBMIT_COMMAND
