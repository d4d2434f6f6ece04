#!/usr/bin/env bash
# System packages the project needs on Debian 12 (idempotent; needs root or sudo for apt-get).
# Today: only Python's venv module. Later issues add ffmpeg, Slurm, MariaDB, Chromium here.
set -euo pipefail
python=${PYTHON:-python3}
packages=()
"$python" -c "import ensurepip, venv" 2>/dev/null || packages+=(python3-venv)
if ((${#packages[@]})); then
    sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}"
fi
