"""The local transport: run cases on this machine, when it has a binder driver.

Commands run in `sh -c` in their own process group, so a timeout kills the whole
group and leaves nothing behind. Files are copied within a private workdir.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from harness.errors import TargetError, TargetUnavailable
from harness.targets.base import (FACTS_SCRIPT, CommandResult, Facts, TargetInfo, parse_facts,
                                  shell_command)

_GRACE_S = 15.0
BINDER_DEVICE = Path("/dev/binder")


def _has_binderfs() -> bool:
    """The kernel has the filesystem "binder" (a binder with binderfs makes no /dev/binder by itself)."""
    try:
        return any(line.split()[-1:] == ["binder"] for line in Path("/proc/filesystems").read_text().splitlines())
    except OSError:
        return False


class LocalTarget:
    def __init__(self, spec: str = "local"):
        self.spec = spec
        self.workdir = ""
        self.boot_s = 0.0
        self._facts: Facts | None = None

    def start(self) -> None:
        if not BINDER_DEVICE.exists() and not _has_binderfs():
            raise TargetUnavailable(f"{self.spec}: this host has no {BINDER_DEVICE} and no binderfs "
                                    f"(load binder_linux, or use --target qemu:x86_64)")
        self.workdir = tempfile.mkdtemp(prefix="binder-harness.")
        self._facts = parse_facts(self.run_shell(FACTS_SCRIPT, 20).output)

    def stop(self) -> None:
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = ""
        self._facts = None

    def alive(self) -> bool:
        return self._facts is not None

    def info(self) -> TargetInfo:
        if self._facts is None:
            raise TargetError(f"{self.spec}: not started")
        return self._facts.target_info(self.spec)

    def run(self, argv: list[str], timeout: float = 30.0) -> CommandResult:
        return self.run_shell(shell_command(argv, timeout), timeout)

    def run_shell(self, command: str, timeout: float = 30.0) -> CommandResult:
        proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=self.workdir or None, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout + _GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return CommandResult(137, out.decode(errors="replace"))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return CommandResult(proc.returncode if proc.returncode >= 0 else 128 - proc.returncode,
                             out.decode(errors="replace"))

    def dmesg(self, timeout: float = 20.0) -> str:
        return self.run(["dmesg"], timeout).output

    def push(self, local: Path, remote: str, mode: int = 0o755) -> None:
        dest = Path(remote)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dest)
        dest.chmod(mode)

    def pull(self, remote: str, local: Path) -> bool:
        src = Path(remote)
        if not src.is_file():
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != local.resolve():
            shutil.copyfile(src, local)
        return True

