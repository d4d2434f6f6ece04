#!/usr/bin/env bash
# Install what the demo needs (idempotent: the Python environment, no Slurm or MariaDB), then run
# the main job on its embedded default: Table III in the smoke preset (synthetic motion dataset
# made on first use, tiny ViT, CPU), its three rows at once (--jobs 3, the cores shared out), end
# to end. Arguments replace the default and go to `python -m experiments.run`, e.g.
# `bash scripts/demo.sh table4 --preset smoke --jobs 2` or `bash scripts/demo.sh table1 --dry-run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --demo
if [ "$#" -eq 0 ]; then
    set -- table3 --preset smoke --jobs 3
fi
exec "${TDSCLIP_VENV:-.venv}/bin/python" -m experiments.run "$@"
