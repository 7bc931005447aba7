#!/bin/sh
# The C binder driver against the Rust one on the same kernel source, case by case.
# Usage: bench/rust_vs_c.sh [--record] [--out DIR] [C_RECIPE RUST_RECIPE]
#   default recipes: qemu-x86_64-7.3 (Debian's own 7.3.4 kernel, the C driver as a module) and
#   qemu-x86_64-7.3-rust (the same source built by the harness with the Rust driver alone);
#   default DIR /tmp/bh-bench-rust-vs-c
#   --record  also write bench/rust-vs-c.md: commit, date, host, load, both runs, and the table
# Runs the whole catalog on each, one after the other (never both at once: a 2-core host), as
#   binder-harness run --image RECIPE --target qemu:ARCH --seed 4242 --out DIR/RECIPE
# (one seed, so the stress cases send the same streams), then
#   binder-harness compare DIR/C_RECIPE DIR/RUST_RECIPE --out DIR/rust-vs-c.html --md DIR/table.md
# It never starts a kernel build: when the Rust recipe's kernel is not cached it stops, saying
# how to build it (binder-harness images build RECIPE, about 18 minutes: bench/rust-kernel.md).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bh="$here/.venv/bin/binder-harness"
py="$here/.venv/bin/python"
out=/tmp/bh-bench-rust-vs-c
record=0
while [ $# -gt 0 ]; do
    case $1 in
        --record) record=1; shift ;;
        --out) out=$2; shift 2 ;;
        -*) echo "bench/rust_vs_c.sh: unknown option $1 (use --record, --out DIR, C_RECIPE RUST_RECIPE)" >&2; exit 2 ;;
        *) break ;;
    esac
done
c_recipe=${1:-qemu-x86_64-7.3}
rust_recipe=${2:-qemu-x86_64-7.3-rust}
arch=${c_recipe#qemu-}; arch=${arch%%-*}
"$py" - "$rust_recipe" <<'EOF'
import sys
from harness.building.kernel_build import cached_build
from harness.building.recipes import find_recipe, load_recipe
from harness.errors import ConfigError
try:
    recipe = load_recipe(find_recipe(sys.argv[1]))
except ConfigError as exc:
    sys.exit(f"bench/rust_vs_c.sh: {exc}")
if recipe.kernel_source.build is not None and cached_build(recipe) is None:
    sys.exit(f"bench/rust_vs_c.sh: {recipe.name}'s kernel is not built; build it once with "
             f"'binder-harness images build {sys.argv[1]}' (about 18 min on 2 cores), then run this again")
EOF
rm -rf "$out"; mkdir -p "$out"
commit=$(git -C "$here" rev-parse --short HEAD)
dirty=$(git -C "$here" status --porcelain --untracked-files=no | wc -l)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
: >"$out/runs.jsonl"
for r in "$c_recipe" "$rust_recipe"; do
    la=$(cut -d' ' -f1-3 /proc/loadavg)
    t0=$(date +%s.%N)
    status=0
    "$bh" run --image "$r" --target "qemu:$arch" --seed 4242 --out "$out/$r" 2>"$out/$r.log" || status=$?
    t1=$(date +%s.%N)
    lb=$(cut -d' ' -f1-3 /proc/loadavg)
    "$py" - "$r" "$t0" "$t1" "$status" "$la" "$lb" "$out/$r/report.json" >>"$out/runs.jsonl" <<'EOF'
import json, sys
recipe, t0, t1, status, la, lb, path = sys.argv[1:]
try:
    d = json.load(open(path))
except (OSError, ValueError):
    d = {"target": {}, "summary": {}}
print(json.dumps({"recipe": recipe, "wall_s": round(float(t1) - float(t0), 1), "exit": int(status),
                  "load_before": la, "load_after": lb, "release": d["target"].get("kernel_release", "?"),
                  "driver": d["target"].get("driver", "?"), "source": d["target"].get("kernel_source", "?"),
                  "summary": d["summary"]}))
EOF
    tail -n 1 "$out/runs.jsonl"
done
"$bh" compare "$out/$c_recipe" "$out/$rust_recipe" --out "$out/rust-vs-c.html" --md "$out/table.md"
[ "$record" -eq 1 ] || exit 0
"$py" - "$out/runs.jsonl" "$out/table.md" "$here/bench/rust-vs-c.md" "$commit" "$dirty" "$started" "$out" <<'EOF'
import json, os, platform, sys
runs, table, dst, commit, dirty, started, out = sys.argv[1:]
rows = [json.loads(line) for line in open(runs)]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 2**20


def result(s):
    parts = [f"{s.get(k, 0)} {k.replace('_', ' ')}" for k in ("passed", "failed", "error", "skipped", "not_applicable")
             if s.get(k)]
    return ", ".join(parts) or "no report"


lines = [
    "# The C binder driver against the Rust one, on the same kernel source",
    "",
    f"Written by `bench/rust_vs_c.sh --record` on {started}, commit `{commit}`"
    + (f" ({dirty} tracked files changed)" if int(dirty) else "") + f"; {os.cpu_count()} x {cpu}, {mem:.0f} GiB.",
    "Load is the 1/5/15-minute average before and after each run (other users' guests share this host).",
    "",
    "Each column is the whole catalog, `binder-harness run --image RECIPE --target qemu:ARCH --seed 4242`;"
    " the table is `binder-harness compare` of the two run directories (harness/reports/driver_compare.py):"
    " a case agrees when its outcome is the same on both drivers. Below the table, every case with a"
    " difference is explained from its checks: a *declared* difference is a check whose expectation differs,"
    " each driver's citing its own source (binder.c functions for C, `drivers/android/binder/*.rs` for Rust);"
    " *verdict*: a check that passes on one driver only, with both measured values and its ref;"
    " *only c* / *only rust*: a check one run makes; *same ref*: expected values that differ under one ref"
    " (a value taken from the run itself, such as an inode number); and the reason of a case not judged on"
    " one side. A case that disagrees is a finding against the driver that departs from the uapi's"
    " documented meaning (README, \"Two drivers, one catalog\"); the table follows the catalog, so re-run"
    " the script rather than editing it.",
    "",
    "| recipe | driver | kernel | source | wall | result | exit | load before -> after |",
    "| --- | --- | --- | --- | ---: | --- | ---: | --- |",
]
for r in rows:
    lines.append(f"| `{r['recipe']}` | {r['driver']} | {r['release']} | {r['source']} | {r['wall_s']} s | "
                 f"{result(r['summary'])} | {r['exit']} | {r['load_before']} -> {r['load_after']} |")
lines += ["", open(table).read().replace(f"`{out}/", "`DIR/")]
with open(dst, "w") as fh:
    fh.write("\n".join(lines).rstrip() + "\n")
print(dst)
EOF
