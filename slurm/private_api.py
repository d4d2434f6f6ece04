"""The private functions of submitit that slurm/ uses, one adapter each (tdsclip/private_api.py
has the library's; why: see there). tests/test_private_api.py pins their behaviour.

Light: nothing is imported before a function is called (slurm/job.py is unpickled in the job
before submitit installs its signal handlers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# distribution -> the version every adapter below was checked against (pyproject.toml's pin)
CHECKED_AGAINST = {"submitit": "1.5.4"}

# The command SlurmExecutor puts in its batch scripts (python and folder filled in at submission).
SUBMIT_COMMAND = "<python> -u -m submitit.core._submit <folder>"


def _private(name: str) -> Any:
    from tdsclip.private_api import private

    return private("submitit.slurm.slurm", name, "submitit", CHECKED_AGAINST)


def parse_node_list(node_list: str) -> list[str]:
    """The host names of a SLURM_JOB_NODELIST ("gpu[007-008],cpu1" -> gpu007, gpu008, cpu1), read
    with submitit's own grammar. submitit 1.5.4: `submitit.slurm.slurm._parse_node_list`."""
    return _private("_parse_node_list")(node_list)


def sbatch_string(command: str, folder: Path, map_count: int | None, **parameters: Any) -> str:
    """The batch script SlurmExecutor writes for these parameters, without submitting anything.
    submitit 1.5.4: `submitit.slurm.slurm._make_sbatch_string(command, folder, map_count, ...)`."""
    return _private("_make_sbatch_string")(command=command, folder=folder, map_count=map_count, **parameters)
