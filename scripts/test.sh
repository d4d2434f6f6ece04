#!/usr/bin/env bash
# Install everything (idempotent: system packages incl. Slurm, MariaDB and ffmpeg, then the Python
# environment with the test tools), then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${TDSCLIP_VENV:-.venv}/bin/python" -m pytest "$@"
