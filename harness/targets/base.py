"""The interface every transport implements: QEMU, ssh, adb and local.

Cases see only this. Commands are argv lists; each transport quotes them for
the target's shell, so no case ever builds a shell string by hand.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.arches import arch_of_uname


@dataclass(frozen=True)
class CommandResult:
    status: int  # exit status; 124 when the target-side timeout killed it
    output: str  # stdout and stderr, interleaved as the target produced them

    @property
    def ok(self) -> bool:
        return self.status == 0


@dataclass(frozen=True)
class TargetInfo:
    spec: str
    arch: str  # x86_64 | arm64 | i386 | arm
    kernel_release: str
    accel: str  # kvm | tcg | none (the harness does not run the emulation: ssh, adb, local)
    binder_module: str  # stock | PATH
    is_root: bool
    tracefs: str | None  # mount point, or None when absent
    debugfs: str | None
    accel_reason: str = ""  # why this accel: "no /dev/kvm", "KVM internal error at boot, fell back", ...
    # SHA256 of the exact kernel and initramfs (modules included) the target runs, where the
    # harness built them (QEMU); "" where it cannot know (ssh, adb, local)
    build_id: str = ""


class StartStop:
    """`with target:` starts it and always stops it, even when start() fails halfway."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Target(Protocol):
    spec: str
    workdir: str  # a writable directory on the target for probe binaries and evidence

    def start(self) -> None: ...  # boot or connect; unreachable/refused -> TargetUnavailable
    def stop(self) -> None: ...  # idempotent; leaves no process behind
    def alive(self) -> bool: ...
    def info(self) -> TargetInfo: ...  # arch, kernel release, root, tracefs, debugfs
    def run(self, argv: list[str], timeout: float) -> CommandResult: ...
    def run_shell(self, command: str, timeout: float) -> CommandResult: ...  # already quoted
    def push(self, local: Path, remote: str, mode: int = 0o755) -> None: ...  # makes the remote directory
    def pull(self, remote: str, local: Path) -> bool: ...  # False when remote does not exist
    def dmesg(self, timeout: float = 20.0) -> str: ...


# -- capabilities beyond Target: the runner asks for these, never for a kind of target ---------
@runtime_checkable
class BootedGuest(Protocol):
    """A guest the harness boots itself (QEMU): it has an image, took boot_s to boot, and
    its init saved the kernel log of the boot."""

    image: Any  # harness.building.build.GuestImage
    boot_s: float

    def boot_dmesg(self) -> str | None: ...
    def restorable(self) -> bool: ...
    def move_console_log(self, path: Path) -> None: ...


@runtime_checkable
class KillableConsole(Protocol):
    """A console the harness reads itself and can end at once, from any thread."""

    def kill(self) -> None: ...
    def last_console_lines(self, n: int = 200) -> str: ...


# One round trip that tells what a connected device is. Every line is key=value.
FACTS_SCRIPT = "; ".join([
    'echo "arch=$(uname -m)"',
    'echo "release=$(uname -r)"',
    'echo "uid=$(id -u)"',
    'for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do if [ -e "$d/trace" ]; then echo "tracefs=$d"; break; fi; done',
    'if [ -d /sys/kernel/debug ] && [ -n "$(ls /sys/kernel/debug 2>/dev/null)" ]; then echo debugfs=/sys/kernel/debug; fi',
    'if [ -e /dev/binder ]; then echo binder=/dev/binder; fi',
    # a binder with binderfs (GKI kernels, Ubuntu's binder_linux) makes no /dev/binder by itself
    'if grep -qw binder /proc/filesystems 2>/dev/null; then echo binderfs=registered; fi',
    'if [ -r /proc/sys/kernel/random/boot_id ]; then echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"; fi',
])

# Run as root when the facts show no tracefs or debugfs: mount them where the kernel has them.
MOUNT_SCRIPT = "; ".join([
    "[ -e /sys/kernel/tracing/trace ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null",
    "[ -n \"$(ls /sys/kernel/debug 2>/dev/null)\" ] || mount -t debugfs nodev /sys/kernel/debug 2>/dev/null",
    "true",
])


@dataclass(frozen=True)
class Facts:
    """What FACTS_SCRIPT reported about a device."""

    arch: str
    machine: str  # raw `uname -m`
    kernel_release: str
    is_root: bool
    tracefs: str | None
    debugfs: str | None
    has_binder: bool  # /dev/binder exists
    boot_id: str
    has_binderfs: bool = False  # the kernel has the filesystem "binder" (the runner makes a device through it)

    @property
    def binder_found(self) -> bool:
        """A binder driver the cases can use: /dev/binder, or binderfs to make a device with."""
        return self.has_binder or self.has_binderfs

    def target_info(self, spec: str, binder_module: str = "stock", arch: str | None = None) -> TargetInfo:
        """The shared TargetInfo of a device that is not emulated here (accel "none")."""
        return TargetInfo(spec=spec, arch=arch or self.arch, kernel_release=self.kernel_release, accel="none",
                          binder_module=binder_module, is_root=self.is_root, tracefs=self.tracefs,
                          debugfs=self.debugfs, accel_reason="a device the harness does not emulate")


def parse_facts(text: str) -> Facts:
    """Parse FACTS_SCRIPT output (tolerates \\r\\n and stray lines such as a motd)."""
    kv: dict[str, str] = {}
    for line in text.replace("\r", "").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key in ("arch", "release", "uid", "tracefs", "debugfs", "binder", "binderfs", "boot_id"):
            kv.setdefault(key, value.strip())
    machine = kv.get("arch", "")
    return Facts(
        arch=arch_of_uname(machine),
        machine=machine,
        kernel_release=kv.get("release", "unknown"),
        is_root=kv.get("uid") == "0",
        tracefs=kv.get("tracefs") or None,
        debugfs=kv.get("debugfs") or None,
        has_binder="binder" in kv,
        boot_id=kv.get("boot_id", ""),
        has_binderfs="binderfs" in kv,
    )


def shell_command(argv: list[str], timeout: float | None = None) -> str:
    """Quote argv for a POSIX shell, bounded by the target's own `timeout` when given.

    The target-side timeout kills a hung probe while keeping the target usable;
    its status 124 (or 137 after SIGKILL) tells the caller what happened.
    """
    cmd = shlex.join(argv)
    if timeout is not None:  # timeout execs argv itself: no shell between it and the program
        cmd = f"timeout -s KILL {max(1, int(timeout))} {cmd}"
    return cmd
