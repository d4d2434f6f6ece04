"""Session fixtures shared across test modules. The Slurm fixtures start nothing unless a test
requests them. Reports built during the tests (python -m experiments.run ends with one) go to a
temporary folder, never over the user's reports/out."""

import pytest
from slurm_cluster import reference, slurm_cluster  # noqa: F401 - pytest fixtures, found by name
from slurm_marker import (  # noqa: F401 - hooks and fixtures, found by name
    _slurm_commands_need_the_marker,
    _slurm_stand_ins,
    pytest_collection_modifyitems,
    pytest_runtest_setup,
)


@pytest.fixture(scope="session", autouse=True)
def _reports_out(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("TDSCLIP_REPORTS", str(tmp_path_factory.mktemp("reports-out")))
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _torch_threads_unchanged():
    """A test that leaves torch's thread count changed makes every later test in the process run
    at another count, so their results (the smoke learning proof's, above all) round differently
    than in a fresh process: such a test fails here, and the count is put back."""
    import torch

    before = torch.get_num_threads()
    yield
    after = torch.get_num_threads()
    if after != before:
        torch.set_num_threads(before)
        pytest.fail(f"the test left torch's intra-op thread count at {after} (it was {before})")
