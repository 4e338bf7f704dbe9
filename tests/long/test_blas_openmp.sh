#!/usr/bin/env bash
# make BLAS=openmp (OpenBLAS's OpenMP build, the opt-in of docs/figures.md,
# "Cost of a trial") must keep building and give the default build's numbers:
# it is built in build-ompblas/, linked against the openblas-openmp folder
# (checked with ldd), the engine tests run against it, and bench/bitcheck.sh
# requires every fig1 trial row (float64 and float32, 1 and 2 threads, four
# nonlinearities, with the threaded elementwise loops active at width 300)
# equal byte for byte to the default build's.  libopenblas-openmp-dev is
# installed by scripts/setup.sh --deps and .ci/run: its absence is a failure.
cd "$(dirname "$0")/../.." || exit 1
pass=0 fail=0
ok() { if [ "$1" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2"; fi; }
B=build-ompblas w=$(mktemp -d)
make -s -j2 BUILD=$B BLAS=openmp $B/ntkhess $B/tests/test_f32 $B/tests/test_net $B/tests/test_stream \
    $B/tests/test_est > "$w/make.log" 2>&1
ok $? "make BLAS=openmp ($(tail -3 "$w/make.log" | tr '\n' ' '))"
ldd $B/tests/test_net 2>/dev/null | grep -q 'openblas-openmp/'
ok $? "test_net links the openmp OpenBLAS: $(ldd $B/tests/test_net 2>/dev/null | grep -i blas | tr '\n' ' ')"
for t in test_f32 test_net test_stream test_est; do
    line=$(OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=passive $B/tests/$t 2>&1 | tail -1)
    case "$line" in *" 0 failed"*) ok 0 "";; *) ok 1 "$t under BLAS=openmp: $line";; esac
done
make -s -j2 build/ntkhess > /dev/null 2>&1
OMP_WAIT_POLICY=passive NTKHESS_DATA=${NTKHESS_DATA:-data} sh bench/bitcheck.sh build/ntkhess $B/ntkhess "$w" > "$w/bitcheck.out" 2>&1
ok $? "bitcheck default vs BLAS=openmp: $(grep -c '^same' "$w/bitcheck.out") same, $(grep DIFF "$w/bitcheck.out" | tr '\n' ' ')"
n=$(grep -c '^same' "$w/bitcheck.out")
[ "$n" -eq 16 ]; ok $? "bitcheck compared 16 trial files (got $n)"
rm -rf "$w"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
