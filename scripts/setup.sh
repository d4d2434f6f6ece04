#!/usr/bin/env bash
# Idempotent set-up: .venv with the pinned dependencies and tdsclip installed editable.
#   bash scripts/setup.sh          everything the tests need: all system packages, tdsclip[mlflow,test]
#   bash scripts/setup.sh --demo   what the demo needs: python3-venv, tdsclip (no Slurm, MariaDB, ffmpeg,
#                                  MLflow, pytest: the runs keep their records on disk only)
# Re-running is a no-op unless pyproject.toml or requirements/constraints.txt changed (a full
# set-up also serves the demo).
#   PYTHON=python3.11   interpreter to build the venv from (default: python3)
#   TDSCLIP_VENV=DIR    where the venv lives (default: .venv in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    "") mode=test; extras="[mlflow,test]" ;;
    --demo) mode=demo; extras="" ;;
    *) echo "setup.sh: unknown argument '$1'; expected nothing (everything) or --demo" >&2; exit 2 ;;
esac
python=${PYTHON:-python3}
venv=${TDSCLIP_VENV:-.venv}
stamp="$venv/.tdsclip-setup"
wanted=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)

# The stamp holds the hash, then the mode it was made for: "test" serves both, "demo" the demo.
if [[ -f "$stamp" ]]; then
    read -r have have_mode < "$stamp" || true
    if [[ "$have" == "$wanted" && ("${have_mode:-test}" == test || $mode == demo) ]]; then
        exit 0
    fi
fi

bash scripts/install-system.sh ${1:+"$1"}
if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv" || {
        echo "setup: '$python -m venv' failed; install python3-venv (Debian) or set PYTHON=" >&2
        exit 1
    }
fi

# The constraints file pins every package, torch==2.13.0 included, so pip never resolves a newer
# (CUDA, several GB) torch; on a CPU-only machine pip takes the local 2.13.0+cpu wheel.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --constraint requirements/constraints.txt --editable ".$extras" 2> >(grep -v "^WARNING: Location" >&2)

# Fails loudly if open_clip cannot be imported (the torchvision/CPU-torch trap, see docs/install.md).
"$venv/bin/python" -c "import open_clip" || {
    echo "setup: 'import open_clip' fails in $venv; see docs/install.md" >&2
    exit 1
}
echo "$wanted $mode" > "$stamp"
echo "setup: $venv ready ($mode)"
