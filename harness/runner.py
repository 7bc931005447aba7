"""Run cases on one target: boot once, run each case in fresh probe processes,
replace the guest after a crash, and keep every piece of evidence.
"""
from __future__ import annotations

import json
import re
import shlex
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from harness import report, timing
from harness.cases import CaseContext, CaseSkipped, CaseSpec
from harness.errors import ConfigError, TargetError
from harness.probe import ensure_probe
from harness.targets import TargetOptions, make_target
from harness.verdicts import CaseResult, judge, scan_dmesg

NATIVE_ABI = {"x86_64": "x86_64", "arm64": "arm64", "i386": "i386", "arm": "armhf"}
COMPAT_ABI = {"x86_64": "i386", "arm64": "armhf"}


@dataclass
class RunOptions:
    target_spec: str
    out_dir: Path
    binder_module: Path | None = None
    timeout: float | None = None  # per case; None keeps each case's own
    seed: int | None = None
    command_line: str = ""
    kernel: Path | None = None
    modules: Path | None = None
    image: str | None = None


@dataclass
class RunState:
    options: RunOptions
    results: list[CaseResult] = field(default_factory=list)
    target_info: dict = field(default_factory=dict)
    boot_s: float = 0.0
    boots: int = 0
    started: float = field(default_factory=time.monotonic)


class Session:
    """One target at a time: started on first use, replaced after it crashes."""

    def __init__(self, options: RunOptions, progress=print):
        self.options = options
        self.progress = progress
        self.state = RunState(options)
        self.target = None
        self._probes: dict[str, str] = {}
        options.out_dir.mkdir(parents=True, exist_ok=True)

    # -- target lifecycle ----------------------------------------------------
    def _ensure_target(self):
        if self.target is not None and getattr(self.target, "alive", lambda: True)():
            return self.target
        self._drop_target()
        opts = self.options
        target = make_target(opts.target_spec,
                             TargetOptions(opts.binder_module, opts.out_dir / "console.log",
                                           kernel=opts.kernel, modules=opts.modules, image=opts.image),
                             self.progress)
        self.progress(f"boot {self.options.target_spec} ...")
        try:
            target.start()
        except BaseException:
            target.stop()
            raise
        self.target = target
        self._probes = {}
        self.state.boots += 1
        self.state.boot_s += getattr(target, "boot_s", 0.0)
        info = target.info()
        self.state.target_info = {
            "spec": info.spec, "arch": info.arch, "kernel_release": info.kernel_release,
            "accel": info.accel, "binder_module": info.binder_module,
        }
        image = getattr(target, "image", None)
        sha = getattr(image, "binder_module_sha256", "")
        if sha:
            self.state.target_info["binder_module_sha256"] = sha
        if image is not None:
            self.state.target_info["image"] = image.recipe.name
            self.state.target_info["kernel_source"] = image.kernel_source
        self.progress(f"booted {info.spec}: {info.kernel_release} ({info.accel}) in {getattr(target, 'boot_s', 0):.1f} s")
        with timing.phase("boot_dmesg"):
            saved = getattr(target, "boot_dmesg", lambda: None)()  # the QEMU guest saves it before READY
            boot_dmesg = saved if saved is not None else target.run(["dmesg"], 20).output
        report.append_text(self.options.out_dir / "dmesg.txt", f"=== boot {self.state.boots} ===\n{boot_dmesg}")
        return target

    def _drop_target(self) -> None:
        if self.target is not None:
            self.target.stop()
            self.target = None

    def close(self) -> None:
        self._drop_target()

    def _probe_path(self, abi: str) -> str:
        if abi not in self._probes:
            remote = f"{self.target.workdir}/bin/binder-probe-{abi}"
            self.target.run(["mkdir", "-p", f"{self.target.workdir}/bin"], 10)
            self.target.push(ensure_probe(abi), remote, 0o755)
            self._probes[abi] = remote
        return self._probes[abi]

    # -- one case ------------------------------------------------------------
    def run_case(self, spec: CaseSpec) -> CaseResult:
        case_dir = self.options.out_dir / "cases" / spec.id
        case_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        result = CaseResult(spec.id)
        ctx = None
        try:
            target = self._ensure_target()
            self.progress(f"{spec.id} ...")
            info = target.info()
            if not info.is_root:
                raise CaseSkipped(f"{info.spec}: not root, and /dev/binder needs root")
            abi = (COMPAT_ABI if spec.compat else NATIVE_ABI).get(info.arch)
            if abi is None:
                raise CaseSkipped(f"no {'32-bit ' if spec.compat else ''}probe ABI for {info.arch}")
            remote_dir = f"{target.workdir}/cases/{spec.id}"
            ctx = CaseContext(spec, target, self._probe_path(abi), case_dir, remote_dir,
                              info.tracefs, info.debugfs, seed=self.options.seed,
                              timeout=self.options.timeout or spec.timeout)
            result = ctx.result
            # one console round trip: the case's directory, its begin line, and tracing
            setup = (f"mkdir -p {shlex.quote(remote_dir)}; "
                     f"echo {shlex.quote(f'binder-harness: begin {spec.id}')} > /dev/kmsg")
            if spec.wants_trace:
                ctx.start_trace(prefix=setup)
            else:
                with timing.phase("case_setup"):
                    target.run_shell(setup, 10)
            spec.func(ctx)
        except CaseSkipped as exc:
            result.outcome, result.reason = "skipped", str(exc)
        except TargetError as exc:
            result.outcome, result.reason = "error", str(exc)
            self._save_console_tail(case_dir)
            self._drop_target()
        except ConfigError:
            raise
        except KeyboardInterrupt:
            result.outcome, result.reason = "error", "interrupted"
            self._finish_case(ctx, spec, result, case_dir, t0)
            raise
        except Exception as exc:  # a bug in the case or the harness: keep the evidence, name it
            result.outcome = "error"
            result.reason = f"harness error: {type(exc).__name__}: {exc}".splitlines()[0]
            (case_dir / "error.txt").write_text(traceback.format_exc())
        self._finish_case(ctx, spec, result, case_dir, t0)
        return result

    def _finish_case(self, ctx, spec: CaseSpec, result: CaseResult, case_dir: Path, t0: float) -> None:
        """Collect the trace and dmesg delta, judge health, and write the evidence out."""
        if ctx is not None and self.target is not None and self.target.alive():
            try:
                ctx.stop_trace()
                self._health(ctx, spec, result, case_dir)
            except TargetError as exc:
                if result.outcome not in ("error",):
                    result.outcome, result.reason = "error", str(exc)
                self._save_console_tail(case_dir)
                self._drop_target()
        judge(result)
        result.duration_s = time.monotonic() - t0
        self._append_run_files(spec, case_dir)
        self.state.results.append(result)
        report.write_all(self.state)
        self.progress(f"{spec.id:<32} {result.outcome:<7} {result.duration_s:5.1f} s  {result.reason}")

    def _health(self, ctx: CaseContext, spec: CaseSpec, result: CaseResult, case_dir: Path) -> None:
        delta = ctx.dmesg()
        (case_dir / "dmesg.txt").write_text(delta)
        health = scan_dmesg(delta, spec.expected_dmesg)
        result.evidence["dmesg_bad_lines"] = health.bad_lines[:20]
        if health.unexpected_binder_lines:
            result.evidence["unexpected_binder_messages"] = health.unexpected_binder_lines[:20]
        if result.outcome not in ("error", "skipped"):
            ctx.check_that("kernel health: dmesg delta free of WARNING/BUG/Oops/KASAN/Call Trace",
                           not health.bad_lines, health.bad_lines[0] if health.bad_lines else "none",
                           "none", "dmesg (WARN/BUG/oops handlers)")
        if health.bad_lines and re.search(r"BUG:|Oops|general protection|KASAN", "\n".join(health.bad_lines)):
            self.progress(f"{spec.id}: kernel is tainted by an oops; the next case gets a fresh guest")
            self._drop_target()

    def _save_console_tail(self, case_dir: Path) -> None:
        tail = getattr(self.target, "last_console_lines", None)
        if tail is not None:
            (case_dir / "console-tail.log").write_text(tail(200))

    def _append_run_files(self, spec: CaseSpec, case_dir: Path) -> None:
        out = self.options.out_dir
        for path in sorted(case_dir.glob("probe-*.jsonl")):
            for line in path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    report.append_text(out / "probe.jsonl", json.dumps({"case": spec.id, **record}) + "\n")
        if (case_dir / "dmesg.txt").exists():
            report.append_text(out / "dmesg.txt", f"=== {spec.id} ===\n{(case_dir / 'dmesg.txt').read_text(errors='replace')}")
        if (case_dir / "trace.txt").exists():
            report.append_trace(out / "trace.txt", (case_dir / "trace.txt").read_text(errors="replace"))


def run_cases(specs: list[CaseSpec], options: RunOptions, progress=print) -> RunState:
    session = Session(options, progress)
    try:
        for spec in specs:
            session.run_case(spec)
    finally:
        session.close()
        report.write_all(session.state)
    return session.state
