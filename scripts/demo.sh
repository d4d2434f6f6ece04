#!/usr/bin/env bash
# Install everything (idempotent), then run the main job on its embedded default:
# for now the model summary of the measurement CLI (ViT-B/16, 8 frames, 224 px).
# Extra arguments go to `python -m tdsclip.measure`, e.g. `bash scripts/demo.sh --backbone ViT-L-14`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${TDSCLIP_VENV:-.venv}/bin/python" -m tdsclip.measure "$@"
