#!/usr/bin/env bash
# make asan: the quick and long suites (less this test, tsan, fuzzing and the
# fresh clone) built with AddressSanitizer + UndefinedBehaviorSanitizer in
# build-asan/.  Its closing line "N passed, N failed" is this test's.
cd "$(dirname "$0")/../.." || exit 1
make -s asan 2>&1
