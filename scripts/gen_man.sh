#!/usr/bin/env bash
# Generate the man page ntkhess(1); the COMMANDS section is the CLI's own
# --help texts, so the two cannot drift (`make` writes build/ntkhess.1,
# tests/long/test_install.sh checks that every option of every command is in
# it).  Usage: scripts/gen_man.sh BIN [DOCDIR] > ntkhess.1
# DOCDIR: where `make install` puts docs/*.md (PREFIX/share/doc/ntkhess).
set -euo pipefail
BIN=${1:-build/ntkhess}
DOC=${2:-/usr/local/share/doc/ntkhess}
esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\\&'/" -e 's/^-/\\-/'; }
# The --help texts cite docs/NAME.md of the source tree; the man page cites
# the installed copy.
docs() { sed -e "s|docs/\([A-Za-z_]*\.md\)|$DOC/\1|g"; }
ver=$("$BIN" --version | awk '{print $2}')
cat <<HDR
.TH NTKHESS 1 "" "ntkhess $ver" "User Commands"
.SH NAME
ntkhess \- Hessian spectra of deep networks: exact finite-width curvature and infinite-width theory
.SH SYNOPSIS
.B ntkhess
.I COMMAND
[\fIOPTIONS\fR]
.br
.B ntkhess
.I COMMAND
.B \-\-help
.br
.B ntkhess
[\fB\-\-version\fR | \fB\-\-help\fR]
.SH DESCRIPTION
HDR
"$BIN" --help | sed -n '3,/^Commands:/p' | sed '$d' | docs | esc
cat <<'DESC'
.PP
Networks are model directories (see FILES); data sets are .npy files
(float64, row-major) written by \fBntkhess data\fR or by NumPy.  Every
command documents all its options and defaults with \fB\-\-help\fR, which is
also the text of the COMMANDS section below.  The same numerics are a C
library (\fBlibntkhess\fR, header \fI<ntkhess.h>\fR, \fBpkg\-config ntkhess\fR)
and Python bindings.
DESC
echo ".SH COMMANDS"
cmds=$("$BIN" --help | awk '/^Commands:/{f=1;next} f&&/^  [a-z]/{print $1} f&&/^$/{f=0}')
for c in $cmds; do
  echo ".SS $c"
  echo ".nf"
  "$BIN" $c --help | docs | esc
  echo ".fi"
done
cat <<'EXAMPLES'
.SH EXAMPLES
A data set, a network, its training, and the curvature of its loss (seconds
at these sizes):
.PP
.nf
ntkhess data sphere \-\-n 128 \-\-dim 20 \-\-out d
ntkhess init \-\-widths 20,400,400,1 \-\-act softplus \-\-seed 1 \-\-out m0
ntkhess train \-\-model m0 \-\-data d/X.npy \-\-targets d/Y.npy \-\-lr 1 \-\-steps 200 \-\-out m1
ntkhess curvature \-\-model m1 \-\-data d/X.npy \-\-targets d/Y.npy \-\-out c
ntkhess spectrum \-\-model m1 \-\-data d/X.npy \-\-targets d/Y.npy \-\-of H \-\-top 5 \-\-json
.fi
.PP
The infinite-width kernels of two inputs, and the predicted moments of the
Hessian along training:
.PP
.nf
ntkhess kernel \-\-act softplus \-\-depth 3 \-\-x 1,0.5 \-\-y 0.2,1.1
ntkhess predict \-\-act softplus \-\-depth 3 \-\-data d/X.npy \-\-targets d/Y.npy \-\-times 0,1,10 \-\-expect
.fi
.PP
The paper's Figure 1 in quick mode (1\(en2 minutes on 2 cores; needs MNIST,
see ENVIRONMENT):
.PP
.nf
ntkhess fig1 \-\-quick \-\-out out/fig1
.fi
EXAMPLES
cat <<'ENV'
.SH ENVIRONMENT
.TP
.B NTKHESS_DATA
Folder holding the real data sets read by \fBntkhess data mnist\fR and
\fBfashion\-mnist\fR (mnist/digits/*.json); default \fI./data\fR relative to
the working directory.
.TP
.B OMP_NUM_THREADS
OpenMP threads of the library's own loops (default: one per core).
.TP
.B OPENBLAS_NUM_THREADS
Threads of OpenBLAS (matrix products).  \fBntkhess bench \-\-threads\fR
sets both.
.TP
.B PLPLOT_DRV_DIR
PLplot's driver folder; the figures need its cairo driver (pngcairo,
svgcairo).  Leave it unset unless PLplot is installed in a non-standard place.
.TP
.B NTKHESS_LIB
Python bindings only: the path of libntkhess.so to load.
ENV
cat <<FILES
.SH FILES
.TP
.I MODEL/config.json, MODEL/W0.npy, MODEL/b0.npy, ...
A model directory: widths, activation, parametrization and bias scale in
config.json; the weights W_l of shape (n_{l+1}, n_l) and biases b_l as
float64 .npy files.
.TP
.I $DOC/
The documentation: conventions.md (parametrizations, parameter order, array
layout, losses, time t = k eta, random numbers, errors), data.md, figures.md,
deviations.md, precision.md, python.md, mpi.md, plots.md, fuzzing.md,
theory_validation.md.
.TP
.I <ntkhess.h>, libntkhess, libntkhess\-io, libntkhess\-plot
The C library (numerics), its file formats and its plots; compile flags from
\fBpkg\-config \-\-cflags \-\-libs ntkhess\fR (or ntkhess\-io, ntkhess\-plot).
.SH EXIT STATUS
0 on success, 1 on a runtime error, 2 on a usage error; errors are one line on
standard error.
.SH SEE ALSO
.BR pkg\-config (1),
.IR $DOC/conventions.md .
.PP
Jacot, Gabriel, Hongler, "The asymptotic spectrum of the Hessian of DNN
throughout training", ICLR 2020.
FILES
