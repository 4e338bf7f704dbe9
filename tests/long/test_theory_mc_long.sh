#!/usr/bin/env bash
# The slow sections of tests/test_theory_mc.c (about a minute): the n^-1/2
# rate at depth 3 and Corollary 1 against gradient descent on wide networks.
# The fast sections run in `make check`.
cd "$(dirname "$0")/../.." || exit 1
exec "${BUILD:-build}/tests/test_theory_mc" --long
