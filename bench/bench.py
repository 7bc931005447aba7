"""binder-harness speed benchmark (DESIGN §7). Run it as bench/run.sh; see bench/README.md.

Every figure is a median over several runs of a real command, timed by hyperfine
(or by /usr/bin/time -v for the cold start, which also gives peak memory):

  one_case        `binder-harness run one_copy.sync_sizes --target qemu:ARCH`, warm cache
  phases          where that time went, from each run's report.json timings.phases
  catalog         the whole catalog on one arch, then both arches at once (two processes)
  cold            one case with BINDER_HARNESS_CACHE set to an empty directory
  virtme-ng       the same Debian kernel booted by virtme-ng (PyPI) under TCG, running the
                  same probe scenario with the same trace arming, collection and dmesg
  perf            the probe's own in-guest figures (case one_copy.perf): binder vs pipe

Results go to OUT/results.json and OUT/results.md; --record also copies the markdown to
bench/results.md. A section that fails says so in one line (the section and the cause: the
tool's exit status and the last line of its log), is recorded as failed, and the other
sections are still measured; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BH = REPO / ".venv" / "bin" / "binder-harness"  # --bh replaces it (e.g. a wrapper running an older checkout)
CASE = "one_copy.sync_sizes"
ARCHES = ("x86_64", "arm64")
TARGETS = {"one_case_s": 3.0, "catalog_both_s": 90.0, "cold_s": 120.0, "vng_ratio": 5.0}


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class SectionFailed(Exception):
    """Why a section could not be measured, in one line."""


FAILED: list[str] = []  # the sections that failed in this run


def guarded(section: str, fn, *args, **kwargs) -> dict:
    """fn's result, or {"failed": cause} after one line on stderr: a failing section never
    stops the others, and never prints a traceback."""
    try:
        return fn(*args, **kwargs)
    except SectionFailed as exc:
        cause = str(exc)
    except SystemExit as exc:  # e.g. a harness helper that gives up with sys.exit(message)
        cause = str(exc.code)
    except Exception as exc:  # noqa: BLE001 - any other error is reported the same way
        cause = f"{type(exc).__name__}: {exc}"
    cause = " ".join(cause.split()) or "unknown cause"
    FAILED.append(section)
    log(f"{section}: FAILED: {cause}")
    return {"failed": cause}


def last_line(path: Path) -> str:
    """The last non-empty line of a log file ("" if none), shortened for one-line messages."""
    try:
        lines = [l.strip() for l in path.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SectionFailed(f"{tool} not found; install Debian's {package} (scripts/setup --test does)")
    return path


def hyperfine(name: str, command: str, runs: int, out: Path, warmup: int = 0, prepare: str | None = None,
              env: dict | None = None, logs: tuple[Path, ...] = ()) -> dict:
    """Time `command` (a shell line) `runs` times. hyperfine stops at the first run that exits
    non-zero; that raises SectionFailed with its exit status and the last line of each of
    `logs` (where the command sends its output)."""
    js = out / f"hyperfine-{name}.json"
    argv = [need("hyperfine", "hyperfine"), "--runs", str(runs), "--warmup", str(warmup), "--style", "basic",
            "--export-json", str(js), "--command-name", name]
    if prepare:
        argv += ["--prepare", prepare]
    log(f"{name}: {runs} run(s): {command}")
    proc = subprocess.run(argv + [command], env={**os.environ, **(env or {})}, stdout=sys.stderr,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        errs = [l.strip() for l in proc.stderr.splitlines() if l.strip()]
        # "Error: Command terminated with non-zero exit code: 1. Use the '-i'/'--ignore-failure' ..."
        err = next((l.removeprefix("Error: ") for l in errs if l.startswith("Error:")),
                   errs[-1] if errs else f"hyperfine exited {proc.returncode}")
        err = re.sub(r"^Command terminated with non-zero exit code: (-?\d+).*", r"exit status \1", err)
        tails = [f"{p.name}: {t}" for p in logs if (t := last_line(p))]
        if logs and not tails:
            tails = [f"{logs[0].name}: (empty)"]
        raise SectionFailed("; ".join([err, *tails]))
    sys.stderr.write(proc.stderr)
    r = json.loads(js.read_text())["results"][0]
    return {"median_s": round(r["median"], 3), "mean_s": round(r["mean"], 3), "min_s": round(r["min"], 3),
            "max_s": round(r["max"], 3), "runs": len(r["times"]), "times_s": [round(t, 3) for t in r["times"]],
            "command": command}


def run_dir(out: Path, label: str) -> str:
    """A shell word that makes a fresh run directory per hyperfine run."""
    (out / "runs").mkdir(parents=True, exist_ok=True)
    return f"$(mktemp -d {shlex.quote(str(out / 'runs'))}/{label}-XXXXXX)"


def phase_medians(dirs: list[Path]) -> dict:
    """Median of each timings.phases entry, and of the harness's own overhead, over run dirs."""
    rows = []
    for d in dirs:
        try:
            rep = json.loads((d / "report.json").read_text())
        except (OSError, ValueError):
            continue
        ph = dict(rep["timings"].get("phases", {}))
        ph["total_s(in harness)"] = rep["timings"]["total_s"]
        rows.append(ph)
    if not rows:
        return {}
    keys = sorted({k for r in rows for k in r})
    return {k: round(statistics.median(r.get(k, 0.0) for r in rows), 3) for k in keys}


def bench_one_case(arch: str, runs: int, out: Path, warmup: int) -> dict:
    label = f"one-{arch}"
    lg = out / f"{label}.log"
    res = hyperfine(label, f"{BH} run {CASE} --target qemu:{arch} --out {run_dir(out, label)} "
                           f">{shlex.quote(str(lg))} 2>&1", runs, out, warmup=warmup, logs=(lg,))
    dirs = sorted((out / "runs").glob(f"{label}-*"), key=lambda p: p.stat().st_mtime)[-runs:]
    ph = phase_medians(dirs)
    res["phases_median_s"] = ph
    if ph:
        # the harness's own overhead: wall time outside the guest's start (QEMU start -> READY when
        # booted, the restore when restored from the snapshot) and the probe's run (its console
        # round trip included)
        res["overhead_s"] = round(res["median_s"] - ph.get("boot_to_ready", 0) - ph.get("restore", 0)
                                  - ph.get("probe", 0), 3)
    return res


def bench_catalog(runs: int, out: Path) -> dict:
    """Each arch alone, then both at once; each of the three is measured (or fails) on its own."""
    res = {}
    lg = {k: out / f"catalog-{k}.log" for k in (*ARCHES, "both-x86_64", "both-arm64")}
    q = {k: shlex.quote(str(p)) for k, p in lg.items()}
    for arch in ARCHES:
        res[arch] = guarded(f"catalog, qemu:{arch}", hyperfine, f"catalog-{arch}",
                            f"{BH} run --target qemu:{arch} --out {run_dir(out, 'cat-' + arch)} >{q[arch]} 2>&1",
                            runs, out, logs=(lg[arch],))
    both = (f"{BH} run --target qemu:x86_64 --out {run_dir(out, 'both-x86_64')} >{q['both-x86_64']} 2>&1 & a=$!; "
            f"{BH} run --target qemu:arm64 --out {run_dir(out, 'both-arm64')} >{q['both-arm64']} 2>&1 & b=$!; "
            f"wait $a; sa=$?; wait $b; sb=$?; [ $sa -eq 0 ] && [ $sb -eq 0 ]")
    res["both"] = guarded("catalog, both arches at once", hyperfine, "catalog-both", both, runs, out,
                          logs=(lg["both-x86_64"], lg["both-arm64"]))
    return res


def time_v(argv: list[str], env: dict, log_path: Path) -> dict:
    """One run under /usr/bin/time -v: wall seconds, peak RSS, exit status. The command's output
    goes to log_path, time's figures to log_path + ".time"."""
    tv = need("time", "time") if not Path("/usr/bin/time").exists() else "/usr/bin/time"
    stats = log_path.with_name(log_path.name + ".time")
    with open(log_path, "w") as fh:
        proc = subprocess.run([tv, "-v", "-o", str(stats), *argv], env={**os.environ, **env}, stdout=fh,
                              stderr=subprocess.STDOUT)
    try:
        text = stats.read_text(errors="replace")
    except OSError:
        text = ""
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
    wall = (int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))) if m else None
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return {"wall_s": wall, "max_rss_kb": int(rss.group(1)) if rss else None, "status": proc.returncode}


def bench_cold(arches: list[str], runs: int, out: Path) -> dict:
    return {arch: guarded(f"cold start, qemu:{arch}", _bench_cold_arch, arch, runs, out) for arch in arches}


def _bench_cold_arch(arch: str, runs: int, out: Path) -> dict:
    rows = []
    for i in range(runs):
        cache = Path(tempfile.mkdtemp(prefix="bh-cold-cache-"))
        try:
            log(f"cold-{arch}: run {i + 1}/{runs} with BINDER_HARNESS_CACHE={cache} (empty)")
            rows.append(time_v([str(BH), "run", CASE, "--target", f"qemu:{arch}", "--out",
                                str(out / "runs" / f"cold-{arch}-{i}")],
                               {"BINDER_HARNESS_CACHE": str(cache)}, out / f"cold-{arch}-{i}.log"))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    ok = [r["wall_s"] for r in rows if r["status"] == 0 and r["wall_s"] is not None]
    if not ok:
        n = len(rows) - 1
        raise SectionFailed(f"exit status {rows[-1]['status']}; cold-{arch}-{n}.log: "
                            f"{last_line(out / f'cold-{arch}-{n}.log') or '(empty)'}")
    return {"median_s": round(statistics.median(ok), 3), "runs": rows, "tool": "/usr/bin/time -v",
            "phases_median_s": phase_medians([out / "runs" / f"cold-{arch}-{i}" for i in range(runs)])}


# -- virtme-ng ---------------------------------------------------------------------------------
def _vng_env(out: Path) -> tuple[str, str]:
    """bench/.venv-vng with virtme-ng from PyPI; returns (vng path, why-not or "")."""
    venv = REPO / "bench" / ".venv-vng"
    vng = venv / "bin" / "vng"
    if not vng.exists():
        log("installing virtme-ng from PyPI into bench/.venv-vng")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "virtme-ng"],
                           stdout=sys.stderr, stderr=sys.stderr)
        if r.returncode != 0:
            return "", "pip install virtme-ng failed"
    # virtme-ng resolves module dependencies with kmod's modprobe (busybox's lacks --show-depends)
    mp = shutil.which("modprobe") or "/usr/sbin/modprobe"
    if not Path(mp).exists() or subprocess.run([mp, "--version"], capture_output=True).returncode != 0:
        return str(vng), "virtme-ng needs kmod's modprobe/depmod (Debian package kmod)"
    return str(vng), ""


def _vng_root(out: Path) -> tuple[Path, str]:
    """A tree virtme-ng understands: ROOT/boot/vmlinuz-REL (Debian's own bzImage) and
    ROOT/lib/modules/REL (hard links into the harness's extracted package)."""
    sys.path.insert(0, str(REPO))
    from harness.building import debian
    from harness.building.build import deb_cache_path, ensure_kernel
    from harness.building.recipes import resolve_recipe

    recipe = resolve_recipe(None, "x86_64")
    kern = ensure_kernel(recipe, progress=lambda *a: None)
    rel = kern.identity.release
    root = out / "vng-root"
    if not (root / "boot" / f"vmlinuz-{rel}").exists():
        deb = deb_cache_path(recipe.kernel, recipe.deb_arch)
        debian.extract_deb(deb, root, lambda n: n.startswith("boot/vmlinuz-"))
        (root / "lib" / "modules").mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-al", str(kern.moddir), str(root / "lib" / "modules" / rel)], check=True)
    return root / "boot" / f"vmlinuz-{rel}", rel


# What the guest's check script leaves in the share besides its results: its own exit status,
# its stderr, and the terminal its standard input was (see bench_vng).
VNG_STATUS, VNG_LOG, VNG_TTY = "check.status", "check.log", "check.tty"
VNG_OUTPUTS = ("probe.jsonl", "probe.stderr", "trace.txt", "dmesg.txt", VNG_STATUS, VNG_LOG, VNG_TTY)


def _host_btf_offsets(fields: tuple[str, ...]) -> dict[str, int]:
    """Struct offsets for the vng guest's kprobes, from the .BTF sections of the same Debian
    kernel's vmlinux and binder_linux.ko (the harness reads them from the target's sysfs; vng's
    guest script is written before it boots)."""
    if not fields:
        return {}
    from harness.evidence import btf
    from harness.building.build import ensure_kernel
    from harness.building.recipes import resolve_recipe

    kern = ensure_kernel(resolve_recipe(None, "x86_64"), progress=lambda *a: None)
    base = btf.elf_section(kern.kernel.read_bytes(), ".BTF")
    ko = next((kern.moddir or Path("/nonexistent")).rglob("binder_linux.ko"))
    mod = btf.elf_section(ko.read_bytes(), ".BTF")
    if base is None or mod is None:
        raise RuntimeError(f"no .BTF section in {kern.kernel if base is None else ko}")
    return {f: btf.member_offset(mod, *f.split(".", 1), base=base) for f in fields}


def vng_check_script(share: Path) -> str:
    """The harness's one_copy.sync_sizes, as one guest shell script: load binder, arm the
    same trace, run the same probe scenario, collect the trace and the kernel log.

    The script writes its own exit status to VNG_STATUS (non-zero if binder does not load,
    the trace cannot be armed or the probe fails) and its stderr to VNG_LOG, so the bench can
    judge a run and name a guest-side cause even when virtme-ng cannot return the status."""
    sys.path.insert(0, str(REPO))
    from cases.one_copy import DELIVERY_PROBES, MAP_BYTES, SIZES
    from harness.evidence import trace as tracing
    from harness.evidence.probe import ensure_probe

    probe = ensure_probe("x86_64")
    shutil.copyfile(probe, share / "binder-probe")
    os.chmod(share / "binder-probe", 0o755)
    t = "/sys/kernel/tracing"
    s = shlex.quote(str(share))
    return "\n".join([
        f"d={s}",
        'exec 2> "$d/' + VNG_LOG + '"',
        "trap 'echo $? > \"$d/" + VNG_STATUS + "\"' EXIT",
        # the guest's side of the script I/O: /dev/ttyS0 in virtme-ng's console fallback,
        # "not a tty" when stdin is its virtio-serial port virtme.stdin
        'tty > "$d/' + VNG_TTY + '" || true',
        "modprobe binder_linux || exit 2",
        f"mountpoint -q {t} || mount -t tracefs tracefs {t}",
        "echo 'binder-harness: begin one_copy.sync_sizes' > /dev/kmsg",
        tracing.arm_script(t, tuple(k.with_offsets(_host_btf_offsets(k.struct_fields)) for k in DELIVERY_PROBES), CASE),
        f"{s}/binder-probe sync sizes={','.join(map(str, SIZES))} map={MAP_BYTES} mode=call timeout=60 "
        f"> {s}/probe.jsonl 2> {s}/probe.stderr; probe_status=$?",
        # the arm script left the marker holder's pid in $p
        tracing.collect_script(t, f"{share}/trace.txt", 987654321).replace("987654321", '"$p"'),
        f"dmesg > {s}/dmesg.txt",
        "echo vng-check-done",
        'exit "$probe_status"',
    ]) + "\n"


def vng_check_ok(share: Path) -> tuple[bool, str]:
    """Did the virtme-ng guest do the work? Same probe records and traced copies."""
    sys.path.insert(0, str(REPO))
    from harness.evidence import trace as tracing
    from harness.evidence.probe import parse_probe_output

    try:
        out = parse_probe_output((share / "probe.jsonl").read_text())
        tr = tracing.parse_ftrace((share / "trace.txt").read_text())
    except OSError as exc:
        return False, f"missing output: {exc}"
    rx = out.events("rx", role="server")
    copies = tr.named(tracing.COPY_USER_TO_BUFFER.name)
    ok = len(rx) == 5 and len(copies) >= 5
    detail = f"{len(rx)} transactions received, {len(copies)} traced copies"
    try:
        status = (share / VNG_STATUS).read_text().strip()
    except OSError:
        status = "missing"
    if status != "0":
        ok = False
        detail += f"; the guest script's exit status: {status}"
    return ok, detail


def _host_udevd() -> str:
    """The udevd virtme-ng-init would start in the guest (which runs the host's root), found the
    way it looks for one; "" if there is none."""
    for c in ("/usr/lib/systemd/systemd-udevd", "/lib/systemd/systemd-udevd"):
        if os.access(c, os.X_OK):
            return c
    return shutil.which("udevd") or ""


def bench_vng(runs: int, out: Path) -> dict:
    if platform.machine() not in ("x86_64", "amd64"):
        return {"skipped": f"virtme-ng runs the host's own root filesystem in the guest; on a "
                           f"{platform.machine()} host an x86_64 guest would need an x86_64 chroot"}
    vng, why = _vng_env(out)
    if why:
        return {"skipped": why}
    kimg, rel = _vng_root(out)
    share = out / "vng-share"
    share.mkdir(parents=True, exist_ok=True)
    script = share / "check.sh"
    script.write_text(vng_check_script(share))
    env_path = f"{Path(vng).parent}:{os.environ.get('PATH', '')}"
    status = shlex.quote(str(share / VNG_STATUS))
    vng_status = out / "vng-status"  # vng's own exit status in the last run
    # --force-initramfs: Debian's 9p and virtio are modules, so virtme-ng must pack them.
    # vng --exec returns the script's exit status, which the guest sends back through the
    # virtio-serial port virtme.ret. virtme-ng-init finds its ports only as
    # /dev/virtio-ports/NAME, links that udev makes; the guest runs the host's root, so on a
    # host without udev (a container) there are none. virtme-ng-init then runs the script on
    # the serial console ("cannot find script I/O ports ... starting script (console
    # fallback)"), which works, but cannot send the status back either, and vng exits 255,
    # its "no status came back" (as after a kernel panic). Then the status the script wrote to
    # the share decides; if it wrote none, the run fails with 255.
    cmd = (f"PATH={shlex.quote(env_path)} {vng} --run {shlex.quote(str(kimg))} --disable-kvm --force-initramfs "
           f"--rwdir {shlex.quote(str(share))} --exec {shlex.quote('sh ' + str(script))} "
           f"> {shlex.quote(str(out / 'vng-last.log'))} 2>&1; "
           f"s=$?; echo $s > {shlex.quote(str(vng_status))}; "
           f"if [ $s -eq 255 ] && [ -s {status} ]; then s=$(cat {status}); fi; exit $s")
    # each run starts with none of the last run's outputs, so what the check reads is this run's
    prepare = "rm -f " + " ".join(shlex.quote(str(f)) for f in (*(share / n for n in VNG_OUTPUTS), vng_status))
    res = hyperfine("virtme-ng", cmd, runs, out, prepare=prepare,
                    logs=(out / "vng-last.log", share / VNG_LOG))
    ok, detail = vng_check_ok(share)
    if not ok:
        raise SectionFailed(f"the guest's check failed: {detail}")
    tty = last_line(share / VNG_TTY) or "?"
    udevd = _host_udevd()
    vexit = last_line(vng_status) or "?"
    res.update({"kernel": str(kimg), "release": rel, "check_ok": ok, "check": detail,
                "vng_exit_status": int(vexit) if vexit.isdigit() else None, "script_tty": tty,
                "host_udevd": udevd or None,
                "script_io": (f"virtio-serial ports (vng exited {vexit}, the script's status)" if tty == "not a tty"
                              else f"virtme-ng's console fallback on {tty}, as there are no /dev/virtio-ports links "
                                   f"in the guest{'' if udevd else ' (no udevd on this host)'}; vng exited {vexit} "
                                   f"(no status came back), the script's own status 0 decided"),
                "note": "Debian's own vmlinuz (bzImage), as a virtme-ng user would boot it; "
                        "virtme-ng's defaults otherwise (q35 under TCG, its own initramfs and init)"})
    return res


def bench_perf(out: Path) -> dict:
    """The probe's own figures, measured in the guest by case one_copy.perf."""
    return {arch: guarded(f"perf, qemu:{arch}", _bench_perf_arch, arch, out) for arch in ARCHES}


def _bench_perf_arch(arch: str, out: Path) -> dict:
    d = out / "runs" / f"perf-{arch}"
    lg = out / f"perf-{arch}.log"
    with open(lg, "w") as fh:
        proc = subprocess.run([str(BH), "run", "one_copy.perf", "--target", f"qemu:{arch}", "--out", str(d)],
                              stdout=fh, stderr=subprocess.STDOUT)
    try:
        case = json.loads((d / "report.json").read_text())["cases"][0]
    except (OSError, ValueError, IndexError, KeyError):
        raise SectionFailed(f"no report.json (exit status {proc.returncode}); {lg.name}: "
                            f"{last_line(lg) or '(empty)'}") from None
    return {"outcome": case["outcome"], "perf": case["evidence"].get("perf")}


# -- report --------------------------------------------------------------------------------------
def _fmt(v, unit="s") -> str:
    return "-" if v is None else f"{v:.2f} {unit}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _failed_row(what: str, d: dict, target: str = "") -> str:
    return f"| {what} | not measured: {_cell(d['failed'])} | | {target} | FAILED |"


def _met(value, limit, higher=False) -> str:
    if value is None:
        return "not measured"
    return "met" if (value >= limit if higher else value <= limit) else "MISSED"


def _before_after(r: dict, b: dict) -> list[str]:
    """Rows comparing this run with an earlier results.json (e.g. the commit before the speed work)."""
    def get(d, *path):
        for k in path:
            d = d.get(k) if isinstance(d, dict) else None
        return d

    rows = [("one case, qemu:x86_64", ("one_case", "x86_64", "median_s")),
            ("one case, qemu:arm64", ("one_case", "arm64", "median_s")),
            ("catalog, qemu:x86_64", ("catalog", "x86_64", "median_s")),
            ("catalog, qemu:arm64", ("catalog", "arm64", "median_s")),
            ("catalog, both arches at once", ("catalog", "both", "median_s")),
            ("cold start, qemu:x86_64", ("cold", "x86_64", "median_s")),
            ("cold start, qemu:arm64", ("cold", "arm64", "median_s"))]
    out = ["", f"## Before and after (before: commit `{b.get('commit')}`, {b.get('date')}, same machine)", "",
           "| what | before | after | speed-up |", "| --- | --- | --- | --- |"]
    for name, path in rows:
        x, y = get(b, *path), get(r, *path)
        if x is None and y is None:
            continue
        ratio = f"{x / y:.1f}×" if x and y else "-"
        out.append(f"| {name} | {_fmt(x)} | {_fmt(y)} | {ratio} |")
    for arch in ARCHES:
        x = get(b, "one_case", arch, "phases_median_s", "total_s(in harness)")
        bx = get(b, "one_case", arch, "runs")
        if x is not None and bx:
            out.append(f"| one case, qemu:{arch}: time inside the harness (report.json total_s) | {_fmt(x)} | "
                       f"{_fmt(get(r, 'one_case', arch, 'phases_median_s', 'total_s(in harness)'))} | |")
    return out


def markdown(r: dict, before: dict | None = None) -> str:
    m = r["machine"]
    lines = [
        "# binder-harness speed: measured figures",
        "",
        f"- date: {r['date']}; commit `{r['commit']}`",
        f"- machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_gb']} GB, accel {r.get('accel', 'tcg')}; "
        f"load average at start {m['loadavg_start']}, at end {m.get('loadavg_end', '?')} "
        "(other users' guests share this machine, so figures are medians)",
        f"- command: `{r['command']}`",
        "",
        "| what | median | runs | DESIGN §7 target | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for arch in ARCHES:
        o = r.get("one_case", {}).get(arch)
        what = f"one case ({CASE}), warm, qemu:{arch}"
        if o and "failed" in o:
            lines.append(_failed_row(what, o, "≤ 3 s"))
        elif o:
            lines.append(f"| {what} | {_fmt(o['median_s'])} | {o['runs']} | "
                         f"≤ 3 s | {_met(o['median_s'], TARGETS['one_case_s'])} |")
    cat = r.get("catalog", {})
    for arch in ARCHES:
        if arch in cat and "failed" in cat[arch]:
            lines.append(_failed_row(f"whole catalog, qemu:{arch}", cat[arch]))
        elif arch in cat:
            lines.append(f"| whole catalog, qemu:{arch} | {_fmt(cat[arch]['median_s'])} | {cat[arch]['runs']} | | |")
    if "both" in cat and "failed" in cat["both"]:
        lines.append(_failed_row("whole catalog, both arches at once", cat["both"], "≤ 90 s"))
    elif "both" in cat:
        lines.append(f"| whole catalog, both arches at once | {_fmt(cat['both']['median_s'])} | {cat['both']['runs']} | "
                     f"≤ 90 s | {_met(cat['both']['median_s'], TARGETS['catalog_both_s'])} |")
    for arch, c in r.get("cold", {}).items():
        what = f"cold start, empty cache, one case, qemu:{arch}"
        if "failed" in c:
            lines.append(_failed_row(what, c, "≤ 120 s"))
            continue
        lines.append(f"| {what} | {_fmt(c['median_s'])} | {len(c['runs'])} | "
                     f"≤ 120 s | {_met(c['median_s'], TARGETS['cold_s'])} |")
    v = r.get("virtme_ng")
    if v and "failed" in v:
        lines.append(_failed_row("virtme-ng, same kernel + same check, x86_64 TCG", v))
        lines.append("| ratio virtme-ng / binder-harness (x86_64) | - | | ≥ 5× | not measured |")
    elif v and "median_s" in v:
        ours = r.get("one_case", {}).get("x86_64", {}).get("median_s")
        ratio = round(v["median_s"] / ours, 1) if ours else None
        lines.append(f"| virtme-ng, same kernel + same check, x86_64 TCG | {_fmt(v['median_s'])} | {v['runs']} | | |")
        lines.append(f"| ratio virtme-ng / binder-harness (x86_64) | {f'{ratio}×' if ratio else '-'} | | ≥ 5× | "
                     f"{_met(ratio, TARGETS['vng_ratio'], higher=True)} |")
    elif v:
        lines.append(f"| virtme-ng | not run: {v.get('skipped')} | | | |")
    if before:
        lines += _before_after(r, before)
    for arch in ARCHES:
        o = r.get("one_case", {}).get(arch)
        if o and o.get("phases_median_s"):
            lines += ["", f"## Where one case's time goes, qemu:{arch} (medians, seconds)", "",
                      "| phase | s |", "| --- | --- |"]
            order = ["startup", "image", "qemu_spawn", "boot_to_ready", "guest_uptime", "boot_dmesg", "case_setup",
                     "arm_trace", "probe", "collect_trace", "dmesg", "report", "total_s(in harness)"]
            phases = o["phases_median_s"]
            for k in sorted(phases, key=lambda k: order.index(k) if k in order else len(order)):
                val = phases[k]
                note = " (inside boot_to_ready)" if k == "guest_uptime" else ""
                lines.append(f"| {k}{note} | {val:.3f} |")
            lines.append(f"| **harness overhead** (wall − boot_to_ready − probe) | {o.get('overhead_s', 0):.3f} |")
    if v and "median_s" in v:
        lines += ["", f"virtme-ng check: {v['check']} ({'ok' if v['check_ok'] else 'NOT OK'}); {v['note']}; "
                      f"script I/O: {v.get('script_io', '?')}."]
    perf = r.get("perf")
    if perf:
        lines += ["", "## The probe's own figures, measured in the guest (TCG: compare within a run only)", ""]
        for arch, p in perf.items():
            rows = (p.get("perf") or {}).get("sizes") or []
            if not rows:
                lines.append(f"- qemu:{arch}: {p.get('outcome') or 'not measured: ' + p.get('failed', '?')}")
                continue
            lines += [f"qemu:{arch}:", "",
                      "| payload | binder round trip µs (median) | pipe round trip µs (median) | binder MB/s | pipe MB/s |",
                      "| --- | --- | --- | --- | --- |"]
            for row in rows:
                lines.append(f"| {row['size']} B | {row['binder_rtt_us']:.0f} | {row['pipe_rtt_us']:.0f} | "
                             f"{row['binder_mb_s']:.1f} | {row['pipe_mb_s']:.1f} |")
            lines.append("")
    return "\n".join(lines) + "\n"


def machine() -> dict:
    model = ""
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.machine()
    mem = 0.0
    try:
        mem = round(int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 1e6, 1)
    except (OSError, StopIteration):
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gb": mem, "arch": platform.machine(),
            "loadavg_start": " ".join(open("/proc/loadavg").read().split()[:3])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run.sh", description="Measure binder-harness's speed (DESIGN §7).")
    ap.add_argument("--runs", type=int, default=5, help="runs per one-case figure (median); default 5")
    ap.add_argument("--catalog-runs", type=int, default=3, help="runs per catalog figure; default 3")
    ap.add_argument("--cold-runs", type=int, default=1, help="cold starts per arch; default 1 (each downloads)")
    ap.add_argument("--vng-runs", type=int, default=3, help="virtme-ng runs; default 3")
    ap.add_argument("--quick", action="store_true", help="one warm run of one case on x86_64, nothing else")
    ap.add_argument("--skip", action="append", default=[], choices=["catalog", "cold", "vng", "perf", "arm64"],
                    help="leave a section out (repeatable)")
    ap.add_argument("--out", default=None, help="directory for results (default: a new one under /tmp)")
    ap.add_argument("--record", action="store_true", help="also write bench/results.md")
    ap.add_argument("--before", default=None, help="an earlier run's results.json to compare with")
    ap.add_argument("--bh", default=None, help="binder-harness executable to time (default .venv/bin/binder-harness)")
    args = ap.parse_args(argv)
    global BH
    if args.bh:
        BH = Path(args.bh).resolve()
    out = Path(args.out or tempfile.mkdtemp(prefix="bh-bench-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not BH.exists():
        sys.exit("bench: .venv/bin/binder-harness missing; run scripts/setup first")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    r: dict = {"date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "commit": commit + ("+dirty" if dirty else ""),
               "command": shlex.join(["bench/run.sh", *(argv if argv is not None else sys.argv[1:])]),
               "machine": machine(), "accel": os.environ.get("BINDER_HARNESS_ACCEL", "auto (tcg here: no KVM)")}
    arches = ["x86_64"] if args.quick or "arm64" in args.skip else list(ARCHES)
    runs = 1 if args.quick else args.runs
    t0 = time.monotonic()
    # one warm-up run per arch fills the cache (kernel, busybox, probe) before timing
    r["one_case"] = {a: guarded(f"one case, qemu:{a}", bench_one_case, a, runs, out, warmup=0 if args.quick else 1)
                     for a in arches}
    if not args.quick:
        if "catalog" not in args.skip:
            r["catalog"] = bench_catalog(args.catalog_runs, out)
        if "perf" not in args.skip:
            r["perf"] = bench_perf(out)
        if "vng" not in args.skip:
            r["virtme_ng"] = guarded("virtme-ng", bench_vng, args.vng_runs, out)
        if "cold" not in args.skip:
            r["cold"] = bench_cold(arches, args.cold_runs, out)
    r["machine"]["loadavg_end"] = " ".join(open("/proc/loadavg").read().split()[:3])
    r["bench_wall_s"] = round(time.monotonic() - t0, 1)
    r["failed_sections"] = FAILED
    (out / "results.json").write_text(json.dumps(r, indent=1) + "\n")
    before = json.loads(Path(args.before).read_text()) if args.before else None
    if before:
        r["before"] = {k: before.get(k) for k in ("commit", "date", "command", "one_case", "catalog", "cold", "machine")}
    md = markdown(r, before)
    (out / "results.md").write_text(md)
    if args.record:
        (REPO / "bench" / "results.md").write_text(md)
    print(md)
    log(f"results: {out / 'results.json'}, {out / 'results.md'}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
