"""Restore, don't boot (issue 17): side by side, in one run, on both arches.

  one case    `binder-harness run one_copy.sync_sizes` on a guest restored from the cached
              snapshot, against the same command booting its guest (--no-snapshot): medians
  catalog     the whole catalog, each case on its own restored guest (the default), against
              today's one shared boot (--shared-boot --no-snapshot)
  virtme-ng   the same kernel and check booted by virtme-ng (bench.py's section), x86_64 only

Run it as bench/restore.sh (BINDER_HARNESS_ACCEL=tcg for TCG figures); it writes OUT/restore.json
and OUT/restore.md, and with --record bench/restore.md. A section that fails says so in one
line and the others are still measured (bench.py's `guarded`).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (bench/bench.py: hyperfine, run_dir, phase_medians, guarded)

TARGET_ONE_CASE_S = 1.0
MODES = {"one case": {"restore": "", "boot": "--no-snapshot"},
         "catalog": {"per-case restores": "", "shared boot": "--shared-boot --no-snapshot"}}


def measure(section: str, mode: str, flags: str, arch: str, runs: int, out: Path, warmup: int) -> dict:
    label = f"{section.replace(' ', '')}-{mode.replace(' ', '').replace('-', '')}-{arch}"
    lg = out / f"{label}.log"
    cases = bench.CASE if section == "one case" else ""
    res = bench.hyperfine(label, f"{bench.BH} run {cases} {flags} --target qemu:{arch} --out {bench.run_dir(out, label)} "
                                 f">{shlex.quote(str(lg))} 2>&1", runs, out, warmup=warmup, logs=(lg,))
    dirs = sorted((out / "runs").glob(f"{label}-*"), key=lambda p: p.stat().st_mtime)[-runs:]
    res["phases_median_s"] = bench.phase_medians(dirs)
    reports = [json.loads((d / "report.json").read_text()) for d in dirs if (d / "report.json").exists()]
    if reports:
        last = reports[-1]
        res["summary"] = last["summary"]
        res["boots"], res["restores"] = last["timings"]["boots"], last["timings"].get("restores", 0)
    return res


def markdown(r: dict) -> str:
    lines = [f"# Restore vs boot ({r['date']}, commit {r['commit']})", "",
             f"`{r['command']}` on {r['machine']['cpus']} x {r['machine']['cpu_model']}, accel {r['accel']}; "
             f"medians of hyperfine runs of the real command (wall clock, command to verdict); "
             f"load average {r['machine'].get('loadavg_start', '?')} at the start, "
             f"{r['machine'].get('loadavg_end', '?')} at the end.", "",
             "| figure | arch | A | B | B / A | guests started (boots + restores) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for section, (a, b) in (("one case", ("restore", "boot")), ("catalog", ("per-case restores", "shared boot"))):
        for arch, modes in r[section].items():
            x, y = modes.get(a, {}), modes.get(b, {})
            def fmt(d):
                return f"FAILED: {d['failed']}" if "failed" in d else f"{d.get('median_s', 0):.2f} s"
            ratio = (f"{y['median_s'] / x['median_s']:.1f}x" if "median_s" in x and "median_s" in y else "-")
            started = "; ".join(f"{m}: {d.get('boots', '?')} + {d.get('restores', '?')}" for m, d in modes.items())
            name = (f"one case ({bench.CASE}): A restored, B booted" if section == "one case"
                    else "whole catalog: A each case on its own restored guest, B one shared boot")
            lines.append(f"| {name} | {arch} | {fmt(x)} | {fmt(y)} | {ratio} | {started} |")
    vng = r.get("virtme_ng")
    if vng:
        restored = r["one case"].get("x86_64", {}).get("restore", {}).get("median_s")
        figure = (f"FAILED: {vng['failed']}" if "failed" in vng else vng.get("skipped") or f"{vng['median_s']:.2f} s")
        ratio = f" ({vng['median_s'] / restored:.0f}x the restored one case)" if restored and "median_s" in vng else ""
        lines += ["", f"virtme-ng, the same kernel and check, x86_64: {figure}{ratio}."]
    lines += ["", f"Target for one case, restored: <= {TARGET_ONE_CASE_S:.1f} s.", "",
              "Phases (medians, s) of the restored one-case runs:", ""]
    for arch, modes in r["one case"].items():
        ph = modes.get("restore", {}).get("phases_median_s", {})
        lines.append(f"- {arch}: " + ", ".join(f"{k} {v}" for k, v in ph.items()))
    return "\n".join(lines) + "\n"


def render(results: Path) -> str:
    """restore.md again from a run's restore.json (e.g. after the table's layout changed)."""
    return markdown(json.loads(results.read_text()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/restore.sh", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per one-case figure; default 5")
    ap.add_argument("--catalog-runs", type=int, default=1, help="runs per catalog figure; default 1")
    ap.add_argument("--vng-runs", type=int, default=3, help="virtme-ng runs; 0 leaves it out; default 3")
    ap.add_argument("--arch", action="append", choices=bench.ARCHES, help="default both")
    ap.add_argument("--out", default=None)
    ap.add_argument("--record", action="store_true", help="also write bench/restore.md")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="bh-bench-restore-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(bench.REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    r: dict = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
               "command": shlex.join(["bench/restore.sh", *(argv if argv is not None else sys.argv[1:])]),
               "machine": bench.machine(), "accel": os.environ.get("BINDER_HARNESS_ACCEL", "auto")}
    for section in MODES:
        r[section] = {}
        for arch in args.arch or bench.ARCHES:
            runs = args.runs if section == "one case" else args.catalog_runs
            # one warm-up per one-case figure: the first restore run makes the snapshot if none is cached
            r[section][arch] = {mode: bench.guarded(f"{section}, {mode}, qemu:{arch}", measure, section, mode, flags,
                                                    arch, runs, out, 1 if section == "one case" else 0)
                                for mode, flags in MODES[section].items()}
    r["machine"]["loadavg_end"] = " ".join(open("/proc/loadavg").read().split()[:3])
    if args.vng_runs:
        r["virtme_ng"] = bench.guarded("virtme-ng", bench.bench_vng, args.vng_runs, out)
    (out / "restore.json").write_text(json.dumps(r, indent=1) + "\n")
    md = markdown(r)
    (out / "restore.md").write_text(md)
    if args.record:
        (bench.REPO / "bench" / "restore.md").write_text(md)
    print(md)
    return 1 if bench.FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
