#!/usr/bin/env bash
# Every ```sh / ```bash block of README.md, top to bottom, on a fresh clone of
# the committed HEAD (uncommitted changes are not seen): each block runs with
# bash -e from the clone's root, in the order given, and the first failing
# block stops the test (its number, first line and output are printed).
# A block whose first line is "# long" is not run (none is at present).
# The environment is that of a Debian 12 machine after scripts/setup.sh:
# /usr/bin first on PATH (python3 with NumPy), HOME a fresh folder, and the
# data sets, which git does not hold, linked from this checkout's data/ (so
# setup.sh finds them and fetches nothing).  Prints 'N passed, N failed'
# (one count per block).
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
p=0; f=0
finish() { echo "$p passed, $f failed"; [ "$f" -eq 0 ]; exit $?; }
if ! git clone -q "$ROOT" "$tmp/r" 2>"$tmp/clone.log"; then
    echo "FAIL: git clone $ROOT: $(cat "$tmp/clone.log")"; f=1; finish
fi
if [ -d "$ROOT/data/mnist" ]; then ln -s "$(readlink -f "$ROOT/data")" "$tmp/r/data"; fi
export PATH="/usr/bin:$PATH" HOME="$tmp/home"
unset NTKHESS_DATA NTKHESS_LIB NTKHESS BUILD PKG_CONFIG_PATH LD_LIBRARY_PATH
mkdir -p "$HOME" "$tmp/blocks"

# Split the README's shell blocks into files 1.sh, 2.sh, ...
awk -v dir="$tmp/blocks" '
    /^```(sh|bash)[ \t]*$/ { n++; inb = 1; next }
    /^```/ && inb          { inb = 0; next }
    inb                    { print > (dir "/" n ".sh") }
' "$tmp/r/README.md"
nblocks=$(ls "$tmp/blocks" | wc -l)
[ "$nblocks" -gt 0 ] || { echo "FAIL: no sh/bash block in README.md"; f=1; finish; }
for i in $(seq 1 "$nblocks"); do
    b="$tmp/blocks/$i.sh"
    first=$(head -1 "$b")
    if [ "$first" = "# long" ] || [[ "$first" == "# long "* ]] || [[ "$first" == "# long:"* ]]; then
        echo "block $i not run (marked long): $(sed -n 2p "$b")"; continue
    fi
    t0=$(date +%s)
    (cd "$tmp/r" && bash -e -o pipefail "$b") > "$tmp/block$i.log" 2>&1
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "FAIL: README block $i (exit $rc) stopped the run: $first"
        tail -15 "$tmp/block$i.log" | sed 's/^/    /'
        f=$((f + 1)); finish
    fi
    echo "ok: README block $i ($(( $(date +%s) - t0 )) s): $first"
    p=$((p + 1))
done
finish
