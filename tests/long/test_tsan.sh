#!/usr/bin/env bash
# make tsan: the C tests built with ThreadSanitizer (clang, libomp + Archer)
# in build-tsan/.  Its closing line "N passed, N failed" is this test's.
cd "$(dirname "$0")/../.." || exit 1
make -s tsan 2>&1
