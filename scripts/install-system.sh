#!/usr/bin/env bash
# System packages the project needs on Debian 12 (idempotent; needs root or sudo for apt-get).
# Python's venv module, and Chromium (headless: screenshots of the report's index.html).
# Later issues add ffmpeg, Slurm, MariaDB here.
set -euo pipefail
python=${PYTHON:-python3}
packages=()
"$python" -c "import ensurepip, venv" 2>/dev/null || packages+=(python3-venv)
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
if ((${#packages[@]})); then
    sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi
