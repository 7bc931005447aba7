"""The interface every transport implements: QEMU, ssh, adb and local.

Cases see only this. Commands are argv lists; each transport quotes them for
the target's shell, so no case ever builds a shell string by hand.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


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
    accel: str  # kvm | tcg | none (real hardware)
    binder_module: str  # stock | PATH
    is_root: bool
    tracefs: str | None  # mount point, or None when absent
    debugfs: str | None


class Target(Protocol):
    spec: str
    workdir: str  # a writable directory on the target for probe binaries and evidence

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def info(self) -> TargetInfo: ...
    def run(self, argv: list[str], timeout: float) -> CommandResult: ...
    def run_shell(self, command: str, timeout: float) -> CommandResult: ...  # already quoted
    def push(self, local: Path, remote: str, mode: int = 0o755) -> None: ...
    def pull(self, remote: str, local: Path) -> bool: ...


def shell_command(argv: list[str], timeout: float | None = None) -> str:
    """Quote argv for a POSIX shell, bounded by the target's own `timeout` when given.

    The target-side timeout kills a hung probe while keeping the target usable;
    its status 124 (or 137 after SIGKILL) tells the caller what happened.
    """
    cmd = shlex.join(argv)
    if timeout is not None:
        cmd = f"timeout -s KILL {max(1, int(timeout))} sh -c {shlex.quote(cmd)}"
    return cmd
