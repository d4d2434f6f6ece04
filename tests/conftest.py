"""Session fixtures shared across test modules. The Slurm fixtures start nothing unless a test
requests them. Reports built during the tests (python -m experiments.run ends with one) go to a
temporary folder, never over the user's reports/out."""

import pytest
from slurm_cluster import reference, slurm_cluster  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def _reports_out(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("TDSCLIP_REPORTS", str(tmp_path_factory.mktemp("reports-out")))
    yield
    patch.undo()
