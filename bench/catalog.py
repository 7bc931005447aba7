"""The whole catalog, today's way against the new default, in one invocation on one host (issue 25).

  before    the harness at BASE (default BASELINE below: the last commit before issue 25's changes),
            checked out into a scratch git worktree and run with this venv's Python:
            `python -m harness.cli run --target qemu:ARCH` (its default then: one guest at a time,
            each case on its own guest restored from the cached snapshot, the next restored meanwhile)
  default   `binder-harness run --target qemu:ARCH` at this commit (its default now: -j auto)

Each figure is the wall clock of the real command, command to exit, as a user would time it:
the whole catalog on each arch; with --both, both arches' catalogs at once (two processes, the
wall clock until both exit); with --one, one case (one_copy.sync_sizes) on x86_64. The modes
alternate run by run (before, default, before, default, ...) so both see the same load; the load
average is read before and after every run and recorded beside it. Each run's verdicts are
compared, case by case and in report order, with the first before-run's: a mode that changes a
verdict or the order fails the benchmark.

Run it as bench/catalog.sh [--arch ARCH] [--both] [--one] [--runs N] [--record]; it writes
OUT/catalog.json and OUT/catalog.md, and with --record bench/catalog.md.
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
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (bench/bench.py: BH, REPO, machine, phase_medians, log)

TARGETS_S = {"catalog": 15.0, "both": 25.0, "one": 0.6}  # issue 25, TCG, this 2-core host
BASELINE = "6dedc07"  # the last commit before issue 25's changes: today's way
ONE_CASE = "one_copy.sync_sizes"


@dataclass
class Mode:
    """One way to run the harness: the command before `run`, and where and how it runs."""

    name: str
    argv: list[str]  # up to and including the harness's entry point
    flags: list[str] = field(default_factory=list)  # after `run --target qemu:ARCH`
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def shown(self) -> str:
        where = "(in a worktree of that commit) " if self.cwd else ""
        return where + " ".join(["binder-harness run --target qemu:ARCH", *self.flags])


def baseline_mode(rev: str, scratch: Path) -> Mode:
    """The harness at `rev`, checked out into scratch/base (this venv's Python runs it)."""
    tree = scratch / "base"
    if not tree.exists():
        subprocess.run(["git", "-C", str(bench.REPO), "worktree", "add", "--detach", str(tree), rev],
                       check=True, capture_output=True)
    short = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True, check=True).stdout.strip()
    python = str(bench.REPO / ".venv" / "bin" / "python")
    # byte-compiled as scripts/setup compiles this tree: a host with PYTHONDONTWRITEBYTECODE set
    # would otherwise charge the old harness with compiling itself at every start
    subprocess.run([python, "-m", "compileall", "-q", "harness", "cases"], cwd=tree, check=True, capture_output=True)
    return Mode(f"before ({short})", [python, "-m", "harness.cli"], cwd=tree, env={"PYTHONPATH": str(tree)})


def loadavg() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def _start(mode: Mode, what: list[str], arch: str, run_dir: Path, log: Path) -> subprocess.Popen:
    argv = [*mode.argv, "run", *what, "--target", f"qemu:{arch}", *mode.flags, "--out", str(run_dir)]
    bench.log(f"{run_dir.name}: {shlex.join(argv)}")
    return subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=mode.cwd,
                            env={**os.environ, **mode.env})


def one_run(mode: Mode, kind: str, arches: list[str], out: Path, i: int) -> dict:
    """One timed run of `kind` (catalog, both or one) in `mode`: every arch's process started at
    once, timed from the first start to the last exit."""
    tag = mode.name.split()[0]
    what = [ONE_CASE] if kind == "one" else []
    labels = [f"{tag}-{kind}-{arch}-{i}" for arch in arches]
    load_before = loadavg()
    t0 = time.monotonic()
    procs = [_start(mode, what, arch, out / "runs" / label, out / f"{label}.log") for arch, label in zip(arches, labels)]
    status = max(p.wait() for p in procs)
    wall = time.monotonic() - t0
    row: dict = {"wall_s": round(wall, 2), "exit": status, "load_before": load_before, "load_after": loadavg(),
                 "dirs": [str(out / "runs" / label) for label in labels]}
    verdicts, summaries = [], []
    for arch, label in zip(arches, labels):
        try:
            rep = json.loads((out / "runs" / label / "report.json").read_text())
        except (OSError, ValueError) as exc:
            row["failed"] = f"{arch}: no report.json ({exc}); {label}.log: {bench.last_line(out / f'{label}.log')}"
            return row
        verdicts += [[arch, c["id"], c["outcome"]] for c in rep["cases"]]
        summaries.append(rep["summary"])
        row.setdefault("boots", 0)
        row["boots"] += rep["timings"].get("boots") or 0
        row["restores"] = row.get("restores", 0) + (rep["timings"].get("restores") or 0)
        row["jobs"] = rep.get("jobs", 1)
    row["verdicts"] = verdicts
    row["summary"] = {k: sum(s.get(k, 0) for s in summaries) for k in summaries[0]}
    bench.log(f"{labels[0]}: {wall:.2f} s, exit {status}, {row['summary']}")
    return row


WARM_UP = ["protocol.version", "compat.version"]  # each mode's probes built (native and 32-bit) before timing


def warm_up(modes: list[Mode], arches: list[str], out: Path) -> None:
    """One untimed run per mode and arch: probes built, snapshot saved, nothing compiled while timed."""
    for m in modes:
        for arch in arches:
            label = f"warm-{m.name.split()[0]}-{arch}"
            _start(m, WARM_UP, arch, out / "runs" / label, out / f"{label}.log").wait()


def measure(modes: list[Mode], kind: str, arches: list[str], runs: int, out: Path) -> dict:
    res: dict = {m.name: {"runs": []} for m in modes}
    for i in range(runs):
        for m in modes:
            res[m.name]["runs"].append(one_run(m, kind, arches, out, i))
    reference = next((r["verdicts"] for r in res[modes[0].name]["runs"] if "verdicts" in r), None)
    for m in modes:
        rows = res[m.name]["runs"]
        res[m.name]["median_s"] = round(statistics.median(r["wall_s"] for r in rows), 2)
        res[m.name]["phases_median_s"] = bench.phase_medians([Path(r["dirs"][0]) for r in rows])
        bad = [r for r in rows if r["exit"] != 0 or "failed" in r]
        changed = [r for r in rows if reference is not None and r.get("verdicts") != reference]
        if bad:
            res[m.name]["failed"] = "; ".join(r.get("failed") or f"exit {r['exit']}: {counts(r.get('summary') or {})}"
                                              for r in bad)
        elif changed:
            res[m.name]["failed"] = "verdicts or their order differ from the first before-run's"
    return res


def counts(summary: dict) -> str:
    """'46 passed, 1 failed': the outcomes a run had."""
    return ", ".join(f"{n} {k}" for k, n in summary.items() if n) or "no cases"


ROWS = {"catalog": "whole catalog, {arch}", "both": "both arches' catalogs at once", "one": "one case ({case}), {arch}"}


def markdown(r: dict) -> str:
    names = r["modes"]
    before, default = names[0], names[1]
    lines = [f"# The whole catalog: today's way against the new default ({r['date']}, commit {r['commit']})", "",
             f"`{r['command']}` on {r['machine']['cpus']} x {r['machine']['cpu_model']}, accel {r['accel']}. "
             f"Wall clock of the real command, command to exit; medians of {r['runs']} run(s) per mode, the modes "
             f"alternating run by run. Load average {r['machine']['loadavg_start']} at the start, "
             f"{r['loadavg_end']} at the end.", ""]
    if r.get("note"):
        lines += [r["note"], ""]
    lines += [f"- **{name}:** `{shown}`" for name, shown in r["shown"].items()]
    lines += ["", f"| what | {before} | {default} | {before} / {default} | target | guests (boots + restores) | result |",
              "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for key, modes in r["rows"].items():
        kind, arch = key.split(":")
        a, b = modes[before], modes[default]
        ratio = f"{a['median_s'] / b['median_s']:.2f}x" if b.get("median_s") else "-"
        guests = "; ".join(f"{m}: {x['runs'][-1].get('boots', '?')} + {x['runs'][-1].get('restores', '?')}"
                           for m, x in modes.items())
        result = "; ".join(f"{m}: FAILED: {x['failed']}" if "failed" in x else
                           f"{m}: {counts(x['runs'][-1].get('summary') or {})}" for m, x in modes.items())
        what = ROWS[kind].format(arch=arch, case=ONE_CASE)
        lines.append(f"| {what} | {a['median_s']:.2f} s | {b['median_s']:.2f} s | {ratio} | "
                     f"<= {TARGETS_S[kind]:g} s | {guests} | {result} |")
    lines += ["", "Every run, in the order made (wall s; load average before -> after):", ""]
    for key, modes in r["rows"].items():
        for m, x in modes.items():
            lines.append(f"- {key}, {m}: " + ", ".join(
                f"{row['wall_s']:.2f} s ({row['load_before'].split()[0]} -> {row['load_after'].split()[0]})"
                for row in x["runs"]))
    lines += ["", "Phases (medians, s, from report.json `timings.phases` of the first arch's run; with several "
              "guests at once they are summed over the guests, so they can exceed the wall clock):", ""]
    for key, modes in r["rows"].items():
        keys = sorted({k for x in modes.values() for k in x.get("phases_median_s", {})})
        lines += [f"| {key} phase | " + " | ".join(modes) + " |", "| --- |" + " ---: |" * len(modes)]
        for k in keys:
            lines.append(f"| {k} | " + " | ".join(f"{x.get('phases_median_s', {}).get(k, 0):.2f}"
                                                  for x in modes.values()) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/catalog.sh", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1, help="runs per mode and row; default 1")
    ap.add_argument("--arch", action="append", choices=bench.ARCHES, help="default x86_64 (repeatable)")
    ap.add_argument("--both", action="store_true", help="also both arches' catalogs at once")
    ap.add_argument("--one", action="store_true", help=f"also one case ({ONE_CASE}) on x86_64")
    ap.add_argument("--baseline", default=BASELINE, metavar="REV",
                    help=f"the commit whose default is today's way (default {BASELINE})")
    ap.add_argument("--candidate", action="append", default=[], metavar="FLAGS",
                    help="also measure this commit's `run --target qemu:ARCH FLAGS` (e.g. '-j 1')")
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
    out = Path(args.out or tempfile.mkdtemp(prefix="bh-bench-catalog-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    modes = [baseline_mode(args.baseline, out), Mode("default", [str(bench.BH)])]
    modes += [Mode(f"candidate ({flags})", [str(bench.BH)], shlex.split(flags)) for flags in args.candidate]
    argv = list(sys.argv[1:] if argv is None else argv)
    shown = [("(below)" if i and argv[i - 1] == "--note" else a) for i, a in enumerate(argv)]
    commit = subprocess.run(["git", "-C", str(bench.REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    r: dict = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
               "command": shlex.join(["bench/catalog.sh", *shown]),
               "machine": bench.machine(), "accel": os.environ.get("BINDER_HARNESS_ACCEL", "auto"),
               "runs": args.runs, "note": args.note, "modes": [m.name for m in modes],
               "shown": {m.name: m.shown() for m in modes}, "rows": {}}
    try:
        warm_up(modes, sorted(set(args.arch or ["x86_64"]) | (set(bench.ARCHES) if args.both else set())), out)
        for arch in args.arch or ["x86_64"]:
            r["rows"][f"catalog:{arch}"] = measure(modes, "catalog", [arch], args.runs, out)
        if args.both:
            r["rows"]["both:x86_64+arm64"] = measure(modes, "both", list(bench.ARCHES), args.runs, out)
        if args.one:
            r["rows"]["one:x86_64"] = measure(modes, "one", ["x86_64"], args.runs, out)
    finally:
        subprocess.run(["git", "-C", str(bench.REPO), "worktree", "remove", "--force", str(modes[0].cwd)],
                       capture_output=True)
    r["loadavg_end"] = loadavg()
    (out / "catalog.json").write_text(json.dumps(r, indent=1) + "\n")
    md = markdown(r)
    (out / "catalog.md").write_text(md)
    if args.record:
        (bench.REPO / "bench" / "catalog.md").write_text(md)
    print(md)
    return 1 if any("failed" in m for row in r["rows"].values() for m in row.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
