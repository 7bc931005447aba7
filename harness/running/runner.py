"""Run cases on one target: each case on a pristine QEMU guest of its own (restored from the
cached snapshot, harness/targets/snapshots.py) or, with --shared-boot, one guest for the cases
in turn; each case in fresh probe processes; the guest replaced after a crash; every piece of
evidence kept.

The target itself is leased (harness/running/lease.py: start, spare, restore, drop, KVM
fallback) and set up for binder (harness/running/binder_setup.py: the cases' device, binderfs,
the resident context manager); the probe on it is target_probes.py; what the console and
kernel log leave of a case is case_console.py; a run directory that stops taking evidence is
evidence_output.py. Here: run a case, finish it, record it.
"""
from __future__ import annotations

import fnmatch
import json
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from harness.reports import report
from harness.evidence.drivers import driver_facts
from harness.running.binder_setup import BinderSetup
from harness.running.case_console import console_size, kernel_health, keep_console, save_console_tail
from harness.running.devices import BinderDevice
from harness.running.evidence_output import EvidenceOutput, is_output_error
from harness.running.lease import GuestLease
from harness.running.target_probes import TargetProbes
from harness.arches import abi_for
from harness.judging.catalog import CaseNotApplicable, CaseSkipped, CaseSpec
from harness.judging.context import CaseContext
from harness.errors import ConfigError, TargetError
from harness import timing
from harness.targets import TargetOptions
from harness.targets.spec import TargetSpec
from harness.targets.accel import KvmFailed
from harness.targets.base import BootedGuest, Target
from harness.judging.verdicts import CaseResult, Outcome, explain_denial, judge


@dataclass
class RunOptions:
    """One run: where, what to boot or reach (`target`), and how (harness/options.py declares
    the command-line and pytest flags that fill it)."""

    target_spec: TargetSpec  # parsed once, where the options are made (harness/options.py)
    out_dir: Path
    target: TargetOptions = field(default_factory=TargetOptions)
    timeout: float | None = None  # per case; None keeps each case's own
    seed: int | None = None
    command_line: str = ""
    shared_boot: bool = False  # QEMU: one guest serves the cases in turn, not one pristine guest per case
    binder_device: str | None = None  # --binder-device: run every case on this device
    not_applicable: tuple[str, ...] = ()  # --not-applicable: ids or globs of cases declared not to apply


@dataclass
class RunState:
    options: RunOptions
    results: list[CaseResult] = field(default_factory=list)
    target_info: dict = field(default_factory=dict)
    boot_s: float = 0.0
    boots: int = 0
    restore_s: float = 0.0
    restores: int = 0  # guests restored from a snapshot instead of booted
    started: float = field(default_factory=time.monotonic)
    extra: dict = field(default_factory=dict)  # more top-level report.json fields, e.g. jobs and guests
    html_at: float = float("-inf")  # when report.html was last rendered (report.write_all)


@dataclass
class _CaseRun:
    """One case as it runs: its result so far, its context once made, where its console began."""

    result: CaseResult
    ctx: CaseContext | None = None
    console_start: int = 0


class Session:
    """One target at a time, leased (harness/running/lease.py) and set up for binder
    (harness/running/binder_setup.py); the cases run on it one by one, each finished and recorded.

    `guest_dir` holds this session's guest files (console.log, boot dmesg); it is the
    run directory itself unless several sessions share one run (harness/running/parallel.py).
    `on_result` replaces writing the run's reports after each case, and `lock`
    serialises what sessions sharing a run directory write into it.
    """

    def __init__(self, options: RunOptions, progress=print, guest_dir: Path | None = None,
                 on_result=None, lock: threading.Lock | None = None, prefetch: bool = True):
        self.options = options
        self.progress = progress
        self.state = RunState(options)
        self.guest_dir = guest_dir or options.out_dir
        self.on_result = on_result
        self.lock = lock or threading.Lock()
        self.evidence = EvidenceOutput(options.out_dir, on_failed=self._drop_target)
        self.probes = TargetProbes()
        self.binder = BinderSetup(str(options.target_spec), options.binder_device, options.target.resident_cm,
                                  progress, self.state.extra)
        # restore the next case's guest while a case runs (run_case(more=True)); parallel runs
        # keep their cores for their own guests
        self.lease = GuestLease(options.target_spec, options.target, options.shared_boot, self.state,
                                progress, self.guest_dir, prefetch,
                                on_start=self._set_up, on_drop=self.binder.unmount)
        options.out_dir.mkdir(parents=True, exist_ok=True)
        self.guest_dir.mkdir(parents=True, exist_ok=True)

    @property
    def target(self) -> Target | None:
        return self.lease.target

    @property
    def cancelled(self) -> bool:
        """abort() was called: the run is being interrupted."""
        return self.lease.cancelled

    @property
    def console_log(self) -> Path:
        return self.lease.console_log

    @property
    def output_error(self) -> str:
        """Set when the run directory stops taking evidence (evidence_output.py)."""
        return self.evidence.error

    @property
    def device(self) -> BinderDevice:
        return self.binder.device

    def ensure_target(self) -> Target:
        return self.lease.acquire()

    def _set_up(self, target: Target, boot_dmesg: str) -> None:
        """A new target: its probes are pushed afresh; its binder device and resident set up."""
        self.probes.forget()
        self.binder.set_up(target, boot_dmesg, self.probe_path)
        self.state.target_info.update(self.binder.driver(target))

    def _drop_target(self) -> None:
        self.lease.drop()

    def close_resident(self) -> None:
        """Ask the resident context manager for PING (it must still answer), then end it."""
        if not self.cancelled and not self.output_error:
            self.binder.close_resident(self.target, self.probe_path)

    def close(self) -> None:
        self.close_resident()  # every front end (run, run -j, pytest) ends here
        self.lease.drop_spare()
        self.lease.drop()

    def abort(self) -> None:
        """Interrupt from another thread: kill the guest now; the running case ends as 'interrupted'."""
        self.lease.abort()

    def probe_path(self, abi: str) -> str:
        return self.probes.path(self.target, abi)

    # -- one case ------------------------------------------------------------
    def run_case(self, spec: CaseSpec, kvm_retry: bool = True, more: bool = False) -> CaseResult:
        """Run one case; `more`: another case follows on this session (its guest may be
        restored while this one runs)."""
        case_dir = self.options.out_dir / "cases" / spec.id
        t0 = time.monotonic()
        run = _CaseRun(CaseResult(spec.id), console_start=console_size(self.console_log))
        if self.output_error:
            run.result.outcome, run.result.reason = Outcome.ERROR, f"not run: {self.output_error}"
            self._record(run.result, spec)
            return run.result
        declared = next((g for g in self.options.not_applicable if fnmatch.fnmatchcase(spec.id, g)), None)
        if declared is not None:
            run.result.outcome = Outcome.NOT_APPLICABLE
            run.result.reason = f"not applicable: declared with --not-applicable {declared}; not run"
            self._record(run.result, spec)
            return run.result
        try:
            self._run_body(spec, case_dir, run, more)
        except CaseNotApplicable as exc:
            run.result.outcome, run.result.reason = Outcome.NOT_APPLICABLE, f"not applicable: {exc}"
        except CaseSkipped as exc:
            run.result.outcome, run.result.reason = Outcome.SKIPPED, str(exc)
        except ConfigError:
            raise
        except KeyboardInterrupt:
            # The console may be in the middle of a command: do not talk to the guest, end it.
            run.result.outcome, run.result.reason = Outcome.ERROR, "interrupted"
            self._lost_guest(case_dir, run.ctx)
            self._finish_case(run, spec, case_dir, t0)
            raise
        except Exception as exc:
            if isinstance(exc, KvmFailed) and kvm_retry and not self.cancelled and not exc.forced:
                return self._again_under_tcg(spec, case_dir, exc)
            self._case_raised(run, case_dir, exc)
        self._finish_case(run, spec, case_dir, t0)
        if self.lease.pristine_per_case():
            if self.binder.resident:  # this guest's resident still answers, before the guest goes
                self.close_resident()
                run.result.evidence["resident_context_manager"] = self.state.extra["resident_context_manager"]
            self._drop_target()  # the next case gets a guest no case has touched
        return run.result

    def _run_body(self, spec: CaseSpec, case_dir: Path, run: _CaseRun, more: bool) -> None:
        """Start (or keep) the target, set the case up in one round trip, and run it."""
        case_dir.mkdir(parents=True, exist_ok=True)
        target = self.ensure_target()
        if more:
            self.lease.start_spare()
        self.lease.cases_served += 1
        run.result.guest_start = guest_start(target, self.lease.cases_served)
        run.console_start = console_size(self.console_log)  # the case's console starts after any boot
        self.progress(f"{spec.id} ...")
        info = target.info()
        if not info.is_root:
            raise CaseSkipped(f"{info.spec}: not root, and /dev/binder needs root")
        abi = abi_for(info.arch, spec.compat)
        if abi is None:
            raise CaseSkipped(f"no {'32-bit ' if spec.compat else ''}probe ABI for {info.arch}")
        if spec.compat and not self.probes.has_compat(target):
            raise CaseNotApplicable(f"{info.kernel_release} has no 32-bit compat layer (CONFIG_COMPAT): "
                                    f"/proc/kallsyms has no compat_ptr_ioctl")
        remote_dir = f"{target.workdir}/cases/{spec.id}"
        run.ctx = CaseContext(spec, target, self.probe_path(abi), case_dir, remote_dir,
                              info.tracefs, info.debugfs, seed=self.options.seed,
                              timeout=self.options.timeout or spec.timeout,
                              trace_dat=self.options.target.trace_dat, binder_device=self.device.path,
                              driver=driver_facts(str(self.binder.driver(target)["driver"])),
                              binderfs=self.binder.binderfs or None,
                              pristine=self.lease.cases_served == 1 and isinstance(target, BootedGuest))
        run.ctx.result.guest_start = run.result.guest_start
        run.result = run.ctx.result
        run.result.evidence["binder_device"] = {"path": self.device.path, "made_by": self.device.made_by}
        # one console round trip: the case's directory, its begin line, and tracing. (Folding the
        # setup into the case's first command was measured about 10% faster, but a case that
        # reaches ctx.target directly, as a user's own case may, then ran before its `stats`
        # copy, hiding what it leaked from the accounting check: tests/test_snapshots.py.)
        setup = run.ctx.setup_script()
        if spec.wants_trace:
            run.ctx.start_trace(prefix=setup)
        else:
            with timing.phase("case_setup"):
                target.run_shell(setup, 10)
        spec.func(run.ctx)

    def _case_raised(self, run: _CaseRun, case_dir: Path, exc: Exception) -> None:
        """What an exception out of a case means for its result: a full or read-only run
        directory, a lost guest (or an interrupted run), or a bug in the case or harness."""
        result = run.result
        if isinstance(exc, OSError) and is_output_error(exc):
            self.evidence.failed(result, exc)
        elif isinstance(exc, TargetError) or (self.cancelled and not isinstance(exc, OSError)):
            result.outcome, result.reason = Outcome.ERROR, "interrupted" if self.cancelled else str(exc)
            self._lost_guest(case_dir, run.ctx)
        else:  # keep the evidence, name the bug
            self._harness_error(result, case_dir, exc)

    def _again_under_tcg(self, spec: CaseSpec, case_dir: Path, exc: KvmFailed) -> CaseResult:
        """KVM failed under a running case: the guest is gone and KVM is marked unusable for
        this host boot. The same case runs again from the start on a fresh TCG guest; the
        failed attempt's console is kept as cases/<id>/kvm-failure.log."""
        self.progress(f"{spec.id}: {exc}; running it again on a TCG guest")
        self.lease.drop_after_kvm_failure(case_dir, exc)
        result = self.run_case(spec, kvm_retry=False, more=True)
        result.evidence["accel_fallback"] = str(exc)
        return result

    def _harness_error(self, result: CaseResult, case_dir: Path, exc: BaseException) -> None:
        result.outcome = Outcome.ERROR
        result.reason = f"harness error: {type(exc).__name__}: {exc}".splitlines()[0]
        try:
            (case_dir / "error.txt").write_text(traceback.format_exc())
        except OSError as write_exc:
            self.evidence.failed(result, write_exc)

    def _lost_guest(self, case_dir: Path, ctx) -> None:
        """The guest crashed, wedged or is being interrupted: keep what the console showed, then end it."""
        save_console_tail(self.target, case_dir)
        self._drop_target()
        if ctx is not None and ctx._tracing:
            ctx._tracing = False  # the trace buffer went with the guest
            ctx.evidence["trace"] = "lost with the guest: it ended before the trace buffer was read"

    def _finish_case(self, run: _CaseRun, spec: CaseSpec, case_dir: Path, t0: float) -> None:
        """Collect the trace and dmesg delta, judge health, and write the evidence out."""
        ctx, result = run.ctx, run.result
        if ctx is not None and self.target is not None and self.target.alive() and not self.cancelled:
            with self.evidence.keeping(result):
                try:
                    ctx.stop_trace()
                    self._health(ctx, spec, case_dir)
                except TargetError as exc:
                    if result.outcome != Outcome.ERROR:
                        result.outcome, result.reason = Outcome.ERROR, str(exc)
                    self._lost_guest(case_dir, ctx)
        with self.evidence.keeping(result):
            keep_console(self.console_log, case_dir, run.console_start, spec, result)
        judge(result)
        if result.outcome == Outcome.FAILED:
            explain_denial(result, case_dir)
        result.duration_s = time.monotonic() - t0
        self._record(result, spec, case_dir)

    def _record(self, result: CaseResult, spec: CaseSpec, case_dir: Path | None = None) -> None:
        """Add the result to the run and write the run's files and reports."""
        with self.lock:
            if case_dir is not None and not self.output_error:
                with self.evidence.keeping(result):
                    append_case_files(self.options.out_dir, spec.id, case_dir)
            self.state.results.append(result)
            with self.evidence.keeping(result):
                if self.on_result is not None:
                    self.on_result(self, result)
                else:
                    report.write_all(self.state)
        self.progress(f"{spec.id:<32} {result.outcome:<7} {result.duration_s:5.1f} s  {result.reason}")

    def _health(self, ctx: CaseContext, spec: CaseSpec, case_dir: Path) -> None:
        if kernel_health(ctx, case_dir):
            self.progress(f"{spec.id}: kernel is tainted by an oops; the next case gets a fresh guest")
            self._drop_target()


def guest_start(target, cases_served: int) -> dict:
    """report.json's per-case `guest_start`: how the case's guest came to be ("restored" from
    the snapshot `snapshot`, or "booted"; "connected" for a device), and whether the case was
    the first it served (`fresh`: no earlier case of the run touched its driver)."""
    how = getattr(target, "started", "") or ("booted" if isinstance(target, BootedGuest) else "connected")
    return {"how": how, "snapshot": getattr(target, "snapshot_key", "") or None, "fresh": cases_served == 1}


def append_case_files(out: Path, case_id: str, case_dir: Path) -> None:
    """Add one case's probe lines, dmesg delta and trace to the run-wide files in `out`."""
    for path in sorted(case_dir.glob("probe-*.jsonl")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                report.append_text(out / "probe.jsonl", json.dumps({"case": case_id, **record}) + "\n")
    if (case_dir / "dmesg.txt").exists():
        report.append_text(out / "dmesg.txt", f"=== {case_id} ===\n{(case_dir / 'dmesg.txt').read_text(errors='replace')}")
    if (case_dir / "trace.txt").exists():
        report.append_trace(out / "trace.txt", (case_dir / "trace.txt").read_text(errors="replace"))


def not_run(specs: list[CaseSpec], done: set[str], why: str) -> list[CaseResult]:
    """Results for cases an interrupted run never reached: skipped, saying why."""
    return [CaseResult(s.id, Outcome.SKIPPED, f"not run: {why}") for s in specs if s.id not in done]


def run_cases(specs: list[CaseSpec], options: RunOptions, progress=print) -> RunState:
    session = Session(options, progress)
    try:
        for i, spec in enumerate(specs):
            session.run_case(spec, more=i + 1 < len(specs))
    except KeyboardInterrupt:
        session.state.results += not_run(specs, {r.id for r in session.state.results}, "the run was interrupted")
        raise
    finally:
        session.close()
        report.write_final(session.state)
    return session.state
