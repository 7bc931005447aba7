#!/bin/sh
# A 4-cell matrix (bench/matrix4.yaml: 2 kernels x 2 arches) with -j 1 (cells one after another)
# and -j 2 (two cells at once, one guest each), side by side.
# Usage: bench/matrix_parallel.sh [OUT_DIR]   (default /tmp/bh-bench-matrix)
# Prints one line per run and the -j1/-j2 wall-clock ratio; run on an otherwise idle machine.
set -eu
out=${1:-/tmp/bh-bench-matrix}
here=$(cd "$(dirname "$0")/.." && pwd)
bh="$here/.venv/bin/binder-harness"
rm -rf "$out"; mkdir -p "$out"
"$bh" images fetch qemu-x86_64 qemu-arm64 qemu-x86_64-6.1.0-56 qemu-arm64-6.1.0-56 >/dev/null 2>&1  # warm caches
for j in 1 2; do
    t0=$(date +%s.%N)
    status=0
    "$bh" matrix "$here/bench/matrix4.yaml" -j "$j" --out "$out/j$j" 2>"$out/j$j.log" || status=$?
    t1=$(date +%s.%N)
    wall=$(echo "$t1 - $t0" | bc)
    summary=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['summary'], [c['status'] for c in d['cells']])" "$out/j$j/matrix.json")
    echo "-j $j: ${wall} s wall, exit $status, $summary"
    eval "wall_$j=$wall"
done
echo "ratio -j1/-j2: $(echo "scale=2; $wall_1 / $wall_2" | bc)"
