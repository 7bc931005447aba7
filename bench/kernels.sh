#!/bin/sh
# The whole catalog once per kernel recipe, one guest each, one recipe after another.
# Usage: bench/kernels.sh [--record] [--out DIR] [RECIPE...]
#   default DIR /tmp/bh-bench-kernels; default recipes: every shipped one (images/*.yaml)
#   --record  also write bench/kernels.md (commit, host, load average, per-recipe figures)
# Each recipe is warmed first with one case (download, extraction, initramfs, probe build, and
# the snapshot every case's guest is then restored from), then timed: wall clock of
#   binder-harness run --image RECIPE --target qemu:ARCH --seed 4242 --out DIR/RECIPE
# Prints one line per recipe: wall, exit status, summary, guests booted/restored, release, accel.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bh="$here/.venv/bin/binder-harness"
py="$here/.venv/bin/python"
out=/tmp/bh-bench-kernels
record=0
while [ $# -gt 0 ]; do
    case $1 in
        --record) record=1; shift ;;
        --out) out=$2; shift 2 ;;
        -*) echo "bench/kernels.sh: unknown option $1 (use --record, --out DIR, RECIPE...)" >&2; exit 2 ;;
        *) break ;;
    esac
done
recipes=${*:-$(cd "$here/images" && ls *.yaml | sed 's/\.yaml$//')}
rm -rf "$out"; mkdir -p "$out"
commit=$(git -C "$here" rev-parse --short HEAD)
dirty=$(git -C "$here" status --porcelain --untracked-files=no | wc -l)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load0=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$out/kernels.jsonl"
for r in $recipes; do
    arch=${r#qemu-}; arch=${arch%%-*}
    "$bh" run --image "$r" --target "qemu:$arch" --out "$out/$r-warm" protocol.version >/dev/null 2>&1 || true
    la=$(cut -d' ' -f1-3 /proc/loadavg)
    t0=$(date +%s.%N)
    status=0
    "$bh" run --image "$r" --target "qemu:$arch" --seed 4242 --out "$out/$r" 2>"$out/$r.log" || status=$?
    t1=$(date +%s.%N)
    lb=$(cut -d' ' -f1-3 /proc/loadavg)
    "$py" - "$r" "$t0" "$t1" "$status" "$la" "$lb" "$out/$r/report.json" >>"$out/kernels.jsonl" <<'EOF'
import json, sys
recipe, t0, t1, status, la, lb, path = sys.argv[1:]
try:
    d = json.load(open(path))
except (OSError, ValueError) as exc:  # the run ended before writing its report: say so in the row
    d = {"target": {"kernel_release": "?", "accel": "?"}, "timings": {}, "cases": [],
         "summary": {"passed": 0, "failed": 0, "error": 0, "skipped": 0}}
    d["cases"] = [{"id": "(run)", "outcome": "error", "reason": f"no report.json ({exc.__class__.__name__})"}]
t = d["timings"]
print(json.dumps({"recipe": recipe, "wall_s": round(float(t1) - float(t0), 1), "exit": int(status),
                  "load_before": la, "load_after": lb, "release": d["target"]["kernel_release"],
                  "accel": d["target"]["accel"], "summary": d["summary"], "cases": len(d["cases"]),
                  "boots": t.get("boots", 0), "boot_s": t.get("boot_s", 0), "restores": t.get("restores", 0),
                  "restore_s": t.get("restore_s", 0),
                  "not_passed": [[c["id"], c["outcome"], c["reason"]] for c in d["cases"] if c["outcome"] != "passed"]}))
EOF
    tail -n 1 "$out/kernels.jsonl" | "$py" -c "import json,sys; d=json.loads(sys.stdin.read()); s=d['summary']; \
print(f\"{d['recipe']}: {d['wall_s']} s wall, exit {d['exit']}, {s['passed']} passed, {s['failed']} failed, \
{s['error']} error, {s['skipped']} skipped of {d['cases']}; boots {d['boots']}, restores {d['restores']}; \
{d['release']} {d['accel']}; load {d['load_before']} -> {d['load_after']}\")"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$record" -eq 1 ] || exit 0
"$py" - "$out/kernels.jsonl" "$here/bench/kernels.md" "$commit" "$dirty" "$started" "$load0" "$load1" "$out" <<'EOF'
import json, os, platform, sys
src, dst, commit, dirty, started, load0, load1, out = sys.argv[1:]
rows = [json.loads(line) for line in open(src)]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 2**20
lines = [
    "# The whole catalog on every shipped kernel recipe",
    "",
    f"Written by `bench/kernels.sh --record` on {started}, commit `{commit}`"
    + (f" ({dirty} tracked files changed)" if int(dirty) else "") + f"; {os.cpu_count()} x {cpu}, {mem:.0f} GiB;"
    f" load average {load0} at the start, {load1} at the end (other users' guests share this host: compare"
    " the rows with each other, not with idle-host figures).",
    "",
    "Per recipe: one warm-up case (`protocol.version`: download, extraction, initramfs, probe build, the snapshot),"
    f" then the wall clock of `binder-harness run --image RECIPE --target qemu:ARCH --seed 4242 --out {out}/RECIPE`,"
    " each case on its own guest restored from that snapshot. Load is the 1/5/15-minute average before and after"
    " that run.",
    "",
    "| recipe | kernel | accel | wall | guests booted + restored | result | exit | load before -> after |",
    "| --- | --- | --- | ---: | --- | --- | ---: | --- |",
]
for d in rows:
    s = d["summary"]
    result = f"{s['passed']} of {d['cases']} passed" + "".join(
        f", {s[k]} {k}" for k in ("failed", "error", "skipped") if s[k])
    lines.append(f"| `{d['recipe']}` | {d['release']} | {d['accel']} | {d['wall_s']:.1f} s | {d['boots']} + {d['restores']} |"
                 f" {result} | {d['exit']} | {d['load_before']} -> {d['load_after']} |")
bad = [(d["recipe"], *c) for d in rows for c in d["not_passed"]]
if bad:
    lines += ["", "Not passed:", ""] + [f"- `{r}` {i}: {o}: {why}" for r, i, o, why in bad]
open(dst, "w").write("\n".join(lines) + "\n")
print(f"wrote {dst}")
EOF
