"""Run cases on one target: each case on a pristine QEMU guest of its own (restored from the
cached snapshot, harness/targets/snapshots.py) or, with --shared-boot, one guest for the cases
in turn; each case in fresh probe processes; the guest replaced after a crash; every piece of
evidence kept.
"""
from __future__ import annotations

import errno
import fnmatch
import json
import os
import re
import shlex
import shutil
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from harness import timing
from harness.reports import report
from harness.running.devices import (DEFAULT_DEVICE, GUEST_BINDERFS_LINE, PRIVATE_DEVICE, BinderDevice,
                                     binderfs_script, parse_binderfs)
from harness.arches import abi_for
from harness.judging.cases import (COMPAT_SCRIPT, CaseContext, CaseNotApplicable, CaseSkipped, CaseSpec,
                                   compat_missing, judge_health)
from harness.errors import ConfigError, TargetError, TargetUnavailable
from harness.evidence.probe import ensure_probe
from harness.targets import PRIVATE_DEVICES, TargetOptions, make_target
from harness.targets.spec import TargetSpec
from harness.targets.accel import KvmFailed
from harness.targets.base import BootedGuest, KillableConsole, Target
from harness.judging.verdicts import CaseResult, Outcome, explain_denial, judge, scan_dmesg

# A boot that fails this many times in a row gives up: the rest of the cases error at once.
BOOT_ATTEMPTS = 2
# errnos that mean the run directory cannot take more evidence
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
_KERNEL_LINE = re.compile(r"^\s*\[\s*\d+\.\d+\]")


def is_output_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in OUTPUT_ERRNOS



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


@dataclass
class _Spare:
    """The next case's guest, restored in the background while the current case runs.

    QEMU dies with the thread that spawned it (PR_SET_PDEATHSIG, so no guest outlives the
    harness), so that thread stays until the guest is stopped: `done`."""

    target: Target
    lines: list[str]  # its progress lines, printed when a case takes it
    ready: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        try:
            self.target.start()
        except BaseException as exc:  # noqa: BLE001 - handed over when a case asks for it
            self.error = exc
        self.ready.set()
        self.done.wait()


@dataclass
class _CaseRun:
    """One case as it runs: its result so far, its context once made, where its console began."""

    result: CaseResult
    ctx: CaseContext | None = None
    console_start: int = 0


class Session:
    """One target at a time: started on first use, replaced after it crashes.

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
        self.target: Target | None = None
        self._booting: Target | None = None  # a target being started, for abort()
        self.guest_dir = guest_dir or options.out_dir
        self.on_result = on_result
        self.lock = lock or threading.Lock()
        self.cancelled = False  # set by abort(): the run is being interrupted
        self.output_error = ""  # set when the run directory stops taking evidence
        self._probes: dict[str, str] = {}
        self._compat: dict[str, bool] = {}  # per kernel build: it has the 32-bit compat layer
        self._boot_failures: list[str] = []
        self._boots_guests = True  # the target is a guest the harness boots (else it connects to one)
        self._cases_on_target = 0  # cases the current target has served, this one included
        self.device: BinderDevice = DEFAULT_DEVICE  # where this target's cases open binder
        # restore the next case's guest while a case runs (run_case(more=True)); parallel runs
        # keep their cores for their own guests
        self.prefetch = prefetch
        self._spare: _Spare | None = None
        self._target_done: threading.Event | None = None  # set when a guest taken from a spare is gone
        self.resident: dict = {}  # the resident context manager on /dev/binder, when one was asked for
        self._driver: dict | None = None  # which binder driver the target runs (binder_driver.py), read once
        self._own_binderfs = ""  # a binderfs this session mounted on the target (none there), unmounted at the end
        options.out_dir.mkdir(parents=True, exist_ok=True)
        self.guest_dir.mkdir(parents=True, exist_ok=True)

    @property
    def console_log(self) -> Path:
        return self.guest_dir / "console.log"

    # -- target lifecycle ----------------------------------------------------
    def ensure_target(self):
        if self.target is not None and self._healthy(self.target):
            return self.target
        self._drop_target()
        spare = self._take_spare()
        if spare is not None:
            return self._took(spare)
        if len(self._boot_failures) >= BOOT_ATTEMPTS:
            what = ("the guest failed to boot" if self._boots_guests else
                    f"{self.options.target_spec} was lost during the run: could not be reached again"
                    if self.state.boots else f"{self.options.target_spec} could not be reached")
            raise TargetError(f"not run: {what} {len(self._boot_failures)} times in a row "
                              f"({self._boot_failures[-1]})")
        if self.cancelled:
            raise KeyboardInterrupt("interrupted")
        o = self.options
        target = make_target(o.target_spec, replace(o.target, console_log=self.console_log), self.progress)
        guest = target if isinstance(target, BootedGuest) else None
        self._boots_guests = guest is not None
        self.progress(f"{'start' if guest else 'connect'} {o.target_spec} ...")
        if not self.state.target_info.get("kernel_release"):
            self.state.target_info = describe_target(target, None)
        self._booting = target
        try:
            try:
                target.start()
            except (TargetUnavailable, TargetError) as exc:  # TargetUnavailable is a ConfigError
                if self.state.boots == 0:
                    raise  # never reached: bad usage or configuration (TargetUnavailable), exit 2
                if isinstance(exc, TargetUnavailable) or guest is None:
                    # a device reached before and lost during the run (adbd killed, device offline): the case errors
                    raise TargetError(f"lost during the run: {exc}") from None
                raise
        except TargetError as exc:
            target.stop()
            self._boot_failures.append(str(exc))
            if self.state.boots == 0:
                self.state.target_info = describe_target(target, str(exc))
            raise
        except BaseException:
            target.stop()
            raise
        finally:
            self._booting = None
        return self._took(target)

    def _took(self, target):
        """A target just started (or restored in the background) becomes the one cases use."""
        guest = target if isinstance(target, BootedGuest) else None
        self._boot_failures.clear()
        self.target = target
        self._probes = {}
        self._cases_on_target = 0
        restored = getattr(target, "started", "") == "restored"
        if restored:
            self.state.restores += 1
            self.state.restore_s += getattr(target, "restore_s", 0.0)
        else:
            self.state.boots += 1
            self.state.boot_s += guest.boot_s if guest else 0.0
        self.state.target_info = describe_target(target, None)
        info = target.info()
        if guest is None:  # ssh, adb, local: a device the harness reaches, not one it boots
            self.progress(f"connected {info.spec}: {info.kernel_release}")
        elif restored:
            self.progress(f"restored {info.spec}: {info.kernel_release} ({info.accel}: {info.accel_reason}) "
                          f"restored snapshot {getattr(target, 'snapshot_key', '')} in {getattr(target, 'restore_s', 0.0):.1f} s")
        else:
            self.progress(f"booted {info.spec}: {info.kernel_release} ({info.accel}: {info.accel_reason}) "
                          f"in {guest.boot_s:.1f} s")
        with timing.phase("boot_dmesg"):
            saved = guest.boot_dmesg() if guest else None  # the guest's init saves it before READY
            boot_dmesg = saved if saved is not None else target.dmesg(20)
        title = (f"restore {self.state.restores} (snapshot {getattr(target, 'snapshot_key', '')}, its boot's log)"
                 if restored else f"boot {self.state.boots}" if guest else f"connection {self.state.boots}")
        report.append_text(self.guest_dir / "dmesg.txt", f"=== {title} ===\n{boot_dmesg}")
        self.device = self._choose_device(target, boot_dmesg)
        self.state.target_info.update(self._binder_driver(target))
        if self.options.target.resident_cm:
            self._start_resident(target)
        return target

    def _pristine_per_case(self) -> bool:
        """Each case on its own fresh guest: a QEMU guest, unless --shared-boot."""
        return not self.options.shared_boot and isinstance(self.target, BootedGuest)

    # -- the next case's guest, restored while this case runs ----------------------
    def _start_spare(self) -> None:
        """Restore the next case's guest now, beside the running case, where it can only be a
        restore (a boot would compete with the case for the host) and the host has a core to spare."""
        if (self._spare is not None or not self.prefetch or self.cancelled or not self._pristine_per_case()
                or (os.cpu_count() or 1) < 2):
            return
        o = self.options
        lines: list[str] = []
        log = self.guest_dir / "console.next.log"
        log.unlink(missing_ok=True)
        target = make_target(o.target_spec, replace(o.target, console_log=log), lines.append)
        restorable = isinstance(target, BootedGuest) and target.restorable()
        if not restorable:
            return
        self._spare = _Spare(target, lines)
        threading.Thread(target=self._spare.run, name="spare-guest", daemon=True).start()

    def _take_spare(self):
        """The guest restored in the background, once it is up; None when there is none or it
        did not come up (then the next case starts its guest itself, as without one)."""
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        with timing.phase("spare_wait"):
            spare.ready.wait()
        for line in spare.lines:
            self.progress(line)
        if spare.error is not None or self.cancelled:
            spare.target.stop()
            spare.done.set()
            if spare.error is not None and not isinstance(spare.error, Exception):
                raise spare.error  # KeyboardInterrupt and the like
            if spare.error is not None:
                self.progress(f"the guest restored for this case did not come up ({spare.error}); starting another")
            return None
        assert isinstance(spare.target, BootedGuest)
        spare.target.move_console_log(self.console_log)
        self._target_done = spare.done
        return spare.target

    def _drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            if isinstance(spare.target, KillableConsole):
                spare.target.kill()
            spare.ready.wait()
            spare.target.stop()
            spare.done.set()
            (self.guest_dir / "console.next.log").unlink(missing_ok=True)

    # -- which binder device the cases use -----------------------------------------
    def _choose_device(self, target, boot_dmesg: str) -> BinderDevice:
        """The device cases open (harness/running/devices.py): the one named with --binder-device;
        where the target has binderfs, one of their own made through binder-control; with a
        resident context manager on /dev/binder, binder_linux's devices= parameter where the
        harness loads the module; else /dev/binder."""
        o = self.options
        label = o.target_spec
        if o.binder_device:
            device = BinderDevice(o.binder_device, "named with --binder-device")
        elif made := self._binderfs_device(target, boot_dmesg):
            return made
        elif o.target.resident_cm:
            if not isinstance(target, BootedGuest):
                raise ConfigError(f"{label}: --resident-context-manager needs a private binder device for the cases; "
                                  f"name one with --binder-device PATH")
            device = BinderDevice(PRIVATE_DEVICE, f"binder_linux devices={PRIVATE_DEVICES} at insmod by the guest's init")
        else:
            return DEFAULT_DEVICE
        if not target.run(["test", "-c", device.path], 10).ok:
            raise ConfigError(f"{label}: --binder-device {device.path}: no such character device on the target; "
                              f"list them with ls -l /dev/binder*")
        return device

    def _binder_driver(self, target) -> dict:
        """report.json's target `driver` ("c", "rust", ...) and what it was read from, once per run."""
        if self._driver is None:
            from harness.targets.binder_driver import DRIVER_SCRIPT, parse_driver

            with timing.phase("binder_driver"):
                self._driver = parse_driver(target.run_shell(DRIVER_SCRIPT, 30).output).as_json()
        return self._driver

    def _binderfs_device(self, target, boot_dmesg: str) -> BinderDevice | None:
        """A device of the cases' own through binderfs's binder-control (BINDER_CTL_ADD), made
        once per target (each restored guest makes its own: one ioctl); None when the target has
        no binderfs. An existing device of that name (an earlier run on a long-lived target) is
        reused, and made_by says so."""
        if isinstance(target, BootedGuest) and GUEST_BINDERFS_LINE not in boot_dmesg:
            return None  # guest-init mounts binderfs wherever the kernel has it, and says so in the log
        info = target.info()
        abi = abi_for(info.arch, False)
        if not info.is_root or abi is None:
            return None  # binder-control is root's (0600); the cases are skipped without root anyway
        label = self.options.target_spec
        own = f"{target.workdir}/binderfs"
        res = target.run_shell(binderfs_script(self.probe_path(abi), own), 30)
        answer = parse_binderfs(res.output)
        if answer.state == "none":
            return None
        if answer.state == "mounted_here":
            self._own_binderfs = answer.mount
        if answer.state == "mount_failed":
            raise ConfigError(f"{label}: the kernel has binderfs, but mounting it at {answer.mount} failed "
                              f"({answer.why or 'no output'}); mount it as Android does (mkdir /dev/binderfs; "
                              f"mount -t binder binder /dev/binderfs) or name a device with --binder-device PATH")
        if answer.state not in ("mounted", "mounted_here"):
            raise TargetError(f"{label}: looking for binderfs gave no answer: {res.output.strip()[-200:] or 'no output'}")
        control = f"{answer.mount}/binder-control"
        if answer.made:
            return BinderDevice(answer.device, f"binderfs BINDER_CTL_ADD on {control}")
        if answer.existed:
            self.progress(f"{label}: {answer.device} already exists (BINDER_CTL_ADD: EEXIST; an earlier run "
                          f"made it, say); the cases reuse it")
            return BinderDevice(answer.device, f"binderfs: already there (BINDER_CTL_ADD on {control}: EEXIST), reused")
        failed = answer.why or f"BINDER_CTL_ADD on {control}: {answer.errno_name or 'no device appeared'}"
        hint = " (SELinux? adb root, or setenforce 0 on a userdebug build)" if "EACCES" in failed else ""
        raise ConfigError(f"{label}: binderfs gave the cases no device: {failed}{hint}; "
                          f"name one with --binder-device PATH")

    def _start_resident(self, target) -> None:
        """A resident context manager on /dev/binder, standing in for servicemanager: the probe's
        `resident` scenario, left running in the background for the whole run."""
        if self.device.path == "/dev/binder":
            raise ConfigError(f"{self.options.target_spec}: the resident context manager owns /dev/binder; "
                              f"the cases need another device (--binder-device PATH)")
        info = target.info()
        abi = abi_for(info.arch, False)
        assert abi is not None
        probe = self.probe_path(abi)
        # Under its own name: each case's settle step kills leftover processes named like the probe.
        resident = f"{target.workdir}/bin/binder-resident"
        log = f"{target.workdir}/resident.jsonl"
        q = shlex.quote
        # setsid where there is one: adbd ends a shell's processes with its session
        start = (f"cp {q(probe)} {q(resident)} && s=$(command -v setsid); "
                 f"($s {q(resident)} resident device=/dev/binder > {q(log)} 2>&1 < /dev/null &); "
                 f"i=0; while [ $i -lt 50 ] && ! grep -q resident.ready {q(log)} 2>/dev/null; do sleep 0.1; i=$((i+1)); done; "
                 f"cat {q(log)}")
        res = target.run_shell(start, 20)
        line = next((l for l in res.output.splitlines() if "resident.ready" in l), "")
        try:
            ready = json.loads(line)
        except ValueError:
            ready = {}
        if ready.get("errno_name") == "EBUSY":
            raise ConfigError(f"{info.spec}: /dev/binder already has a context manager (servicemanager, or a "
                              f"resident left running); drop --resident-context-manager: the cases run on "
                              f"{self.device.path} ({self.device.made_by})")
        if not ready or ready.get("errno"):
            raise TargetError(f"{info.spec}: the resident context manager did not start on /dev/binder: "
                              f"{res.output.strip()[-200:] or 'no output'}")
        self.resident = {"device": "/dev/binder", "pid": ready.get("pid"), "started": True}
        self.state.extra["resident_context_manager"] = dict(self.resident)
        self.progress(f"resident context manager on /dev/binder (pid {ready.get('pid')}); cases run on {self.device.path}")

    def ping_resident(self) -> None:
        """After the cases: the resident context manager still answers PING on /dev/binder."""
        target = self.target
        if not self.resident or target is None or not target.alive():
            return
        abi = abi_for(target.info().arch, False)
        assert abi is not None
        res = target.run([self.probe_path(abi), "ping_cm", "device=/dev/binder", "timeout=10"], 20)
        alive = target.run_shell(f"kill -0 {int(self.resident['pid'])}", 10).ok
        answered = res.ok and '"reply":true' in res.output
        self.state.extra["resident_context_manager"] = {**self.resident, "still_running": alive,
                                                        "ping_after_run": "answered" if answered else res.output.strip()[-200:]}
        self.progress(f"resident context manager on /dev/binder: {'answered PING' if answered else 'did NOT answer PING'} "
                      f"after the run")

    def _healthy(self, target) -> bool:
        """A guest kept from the previous case still runs and its console still answers."""
        if not target.alive():
            return False
        try:
            return target.run_shell("true", 5).ok
        except TargetError as exc:
            self.progress(f"the guest no longer answers ({exc}); booting a fresh one")
            return False

    def _drop_target(self) -> None:
        if self.target is not None:
            if self._own_binderfs and not isinstance(self.target, BootedGuest) and self.target.alive():
                try:  # before the target removes its workdir; lazily, should a probe still hold a device
                    self.target.run(["umount", "-l", self._own_binderfs], 10)
                except TargetError:
                    pass
            self._own_binderfs = ""
            self.target.stop()
            self.target = None
        if self._target_done is not None:  # the thread that spawned it may go now
            self._target_done.set()
            self._target_done = None

    def close_resident(self) -> None:
        """Ask the resident context manager for PING (it must still answer), then end it."""
        if self.resident and not self.cancelled and not self.output_error:
            try:
                self.ping_resident()
                if self.target is not None and self.target.alive():  # leave no context manager behind
                    self.target.run_shell(f"kill {int(self.resident['pid'])} 2>/dev/null; true", 10)
            except TargetError as exc:
                self.state.extra["resident_context_manager"] = {**self.resident, "ping_after_run": f"not asked: {exc}"}

    def close(self) -> None:
        self.close_resident()  # every front end (run, run -j, pytest) ends here
        self._drop_spare()
        self._drop_target()

    def abort(self) -> None:
        """Interrupt from another thread: kill the guest now; the running case ends as 'interrupted'."""
        self.cancelled = True
        for target in (self.target, self._booting, self._spare.target if self._spare else None):
            if isinstance(target, KillableConsole):
                target.kill()

    def probe_path(self, abi: str) -> str:
        if abi not in self._probes:
            target = self.target
            assert target is not None, "the probe is pushed to a started target"
            remote = f"{target.workdir}/bin/binder-probe-{abi}"
            target.push(ensure_probe(abi), remote, 0o755)  # every push makes the directory
            self._probes[abi] = remote
        return self._probes[abi]

    # -- one case ------------------------------------------------------------
    def run_case(self, spec: CaseSpec, kvm_retry: bool = True, more: bool = False) -> CaseResult:
        """Run one case; `more`: another case follows on this session (its guest may be
        restored while this one runs)."""
        case_dir = self.options.out_dir / "cases" / spec.id
        t0 = time.monotonic()
        run = _CaseRun(CaseResult(spec.id), console_start=self._console_size())
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
        if self._pristine_per_case():
            if self.resident:  # this guest's resident still answers, before the guest goes
                self.close_resident()
                run.result.evidence["resident_context_manager"] = self.state.extra["resident_context_manager"]
            self._drop_target()  # the next case gets a guest no case has touched
        return run.result

    def _run_body(self, spec: CaseSpec, case_dir: Path, run: _CaseRun, more: bool) -> None:
        """Start (or keep) the target, set the case up in one round trip, and run it."""
        case_dir.mkdir(parents=True, exist_ok=True)
        target = self.ensure_target()
        if more:
            self._start_spare()
        self._cases_on_target += 1
        run.result.guest_start = guest_start(target, self._cases_on_target)
        run.console_start = self._console_size()  # the case's console starts after any boot
        self.progress(f"{spec.id} ...")
        info = target.info()
        if not info.is_root:
            raise CaseSkipped(f"{info.spec}: not root, and /dev/binder needs root")
        abi = abi_for(info.arch, spec.compat)
        if abi is None:
            raise CaseSkipped(f"no {'32-bit ' if spec.compat else ''}probe ABI for {info.arch}")
        if spec.compat and not self._has_compat(target):
            raise CaseNotApplicable(f"{info.kernel_release} has no 32-bit compat layer (CONFIG_COMPAT): "
                                    f"/proc/kallsyms has no compat_ptr_ioctl")
        remote_dir = f"{target.workdir}/cases/{spec.id}"
        run.ctx = CaseContext(spec, target, self.probe_path(abi), case_dir, remote_dir,
                              info.tracefs, info.debugfs, seed=self.options.seed,
                              timeout=self.options.timeout or spec.timeout,
                              trace_dat=self.options.target.trace_dat, binder_device=self.device.path,
                              pristine=self._cases_on_target == 1 and isinstance(target, BootedGuest))
        run.ctx.result.guest_start = run.result.guest_start
        run.result = run.ctx.result
        run.result.evidence["binder_device"] = {"path": self.device.path, "made_by": self.device.made_by}
        # one console round trip: the case's directory, its begin line, and tracing
        setup = run.ctx.setup_script()
        if spec.wants_trace:
            run.ctx.start_trace(prefix=setup)
        else:
            with timing.phase("case_setup"):
                target.run_shell(setup, 10)
        spec.func(run.ctx)

    def _has_compat(self, target) -> bool:
        """The kernel under test has the 32-bit compat layer the compat cases go through (or it
        cannot be told: then they run); asked once per kernel build."""
        info = target.info()
        key = f"{info.spec} {info.kernel_release} {info.build_id}"
        if key not in self._compat:
            with timing.phase("compat_check"):
                self._compat[key] = not compat_missing(target.run_shell(COMPAT_SCRIPT, 30).output)
        return self._compat[key]

    def _case_raised(self, run: _CaseRun, case_dir: Path, exc: Exception) -> None:
        """What an exception out of a case means for its result: a full or read-only run
        directory, a lost guest (or an interrupted run), or a bug in the case or harness."""
        result = run.result
        if isinstance(exc, OSError) and is_output_error(exc):
            self._output_failed(result, exc)
        elif isinstance(exc, TargetError) or (self.cancelled and not isinstance(exc, OSError)):
            result.outcome, result.reason = Outcome.ERROR, "interrupted" if self.cancelled else str(exc)
            self._lost_guest(case_dir, run.ctx)
        else:  # keep the evidence, name the bug
            self._harness_error(result, case_dir, exc)

    @contextmanager
    def _keeping_evidence(self, result: CaseResult) -> Iterator[None]:
        """Writes into the run directory: when it is full or read-only, this case errors and
        later ones do not run; any other OSError is a bug and propagates."""
        try:
            yield
        except OSError as exc:
            if not is_output_error(exc):
                raise
            self._output_failed(result, exc)

    def _again_under_tcg(self, spec: CaseSpec, case_dir: Path, exc: KvmFailed) -> CaseResult:
        """KVM failed under a running case: the guest is gone and KVM is marked unusable for
        this host boot. The same case runs again from the start on a fresh TCG guest; the
        failed attempt's console is kept as cases/<id>/kvm-failure.log."""
        self.progress(f"{spec.id}: {exc}; running it again on a TCG guest")
        tail = self.target.last_console_lines(200) if isinstance(self.target, KillableConsole) else ""
        self._drop_target()
        shutil.rmtree(case_dir, ignore_errors=True)
        case_dir.mkdir(parents=True, exist_ok=True)
        (case_dir / "kvm-failure.log").write_text(f"# {exc}\n{tail}\n")
        self._drop_spare()  # restored under the accelerator that just failed
        result = self.run_case(spec, kvm_retry=False, more=True)
        result.evidence["accel_fallback"] = str(exc)
        return result

    def _harness_error(self, result: CaseResult, case_dir: Path, exc: BaseException) -> None:
        result.outcome = Outcome.ERROR
        result.reason = f"harness error: {type(exc).__name__}: {exc}".splitlines()[0]
        try:
            (case_dir / "error.txt").write_text(traceback.format_exc())
        except OSError as write_exc:
            self._output_failed(result, write_exc)

    def _output_failed(self, result: CaseResult, exc: OSError) -> None:
        """The run directory stopped taking evidence (full, read-only): this case errors, later ones do not run."""
        self.output_error = (f"cannot write evidence to {self.options.out_dir} ({exc.strerror}); "
                             "free space or give another --out")
        if result.outcome != Outcome.ERROR:
            result.outcome, result.reason = Outcome.ERROR, self.output_error
        self._drop_target()

    def _lost_guest(self, case_dir: Path, ctx) -> None:
        """The guest crashed, wedged or is being interrupted: keep what the console showed, then end it."""
        self._save_console_tail(case_dir)
        self._drop_target()
        if ctx is not None and ctx._tracing:
            ctx._tracing = False  # the trace buffer went with the guest
            ctx.evidence["trace"] = "lost with the guest: it ended before the trace buffer was read"

    def _finish_case(self, run: _CaseRun, spec: CaseSpec, case_dir: Path, t0: float) -> None:
        """Collect the trace and dmesg delta, judge health, and write the evidence out."""
        ctx, result = run.ctx, run.result
        if ctx is not None and self.target is not None and self.target.alive() and not self.cancelled:
            with self._keeping_evidence(result):
                try:
                    ctx.stop_trace()
                    self._health(ctx, spec, result, case_dir)
                except TargetError as exc:
                    if result.outcome != Outcome.ERROR:
                        result.outcome, result.reason = Outcome.ERROR, str(exc)
                    self._lost_guest(case_dir, ctx)
        with self._keeping_evidence(result):
            self._keep_console(case_dir, run.console_start, ctx, spec, result)
        judge(result)
        if result.outcome == Outcome.FAILED:
            explain_denial(result, case_dir)
        result.duration_s = time.monotonic() - t0
        self._record(result, spec, case_dir)

    def _record(self, result: CaseResult, spec: CaseSpec, case_dir: Path | None = None) -> None:
        """Add the result to the run and write the run's files and reports."""
        with self.lock:
            if case_dir is not None and not self.output_error:
                with self._keeping_evidence(result):
                    self._append_run_files(spec, case_dir)
            self.state.results.append(result)
            with self._keeping_evidence(result):
                if self.on_result is not None:
                    self.on_result(self, result)
                else:
                    report.write_all(self.state)
        self.progress(f"{spec.id:<32} {result.outcome:<7} {result.duration_s:5.1f} s  {result.reason}")

    def _console_size(self) -> int:
        try:
            return self.console_log.stat().st_size
        except OSError:
            return 0

    def _keep_console(self, case_dir: Path, start: int, ctx, spec: CaseSpec, result: CaseResult) -> None:
        """cases/<id>/console.log: what the guest console showed during the case. When the
        guest ended before its kernel log could be read, the console's kernel lines stand in
        for the dmesg delta (the console shows critical messages: oops, panic)."""
        if not case_dir.is_dir():
            return
        try:
            with open(self.console_log, "rb") as fh:
                fh.seek(start)
                text = fh.read().decode(errors="replace").replace("\r", "")
        except OSError:
            return
        if text:
            (case_dir / "console.log").write_text(text)
        if result.outcome == Outcome.ERROR and not (case_dir / "dmesg.txt").exists():
            kernel = [l for l in text.splitlines() if _KERNEL_LINE.match(l)]
            (case_dir / "dmesg.txt").write_text(
                "# the guest ended before its kernel log could be read; kernel lines from its console:\n"
                + "".join(l + "\n" for l in kernel))
            bad = scan_dmesg("\n".join(kernel), spec.expected_dmesg).bad_lines
            if bad:
                result.evidence["dmesg_bad_lines"] = bad[:20]

    def _health(self, ctx: CaseContext, spec: CaseSpec, result: CaseResult, case_dir: Path) -> None:
        delta = ctx.dmesg()
        (case_dir / "dmesg.txt").write_text(delta)
        health = judge_health(ctx, delta)
        if health.bad_lines and re.search(r"BUG:|Oops|general protection|KASAN", "\n".join(health.bad_lines)):
            self.progress(f"{spec.id}: kernel is tainted by an oops; the next case gets a fresh guest")
            self._drop_target()

    def _save_console_tail(self, case_dir: Path) -> None:
        if isinstance(self.target, KillableConsole):
            (case_dir / "console-tail.log").write_text(self.target.last_console_lines(200))

    def _append_run_files(self, spec: CaseSpec, case_dir: Path) -> None:
        append_case_files(self.options.out_dir, spec.id, case_dir)


def guest_start(target, cases_served: int) -> dict:
    """report.json's per-case `guest_start`: how the case's guest came to be ("restored" from
    the snapshot `snapshot`, or "booted"; "connected" for a device), and whether the case was
    the first it served (`fresh`: no earlier case of the run touched its driver)."""
    how = getattr(target, "started", "") or ("booted" if isinstance(target, BootedGuest) else "connected")
    return {"how": how, "snapshot": getattr(target, "snapshot_key", "") or None, "fresh": cases_served == 1}


def describe_target(target, boot_error: str | None) -> dict:
    """report.json's `target`: what is known of it, and, before any boot or connection
    worked, which fields are missing and why."""
    try:
        info = target.info()  # a QEMU guest knows its kernel and accelerator before it boots
    except TargetError:
        info = None
    out: dict = {"spec": target.spec}
    if info is not None:
        out.update({"arch": info.arch, "kernel_release": info.kernel_release, "accel": info.accel,
                    "accel_reason": info.accel_reason, "binder_module": info.binder_module})
        if info.build_id:
            out["build_id"] = info.build_id
    if isinstance(target, BootedGuest):
        if target.image.binder_module_sha256:
            out["binder_module_sha256"] = target.image.binder_module_sha256
        out["image"] = target.image.recipe.name
        out["kernel_source"] = target.image.kernel_source
    if boot_error is not None:
        out["boot_error"] = boot_error
        if info is None:
            out["missing"] = f"arch, kernel_release, accel: the target never answered ({boot_error})"
    return out


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
