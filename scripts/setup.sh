#!/usr/bin/env bash
# Install ntkhess's Debian dependencies and build it (build/ntkhess).
#   bash scripts/setup.sh            install packages + build
#   bash scripts/setup.sh --deps     install packages only
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(build-essential pkg-config libopenblas-dev liblapacke-dev libcjson-dev libplplot-dev plplot-driver-cairo zlib1g-dev dataset-fashion-mnist
      python3 python3-numpy python3-torch)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
[ "${1:-}" = "--deps" ] && exit 0
make -j"$(nproc)"
echo "setup: built build/ntkhess and build/libntkhess.{a,so}" >&2
