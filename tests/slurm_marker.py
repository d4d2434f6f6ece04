"""Every test that needs Slurm carries @pytest.mark.slurm (and so counts as slow), checked as it runs.

`pytest -m "not slow"` is the inner loop; a test that starts the local cluster or runs a Slurm
command without the marker would make it slow again, unseen. Two checks (conftest.py imports them):
- a test using the cluster fixture without the marker fails before the cluster starts;
- during a test without the marker, Slurm's commands on PATH are stand-ins that note the call
  and exit 97, and the test fails naming the command.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SLURM_FIXTURES = ("slurm_cluster",)
SLURM_COMMANDS = ("sbatch", "srun", "salloc", "squeue", "sacct", "scontrol", "scancel", "sinfo", "sacctmgr", "sstat")
_MISSING = "lacks @pytest.mark.slurm (tests/slurm_marker.py): mark it, or the inner loop (-m 'not slow') runs Slurm"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: a slurm test is slow
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slurm") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True)  # before the fixtures are set up, so the cluster never starts
def pytest_runtest_setup(item: pytest.Item) -> None:
    uses = [name for name in SLURM_FIXTURES if name in getattr(item, "fixturenames", ())]
    if uses and not item.get_closest_marker("slurm"):
        pytest.fail(f"{item.nodeid} uses the {uses[0]} fixture but {_MISSING}", pytrace=False)


@pytest.fixture(scope="session")
def _slurm_stand_ins(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("slurm-stand-ins")
    for command in SLURM_COMMANDS:
        script = folder / command
        script.write_text(
            f'#!/bin/sh\necho {command} >> "{folder}/called"\n'
            f"echo 'tests: {command} was run by a test that {_MISSING}' >&2\nexit 97\n"
        )
        script.chmod(0o755)
    return folder


@pytest.fixture(autouse=True)
def _slurm_commands_need_the_marker(request, _slurm_stand_ins: Path, monkeypatch) -> Iterator[None]:
    if request.node.get_closest_marker("slurm"):
        yield
        return
    called = _slurm_stand_ins / "called"
    called.unlink(missing_ok=True)
    monkeypatch.setenv("PATH", f"{_slurm_stand_ins}{os.pathsep}{os.environ.get('PATH', '')}")
    yield
    if called.exists():
        commands = sorted(set(called.read_text().split()))
        pytest.fail(f"{request.node.nodeid} ran Slurm's {', '.join(commands)} but {_MISSING}", pytrace=False)
