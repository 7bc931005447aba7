#!/bin/sh
# The whole catalog on one arch with one guest, then with two guests at once (-j 2).
# Usage: bench/parallel.sh [ARCH] [OUT_DIR]   (default x86_64, /tmp/bh-bench-parallel)
# Prints one line per run and the -j1/-j2 wall-clock ratio; run on an otherwise idle machine.
set -eu
arch=${1:-x86_64}
out=${2:-/tmp/bh-bench-parallel}
here=$(cd "$(dirname "$0")/.." && pwd)
bh="$here/.venv/bin/binder-harness"
rm -rf "$out"; mkdir -p "$out"
"$bh" run --target "qemu:$arch" --seed 4242 --out "$out/warm" protocol.version >/dev/null 2>&1 || true  # warm caches
for j in 1 2; do
    t0=$(date +%s.%N)
    status=0
    "$bh" run --target "qemu:$arch" --seed 4242 -j "$j" --out "$out/j$j" 2>"$out/j$j.log" || status=$?
    t1=$(date +%s.%N)
    wall=$(echo "$t1 - $t0" | bc)
    summary=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['summary'], 'boots', d['timings']['boots'])" "$out/j$j/report.json")
    echo "-j $j: ${wall} s wall, exit $status, $summary"
    eval "wall_$j=$wall"
done
echo "ratio -j1/-j2: $(echo "scale=2; $wall_1 / $wall_2" | bc)"
