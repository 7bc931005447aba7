"""A guest lease: the one target a session's cases run on at a time.

It starts the target on first use (boots or restores a QEMU guest, or connects to a device),
hands it back while it still answers, replaces it after a crash, gives up after BOOT_ATTEMPTS
failures in a row, restores the next case's guest in the background (the spare), drops the
guest a case has used, and, when KVM fails under a case, drops the guest and its spare so the
case can run again under TCG. What is set up on a target once it is up (the binder device,
the resident context manager) is the session's: `on_start` and `on_drop`.
"""
from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol

from harness import timing
from harness.errors import TargetError, TargetUnavailable
from harness.reports import report
from harness.targets import TargetOptions, make_target
from harness.targets.accel import KvmFailed
from harness.targets.base import BootedGuest, KillableConsole, Target
from harness.targets.spec import TargetSpec

# A boot that fails this many times in a row gives up: the rest of the cases error at once.
BOOT_ATTEMPTS = 2


class LeaseRecord(Protocol):
    """Where a lease counts its guests for report.json (runner.RunState)."""

    boots: int
    boot_s: float
    restores: int
    restore_s: float
    target_info: dict


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


class GuestLease:
    """The session's target: `acquire()` gives one that answers, `drop()` ends it.

    `spec` and `target` say what to start (`--shared-boot`: one guest serves the cases in turn).
    Counts boots and restores into `state` (report.json's timings and target) and appends each
    new target's boot log to dmesg.txt in `guest_dir`. `on_start(target, boot_dmesg)` runs on
    each new target before a case uses it; `on_drop(target)` before one is stopped."""

    def __init__(self, spec: TargetSpec, target: TargetOptions, shared_boot: bool, state: LeaseRecord,
                 progress, guest_dir: Path, prefetch: bool,
                 on_start: Callable[[Target, str], None], on_drop: Callable[[Target], None]):
        self.spec = spec
        self.target_options = target
        self.shared_boot = shared_boot
        self.state = state
        self.progress = progress
        self.guest_dir = guest_dir
        # restore the next case's guest while a case runs (start_spare); parallel runs keep
        # their cores for their own guests
        self.prefetch = prefetch
        self.on_start = on_start
        self.on_drop = on_drop
        self.target: Target | None = None
        self.cancelled = False  # set by abort(): the run is being interrupted
        self.cases_served = 0  # cases the current target has served, the running one included
        self._booting: Target | None = None  # a target being started, for abort()
        self._boot_failures: list[str] = []
        self._boots_guests = True  # the target is a guest the harness boots (else it connects to one)
        self._spare: _Spare | None = None
        self._target_done: threading.Event | None = None  # set when a guest taken from a spare is gone

    @property
    def console_log(self) -> Path:
        return self.guest_dir / "console.log"

    def acquire(self) -> Target:
        """The target kept from the previous case while it answers; else the spare, or a new one."""
        if self.target is not None and self._healthy(self.target):
            return self.target
        self.drop()
        spare = self._take_spare()
        if spare is not None:
            return self._took(spare)
        if len(self._boot_failures) >= BOOT_ATTEMPTS:
            what = ("the guest failed to boot" if self._boots_guests else
                    f"{self.spec} was lost during the run: could not be reached again"
                    if self.state.boots else f"{self.spec} could not be reached")
            raise TargetError(f"not run: {what} {len(self._boot_failures)} times in a row "
                              f"({self._boot_failures[-1]})")
        if self.cancelled:
            raise KeyboardInterrupt("interrupted")
        return self._took(self._start())

    def _start(self) -> Target:
        target = make_target(self.spec, replace(self.target_options, console_log=self.console_log), self.progress)
        guest = target if isinstance(target, BootedGuest) else None
        self._boots_guests = guest is not None
        self.progress(f"{'start' if guest else 'connect'} {self.spec} ...")
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
        return target

    def _took(self, target: Target) -> Target:
        """A target just started (or restored in the background) becomes the one cases use."""
        guest = target if isinstance(target, BootedGuest) else None
        self._boot_failures.clear()
        self.target = target
        self.cases_served = 0
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
        self.on_start(target, boot_dmesg)
        return target

    def pristine_per_case(self) -> bool:
        """Each case on its own fresh guest: a QEMU guest, unless --shared-boot."""
        return not self.shared_boot and isinstance(self.target, BootedGuest)

    def _healthy(self, target: Target) -> bool:
        """A guest kept from the previous case still runs and its console still answers."""
        if not target.alive():
            return False
        try:
            return target.run_shell("true", 5).ok
        except TargetError as exc:
            self.progress(f"the guest no longer answers ({exc}); booting a fresh one")
            return False

    def drop(self) -> None:
        """End the current target (the next case gets another)."""
        if self.target is not None:
            self.on_drop(self.target)
            self.target.stop()
            self.target = None
        if self._target_done is not None:  # the thread that spawned it may go now
            self._target_done.set()
            self._target_done = None

    # -- the next case's guest, restored while this case runs ----------------------
    def start_spare(self) -> None:
        """Restore the next case's guest now, beside the running case, where it can only be a
        restore (a boot would compete with the case for the host) and the host has a core to spare."""
        if (self._spare is not None or not self.prefetch or self.cancelled or not self.pristine_per_case()
                or (os.cpu_count() or 1) < 2):
            return
        lines: list[str] = []
        log = self.guest_dir / "console.next.log"
        log.unlink(missing_ok=True)
        target = make_target(self.spec, replace(self.target_options, console_log=log), lines.append)
        restorable = isinstance(target, BootedGuest) and target.restorable()
        if not restorable:
            return
        self._spare = _Spare(target, lines)
        threading.Thread(target=self._spare.run, name="spare-guest", daemon=True).start()

    def _take_spare(self) -> Target | None:
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

    def drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            if isinstance(spare.target, KillableConsole):
                spare.target.kill()
            spare.ready.wait()
            spare.target.stop()
            spare.done.set()
            (self.guest_dir / "console.next.log").unlink(missing_ok=True)

    # -- KVM that failed under a case, and interrupts -------------------------------
    def drop_after_kvm_failure(self, case_dir: Path, exc: KvmFailed) -> None:
        """KVM failed under a running case (and is marked unusable for this host boot): end the
        guest and the spare restored under it; the failed attempt's console is kept as
        cases/<id>/kvm-failure.log in a fresh case directory, for the case's run under TCG."""
        tail = self.target.last_console_lines(200) if isinstance(self.target, KillableConsole) else ""
        self.drop()
        shutil.rmtree(case_dir, ignore_errors=True)
        case_dir.mkdir(parents=True, exist_ok=True)
        (case_dir / "kvm-failure.log").write_text(f"# {exc}\n{tail}\n")
        self.drop_spare()  # restored under the accelerator that just failed

    def abort(self) -> None:
        """From another thread: kill every guest of this lease now."""
        self.cancelled = True
        for target in (self.target, self._booting, self._spare.target if self._spare else None):
            if isinstance(target, KillableConsole):
                target.kill()


def describe_target(target: Target, boot_error: str | None) -> dict:
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
