"""The markers' contract: a test that needs Slurm without @pytest.mark.slurm fails (before the cluster
starts, or naming the Slurm command it ran), and a slurm test is left out by -m "not slow"."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import tomllib
from helpers import REPO

TESTS = REPO / "tests"

INNER_CONFTEST = """
import pytest
from slurm_marker import (
    _slurm_commands_need_the_marker,
    _slurm_stand_ins,
    pytest_collection_modifyitems,
    pytest_runtest_setup,
)

@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    (tmp_path_factory.getbasetemp() / "cluster-started").touch()
    return "cluster"
"""

INNER_TESTS = """
import shutil, subprocess
import pytest

def test_plain():
    assert shutil.which("sinfo") is None or "slurm-stand-ins" in shutil.which("sinfo")

def test_cluster_without_marker(slurm_cluster):
    pass

@pytest.mark.slurm
def test_cluster_with_marker(slurm_cluster):
    pass

def test_command_without_marker():
    subprocess.run(["sinfo", "-h"], capture_output=True)   # its failure is swallowed, as code may

@pytest.mark.slurm
def test_command_with_marker():
    assert "slurm-stand-ins" not in (shutil.which("sinfo") or "")
"""


def inner_pytest(tmp_path, *args: str) -> dict[str, str]:
    """Run the tests above under the real hooks and markers; outcome per test name."""
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    ini = "[pytest]\naddopts = {}\nmarkers =\n{}\n".format(
        options["addopts"], "".join(f"    {m}\n" for m in options["markers"])
    )
    (tmp_path / "pytest.ini").write_text(ini)
    (tmp_path / "conftest.py").write_text(textwrap.dedent(INNER_CONFTEST))
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--basetemp", str(tmp_path / "t"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(TESTS), "HOME": str(tmp_path)},
        timeout=300,
    )
    outcomes = {}
    for line in done.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR") and "::" in rest:
            name = rest.split("::")[1].split(" ")[0]
            outcomes[name] = "ERROR" if "ERROR" in (word, outcomes.get(name)) else word
    return outcomes | {"stdout": done.stdout}


def test_a_test_needing_slurm_without_the_marker_fails(tmp_path):
    got = inner_pytest(tmp_path)
    out = got.pop("stdout")
    assert got == {
        "test_plain": "PASSED",
        "test_cluster_without_marker": "ERROR",  # at set-up: the cluster never starts
        "test_cluster_with_marker": "PASSED",
        "test_command_without_marker": "ERROR",  # at teardown
        "test_command_with_marker": "PASSED",
    }, out
    assert "uses the slurm_cluster fixture but lacks @pytest.mark.slurm" in out
    assert "ran Slurm's sinfo but lacks @pytest.mark.slurm" in out


def test_slurm_tests_are_slow_and_left_out_of_the_inner_loop(tmp_path):
    """-m "not slow" leaves out the marked tests; an unmarked one fails before the cluster starts."""
    got = inner_pytest(tmp_path, "-m", "not slow")
    out = got.pop("stdout")
    assert got == {
        "test_plain": "PASSED",
        "test_cluster_without_marker": "ERROR",
        "test_command_without_marker": "ERROR",
    }, out
    assert not (tmp_path / "t" / "cluster-started").exists()


def test_markers_are_registered_and_strict():
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in options["addopts"].split()
    assert {m.split(":")[0] for m in options["markers"]} == {"slow", "slurm"}
