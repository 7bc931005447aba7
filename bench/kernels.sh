#!/bin/sh
# The whole catalog once per kernel recipe, one guest each, one after another.
# Usage: bench/kernels.sh [OUT_DIR] [RECIPE...]
#   (default /tmp/bh-bench-kernels; the 6.12 and 7.2 recipes on both arches)
# Prints one line per recipe: wall, exit status, summary, boots, kernel release, accel.
# Each recipe is warmed first with one case (download, extraction, initramfs, probe build).
set -eu
out=${1:-/tmp/bh-bench-kernels}
[ $# -gt 0 ] && shift
recipes=${*:-qemu-x86_64-6.12 qemu-arm64-6.12 qemu-x86_64-7.2 qemu-arm64-7.2}
here=$(cd "$(dirname "$0")/.." && pwd)
bh="$here/.venv/bin/binder-harness"
rm -rf "$out"; mkdir -p "$out"
for r in $recipes; do
    arch=${r#qemu-}; arch=${arch%%-*}
    "$bh" run --image "$r" --target "qemu:$arch" --out "$out/$r-warm" protocol.version >/dev/null 2>&1 || true
    t0=$(date +%s.%N)
    status=0
    "$bh" run --image "$r" --target "qemu:$arch" --seed 4242 --out "$out/$r" 2>"$out/$r.log" || status=$?
    t1=$(date +%s.%N)
    wall=$(echo "$t1 - $t0" | bc)
    facts=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); t=d['target']; s=d['summary']; \
print(f\"{s['passed']} passed, {s['failed']} failed, {s['error']} error, {s['skipped']} skipped; \
boots {d['timings']['boots']} ({d['timings']['boot_s']} s); {t['kernel_release']} {t['accel']}\")" "$out/$r/report.json")
    echo "$r: ${wall} s wall, exit $status, $facts"
done
