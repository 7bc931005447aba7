"""The QEMU target: boot a guest image, or restore it from a snapshot, and drive its serial
console.

Its pieces, each a module of its own: the command line and the QEMU process
(qemu_command.py), the console (qemu_console.py), snapshot and restore (qemu_snapshot.py),
and file transfer over the 9p share (qemu_share.py). Here: the boot, the KVM-to-TCG
fallback, and the console's command protocol.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import time
from pathlib import Path

import pexpect

from harness import timing
from harness.errors import ConfigError, GuestCrashed, TargetError
from harness.building.build import GuestImage
from harness.targets import accel as accels
from harness.targets import qemu_snapshot, snapshots
from harness.targets.accel import KVM_FAILURE, KvmFailed
from harness.targets.base import CommandResult, StartStop, TargetInfo, shell_command
from harness.targets.qemu_command import qemu_argv
from harness.targets.qemu_console import SerialConsole
from harness.targets.qemu_share import GUEST_SHARE, Share, sweep_stale_shares

__all__ = ["QemuTarget", "sweep_stale_shares"]  # sweep_stale_shares: qemu_share.py

_READY = re.compile(rb"binder-harness: READY (\S+) ([\d.]+)[^\n]*\n")
_PANIC = re.compile(rb"Kernel panic - not syncing[^\n]*")
# What images/guest-init.sh prints before READY when the guest cannot serve a case.
_INIT_FAILED = re.compile(rb"binder-harness: (?:insmod \S+ failed|no /dev/binder|9p mount failed)[^\r\n]*")


class QemuTarget(StartStop):
    """A guest booted from a GuestImage, or restored from a snapshot of one (snapshots.py).

    With `use_snapshot`, start() restores the cached snapshot of this exact guest when there
    is one, and otherwise boots, saves the snapshot, and goes on with the booted guest.
    `started` says which ("booted" or "restored") and `snapshot_key` which snapshot."""

    def __init__(self, image: GuestImage, spec: str, console_log: Path | None = None,
                 boot_timeout: float = 90.0, extra_args: tuple[str, ...] = (), progress=print,
                 use_snapshot: bool = False):
        self.image = image
        self.spec = spec
        self.boot_timeout = boot_timeout
        self.extra_args = extra_args
        self.progress = progress
        self.binary = shutil.which(image.recipe.qemu.binary) or ""
        if not self.binary:
            raise ConfigError(f"{image.recipe.qemu.binary} not found; install Debian's qemu-system-x86 / qemu-system-arm")
        self.accel = accels.choose(image.recipe.arch, self.binary)
        self.share = Share(spec)
        self.console = SerialConsole(console_log)
        self.workdir = GUEST_SHARE
        self.boot_s = 0.0
        self.restore_s = 0.0
        self.use_snapshot = use_snapshot
        self.started = ""  # "booted" or "restored", once started
        self.snapshot_key = ""  # the snapshot restored, or saved from this boot
        self._seq = 0
        self._build_id = ""

    @property
    def console_log(self) -> Path | None:
        return self.console.log

    # -- lifecycle -----------------------------------------------------------
    def qemu_argv(self) -> list[str]:
        return qemu_argv(self.binary, self.image, self.accel, self.share.path, self.extra_args)

    def qmp_path(self) -> Path:
        return self.share.path / ".qmp"

    def start(self) -> None:
        """Restore this guest's snapshot, or boot (and save one). A KVM that fails (at start,
        mid-boot, or by making no progress) is remembered as unusable for this host boot and
        the guest boots again under TCG at once."""
        self.console.open_log()
        snap = self._snapshot()
        if snap is None:
            self.boot_with_fallback()
        else:
            qemu_snapshot.start_from_snapshot(self, snap)

    def restorable(self) -> bool:
        """start() would restore the cached snapshot rather than boot."""
        snap = self._snapshot()
        return snap is not None and snap.meta() is not None

    def move_console_log(self, path: Path) -> None:
        """Go on logging the console into `path` (qemu_console.SerialConsole.move_log)."""
        self.console.move_log(path)

    def ready_to_start_again(self) -> None:
        """After a failed restore: the share and the console log as a fresh start wants them."""
        self.share.path.mkdir(exist_ok=True)
        self.console.open_log()

    def _snapshot(self) -> snapshots.Snapshot | None:
        """The snapshot this guest would restore from, or None when it boots: snapshots off,
        or a KVM not yet shown to boot this host's guests (only a real boot proves it)."""
        if not self.use_snapshot or (self.accel.name == "kvm" and not self.accel.proven and not self.accel.forced):
            return None
        with timing.phase("snapshot_key"):
            fields = snapshots.key_fields(self.qemu_argv(), self.image.kernel, self.image.initramfs,
                                          str(self.share.path), self.accel.name)
        return snapshots.Snapshot(snapshots.key_of(fields), fields)

    def boot_with_fallback(self, qmp: bool = False) -> None:
        t0 = time.monotonic()
        try:
            self._boot(qmp)
        except KvmFailed as exc:
            if self.accel.forced:
                raise
            self.console.end()
            timing.add("kvm_fallback", time.monotonic() - t0)
            self.progress(f"{self.spec}: {exc.why}; booting again under TCG")
            self.accel = accels.fell_back(exc.why)
            self._boot(qmp)
            accels.remember(self.binary, self.accel)
            return
        if self.accel.name == "kvm" and not self.accel.proven:
            self.accel = accels.proven(self.boot_s)
            accels.remember(self.binary, self.accel)

    def _boot(self, qmp: bool = False) -> None:
        argv = self.qemu_argv()
        if qmp:
            argv += ["-qmp", f"unix:{self.qmp_path()},server=on,wait=off"]
        t0 = time.monotonic()
        child = self.console.spawn(argv, self.boot_timeout)
        t_spawned = time.monotonic()
        timing.add("qemu_spawn", t_spawned - t0)
        bound = self.boot_timeout
        if self.accel.name == "kvm" and not self.accel.forced:
            bound = min(bound, accels.KVM_BOOT_BOUND_S)
        idx = self._expect([_READY, _PANIC], bound, "boot")
        if idx == 1:
            raise self._crashed("kernel panic during boot")
        init_failed = _INIT_FAILED.search(child.before or b"")
        if init_failed:  # e.g. a module the kernel cannot load: no case could run on this guest
            self.stop()
            raise TargetError(f"{self.spec}: guest init: {init_failed.group(0).decode(errors='replace').strip()}")
        timing.add("boot_to_ready", time.monotonic() - t_spawned)
        timing.add("guest_uptime", float(child.match.group(2)))
        # The shell printed READY after its banner (guest-init.sh), so no command
        # is needed to swallow it.
        self.boot_s = time.monotonic() - t0
        self.started = "booted"

    def boot_dmesg(self) -> str | None:
        """The kernel log as guest-init saved it before READY, or None when it did not."""
        try:
            return (self.share.path / ".boot-dmesg.txt").read_text(errors="replace")
        except OSError:
            return None

    def stop(self) -> None:
        self.console.end()
        self.console.close_log()
        self.share.remove()

    def alive(self) -> bool:
        return self.console.alive()

    def kill(self) -> None:
        """SIGKILL QEMU now, from any thread; whoever waits on the console sees it exit."""
        self.console.kill()

    def drain_console(self, timeout: float) -> bool:
        """Read what the console printed (into console.log) for up to timeout; False once QEMU has exited."""
        return self.console.drain(timeout)

    # -- console -------------------------------------------------------------
    def last_console_lines(self, n: int = 200) -> str:
        return self.console.last_lines(n)

    def _crashed(self, what: str) -> GuestCrashed:
        self.console.read_to_end(5)  # the panic line may have come in halves
        panic = _PANIC.search(self.console.tail_bytes())
        last = self.console.last_line()
        detail = (panic.group(0).decode(errors="replace").strip() if panic
                  else f"last console line: {last}" if last != "none" else "see console.log")
        self.stop()
        return GuestCrashed(f"{self.spec}: {what}: {detail}")

    def _expect(self, patterns: list, timeout: float, what: str) -> int:
        """Wait for one of `patterns`; under KVM, QEMU's KVM failure text ends the wait at once."""
        child = self.console.child
        assert child is not None
        kvm = self.accel.name == "kvm"
        try:
            idx = child.expect([*patterns, *([KVM_FAILURE] if kvm else [])], timeout=timeout)
        except pexpect.EOF:
            if kvm and what == "boot" and not self.accel.forced:
                raise self._kvm_failed("QEMU exited at start under KVM", f"last console line: {self.console.last_line()}")
            raise self._crashed(f"QEMU exited during {what}") from None
        except pexpect.TIMEOUT:
            if kvm and what == "boot" and not self.accel.forced:
                raise self._kvm_failed(f"no boot progress under KVM in {timeout:.0f} s", "") from None
            self.stop()
            raise TargetError(f"{self.spec}: guest stopped answering during {what} (no response in {timeout:.0f} s)") from None
        if idx == len(patterns):
            signature = child.match.group(0).decode(errors="replace").strip()
            raise self._kvm_failed(accels.cause(signature, "at boot" if what == "boot" else "during a case"), signature)
        return idx

    def _kvm_failed(self, why: str, detail: str) -> KvmFailed:
        """KVM failed: end QEMU now (it would sit in a paused VM or spin). A failure after a
        boot that worked is remembered here; one at boot, once TCG has booted (start)."""
        self.console.end()
        if not self.accel.forced and self.accel.proven and self.accel.name == "kvm":
            accels.remember(self.binary, accels.fell_back(why))
        return KvmFailed(f"{self.spec}: {why}" + (f": {detail}" if detail and detail != why else ""), why,
                         forced=self.accel.forced)

    def run(self, argv: list[str], timeout: float = 30.0) -> CommandResult:
        return self.run_shell(shell_command(argv, timeout), timeout)

    def run_shell(self, command: str, timeout: float = 30.0) -> CommandResult:
        """Run an already-quoted shell command line on the console."""
        if not self.alive():
            raise TargetError(f"{self.spec}: guest is not running")
        self._seq += 1
        if len(command) > 1000:  # the tty line discipline caps a line at 4095 bytes
            script = self.share.path / f".cmd-{self._seq}.sh"
            script.write_text(command + "\n")
            command = f"sh {GUEST_SHARE}/{script.name}"
        marker = re.compile(rb"@@BH%d:(\d+)@@" % self._seq)
        child = self.console.child
        assert child is not None  # alive()
        child.sendline(f"{command}; echo \"@@BH{self._seq}:$?@@\"".encode())
        idx = self._expect([marker, _PANIC], timeout + 15, f"'{command[:60]}'")
        if idx == 1:
            raise self._crashed("kernel panic")
        out = child.before.decode(errors="replace").replace("\r", "")
        return CommandResult(int(child.match.group(1)), out.lstrip("\n"))

    def dmesg(self, timeout: float = 20.0) -> str:
        return self.run(["dmesg"], timeout).output

    # -- files (over the 9p share) -------------------------------------------
    def push(self, local: Path, remote: str, mode: int = 0o755) -> None:
        self.share.push(local, remote, mode)

    def pull(self, remote: str, local: Path) -> bool:
        return self.share.pull(remote, local)

    def info(self) -> TargetInfo:
        return TargetInfo(
            spec=self.spec, arch=self.image.recipe.arch, kernel_release=self.image.identity.release,
            accel=self.accel.name, accel_reason=self.accel.reason, binder_module=self.image.binder_module, is_root=True,
            tracefs="/sys/kernel/tracing", debugfs="/sys/kernel/debug", build_id=self.build_id(),
        )

    def build_id(self) -> str:
        """The guest's software, named by its files' hashes (remembered per file in the cache)."""
        if not self._build_id:
            both = snapshots.file_sha256(self.image.kernel) + snapshots.file_sha256(self.image.initramfs)
            self._build_id = hashlib.sha256(both.encode()).hexdigest()[:24]
        return self._build_id
