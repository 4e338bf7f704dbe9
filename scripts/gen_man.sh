#!/usr/bin/env bash
# Generate the man page ntkhess(1) from the CLI's own --help texts, so the two
# cannot drift: `make man` writes docs/ntkhess.1; tests/test_man.sh checks it
# is up to date.  Usage: scripts/gen_man.sh BIN > ntkhess.1
set -euo pipefail
BIN=${1:-build/ntkhess}
esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\\&'/" -e 's/^-/\\-/'; }
ver=$("$BIN" --version | awk '{print $2}')
cat <<HDR
.TH NTKHESS 1 "" "ntkhess $ver" "User Commands"
.SH NAME
ntkhess \- Hessian spectra of deep networks: exact finite-width curvature and infinite-width theory
.SH SYNOPSIS
.B ntkhess
.I COMMAND
[\fIOPTIONS\fR]
.SH DESCRIPTION
HDR
"$BIN" --help | sed -n '3,/^Commands:/p' | sed '$d' | esc
echo ".SH COMMANDS"
cmds=$("$BIN" --help | awk '/^Commands:/{f=1;next} f&&/^  [a-z]/{print $1} f&&/^$/{f=0}')
for c in $cmds; do
  echo ".SS $c"
  echo ".nf"
  "$BIN" $c --help | esc
  echo ".fi"
done
cat <<'TAIL'
.SH FILES
Model directories hold config.json and W0.npy, b0.npy, ... (float64, C order).
Conventions (parameter order, time scale t = k eta, kernels, normalizations)
are documented in docs/conventions.md of the source distribution.
.SH EXIT STATUS
0 on success, 1 on a runtime error, 2 on a usage error; errors are one line on
standard error.
.SH SEE ALSO
Jacot, Gabriel, Hongler, "The asymptotic spectrum of the Hessian of DNN
throughout training", ICLR 2020.
TAIL
