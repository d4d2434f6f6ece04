#!/usr/bin/env bash
# Install everything (idempotent), then run the main job on its embedded default: Table III in
# the smoke preset (synthetic motion dataset made on first use, tiny ViT, CPU), end to end.
# Arguments replace the default and go to `python -m experiments.run`, e.g.
# `bash scripts/demo.sh table4 --preset smoke` or `bash scripts/demo.sh table1 --dry-run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
    set -- table3 --preset smoke
fi
exec "${TDSCLIP_VENV:-.venv}/bin/python" -m experiments.run "$@"
