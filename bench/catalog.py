"""The whole catalog, today's way against the new default, in one invocation on one host (issue 25).

  today     `binder-harness run --target qemu:ARCH -j 1`: one guest at a time, each case on its
            own guest restored from the cached snapshot (the default before issue 25)
  default   `binder-harness run --target qemu:ARCH`: whatever the default is at this commit

Each figure is the wall clock of the real command, command to exit, as a user would time it.
The two modes alternate run by run (today, default, today, default, ...) so both see the same
load; the load average is read before and after every run and recorded beside it. Each run's
verdicts are compared, case by case and in report order, with the first today-run's: a mode that
changes a verdict or the order fails the benchmark.

Run it as bench/catalog.sh [--arch ARCH] [--runs N] [--record]; it writes OUT/catalog.json and
OUT/catalog.md, and with --record bench/catalog.md.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (bench/bench.py: BH, REPO, machine, phase_medians, log)

TARGET_CATALOG_S = 15.0  # issue 25: whole catalog per arch, TCG, this 2-core host
MODES = {"today (-j 1)": ["-j", "1"], "default": []}


def loadavg() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def one_run(mode: str, flags: list[str], arch: str, out: Path, i: int) -> dict:
    """One whole-catalog run, timed command to exit."""
    label = f"{mode.split()[0]}{''.join(flags)}-{arch}-{i}"
    run_dir = out / "runs" / label
    log = out / f"{label}.log"
    argv = [str(bench.BH), "run", "--target", f"qemu:{arch}", *flags, "--out", str(run_dir)]
    bench.log(f"{label}: {shlex.join(argv)}")
    load_before = loadavg()
    t0 = time.monotonic()
    with open(log, "w") as fh:
        status = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - t0
    row: dict = {"wall_s": round(wall, 2), "exit": status, "load_before": load_before, "load_after": loadavg(),
                 "dir": str(run_dir), "command": shlex.join(argv)}
    try:
        rep = json.loads((run_dir / "report.json").read_text())
    except (OSError, ValueError) as exc:
        row["failed"] = f"no report.json ({exc}); {log.name}: {bench.last_line(log)}"
        return row
    row["summary"] = rep["summary"]
    row["verdicts"] = [[c["id"], c["outcome"]] for c in rep["cases"]]
    row["boots"], row["restores"] = rep["timings"].get("boots"), rep["timings"].get("restores")
    row["jobs"] = rep.get("jobs", 1)
    bench.log(f"{label}: {wall:.1f} s, exit {status}, {rep['summary']}")
    return row


def measure(arch: str, runs: int, out: Path) -> dict:
    res: dict = {mode: {"runs": []} for mode in MODES}
    for i in range(runs):
        for mode, flags in MODES.items():
            res[mode]["runs"].append(one_run(mode, flags, arch, out, i))
    reference = next((r["verdicts"] for r in res[next(iter(MODES))]["runs"] if "verdicts" in r), None)
    for mode in MODES:
        rows = res[mode]["runs"]
        walls = [r["wall_s"] for r in rows]
        res[mode]["median_s"] = round(statistics.median(walls), 2)
        res[mode]["phases_median_s"] = bench.phase_medians([Path(r["dir"]) for r in rows])
        bad = [r for r in rows if r["exit"] != 0 or "failed" in r]
        changed = [r for r in rows if reference is not None and r.get("verdicts") != reference]
        if bad:
            res[mode]["failed"] = "; ".join(r.get("failed") or f"exit {r['exit']}: {counts(r.get('summary') or {})}" for r in bad)
        elif changed:
            res[mode]["failed"] = "verdicts or their order differ from the first today-run's"
    return res


def counts(summary: dict) -> str:
    """'46 passed, 1 failed': the outcomes a run had."""
    return ", ".join(f"{n} {k}" for k, n in summary.items() if n) or "no cases"


def markdown(r: dict) -> str:
    today, default = list(MODES)[:2]
    lines = [f"# The whole catalog: today's way against the default ({r['date']}, commit {r['commit']})", "",
             f"`{r['command']}` on {r['machine']['cpus']} x {r['machine']['cpu_model']}, accel {r['accel']}. "
             f"Wall clock of the real command, command to exit; medians of {r['runs']} run(s) per mode, the modes "
             f"alternating run by run. Load average {r['machine']['loadavg_start']} at the start, "
             f"{r['loadavg_end']} at the end.", ""]
    if r.get("note"):
        lines += [r["note"], ""]
    lines += [f"- **{m}:** `" + " ".join(["binder-harness run --target qemu:ARCH", *flags]) + "`"
              for m, flags in MODES.items()]
    lines += [
              "", f"| arch | {today} | {default} | {today} / {default} | guests (boots + restores) | result |",
              "| --- | ---: | ---: | ---: | --- | --- |"]
    for arch, modes in r["arches"].items():
        a, b = modes[today], modes[default]
        ratio = f"{a['median_s'] / b['median_s']:.2f}x" if b.get("median_s") else "-"
        guests = "; ".join(f"{m}: {x['runs'][-1].get('boots', '?')} + {x['runs'][-1].get('restores', '?')}"
                           for m, x in modes.items())
        result = "; ".join(f"{m}: FAILED: {x['failed']}" if "failed" in x else
                           f"{m}: {counts(x['runs'][-1].get('summary') or {})}" for m, x in modes.items())
        lines.append(f"| {arch} | {a['median_s']:.2f} s | {b['median_s']:.2f} s | {ratio} | {guests} | {result} |")
    lines += ["", f"Target (issue 25): whole catalog <= {TARGET_CATALOG_S:.0f} s per arch.", "",
              "Every run, in the order made (wall s; load average before -> after):", ""]
    for arch, modes in r["arches"].items():
        for m, x in modes.items():
            lines.append(f"- {arch}, {m}: " + ", ".join(
                f"{row['wall_s']:.1f} s ({row['load_before'].split()[0]} -> {row['load_after'].split()[0]})"
                for row in x["runs"]))
    lines += ["", "Phases (medians, s, from report.json `timings.phases`; with several guests at once they are "
              "summed over the guests, so they can exceed the wall clock):", ""]
    for arch, modes in r["arches"].items():
        keys = sorted({k for x in modes.values() for k in x.get("phases_median_s", {})})
        lines += [f"| {arch} phase | " + " | ".join(modes) + " |", "| --- |" + " ---: |" * len(modes)]
        for k in keys:
            lines.append(f"| {k} | " + " | ".join(f"{x.get('phases_median_s', {}).get(k, 0):.2f}"
                                                  for x in modes.values()) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/catalog.sh", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1, help="runs per mode and arch; default 1")
    ap.add_argument("--arch", action="append", choices=bench.ARCHES, help="default x86_64 (repeatable)")
    ap.add_argument("--candidate", action="append", default=[], metavar="FLAGS",
                    help="also measure `run --target qemu:ARCH FLAGS` (e.g. '-j 2'), alternating with the others")
    ap.add_argument("--note", default="", help="a line for the .md, e.g. what else loaded the host")
    ap.add_argument("--out", default=None)
    ap.add_argument("--record", action="store_true", help="also write bench/catalog.md")
    ap.add_argument("--render", metavar="CATALOG_JSON",
                    help="measure nothing: write the .md again from a run's catalog.json (with --note, its new note)")
    args = ap.parse_args(argv)
    if args.render:
        r = json.loads(Path(args.render).read_text())
        r["note"] = args.note or r.get("note", "")
        md = markdown(r)
        if args.record:
            (bench.REPO / "bench" / "catalog.md").write_text(md)
        print(md)
        return 0
    if args.runs < 1:
        ap.error(f"--runs {args.runs}: must be at least 1")
    for flags in args.candidate:
        MODES[f"candidate ({flags})"] = shlex.split(flags)
    out = Path(args.out or tempfile.mkdtemp(prefix="bh-bench-catalog-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    shown = [("(below)" if i and argv[i - 1] == "--note" else a) for i, a in enumerate(argv)]
    commit = subprocess.run(["git", "-C", str(bench.REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    r: dict = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
               "command": shlex.join(["bench/catalog.sh", *shown]),
               "machine": bench.machine(), "accel": os.environ.get("BINDER_HARNESS_ACCEL", "auto"),
               "runs": args.runs, "note": args.note, "arches": {}}
    for arch in args.arch or ["x86_64"]:
        r["arches"][arch] = measure(arch, args.runs, out)
    r["loadavg_end"] = loadavg()
    (out / "catalog.json").write_text(json.dumps(r, indent=1) + "\n")
    md = markdown(r)
    (out / "catalog.md").write_text(md)
    if args.record:
        (bench.REPO / "bench" / "catalog.md").write_text(md)
    print(md)
    return 1 if any("failed" in m for a in r["arches"].values() for m in a.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
