#!/usr/bin/env bash
# System packages the project needs on Debian 12 (idempotent; needs root or sudo for apt-get).
#   bash scripts/install-system.sh           everything: what the tests need (scripts/test.sh, .ci/run)
#   bash scripts/install-system.sh --demo    what the demo needs: python3-venv alone (scripts/demo.sh)
#
#   python3-venv                      the venv (scripts/setup.sh)
#   slurmctld slurmd slurm-client     a real single-node Slurm for the tests (slurm/localcluster.py)
#   munge                             Slurm's authentication
#   slurmdbd mariadb-server           accounting: without it sacct fails and submitit sees no job states
#   ffmpeg                            the CLI the decoding tests make their container/codec matrix with
# Packages already installed are skipped; nothing is removed or upgraded.
set -euo pipefail
case "${1:-}" in
    "") wanted=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server ffmpeg) ;;
    --demo) wanted=() ;;
    *) echo "install-system.sh: unknown argument '$1'; expected nothing (everything) or --demo" >&2; exit 2 ;;
esac
python=${PYTHON:-python3}
packages=()
"$python" -c "import ensurepip, venv" 2>/dev/null || packages+=(python3-venv)
for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || packages+=("$package")
done
if ((${#packages[@]})); then
    sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    # Without systemd the packages' start scripts do nothing; slurm/localcluster.py starts the daemons.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi
