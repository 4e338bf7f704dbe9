#!/usr/bin/env bash
# Quick start: built-in data, a 3-layer network, training, and the exact
# curvature of its loss before and after.  Results in out/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/ntkhess
O=out/quickstart
mkdir -p $O
$B data sphere --n 128 --dim 20 --seed 1 --out $O/data
$B init --widths 20,400,400,1 --act nsoftplus --seed 1 --out $O/model0
$B curvature --model $O/model0 --data $O/data/X.npy --targets $O/data/Y.npy --out $O/curv0
$B train --model $O/model0 --data $O/data/X.npy --targets $O/data/Y.npy --lr 1 --steps 200 --log-every 20 --out $O/model1
$B curvature --model $O/model1 --data $O/data/X.npy --targets $O/data/Y.npy --out $O/curv1
echo "--- loss along training ($O/model1/train.csv)"
cat $O/model1/train.csv
echo "--- exact moments at t = 0 ($O/curv0/summary.json) and t = 200 ($O/curv1/summary.json)"
for d in curv0 curv1; do
  python3 -c "import json,sys; s=json.load(open('$O/$d/summary.json')); print('$d', 'loss %.4g' % s['loss'], 'Tr(I^k) =', ['%.4g' % x for x in s['tr_I']], 'Tr(S) = %.4g' % s['tr_S1'])"
done
