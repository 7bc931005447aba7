"""The steps of a long build the harness runs itself (a toolchain root, a kernel): each step
says when it starts and how long it took, its commands write into one log file kept in the
cache, and a failing step is one line naming the step, its last log line and the log.

Commands that must not touch the host run inside a Debian root with chroot, in a private
mount namespace (`unshare --mount --fork`): the bind mounts and /proc made for the build
vanish with it, whatever happens to the build.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import ConfigError

HEARTBEAT_S = 120.0  # a long step says it is alive, with its last log line, this often
_ROOT_ENV = ("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root", "LANG=C.UTF-8",
             "DEBIAN_FRONTEND=noninteractive")


class StepFailed(ConfigError):
    """A build step failed; the message names the step, why, and the full log."""


@dataclass(frozen=True)
class Bind:
    """A host directory seen inside the root at `inside` (an absolute path there)."""

    host: Path
    inside: str


def last_line(log: Path) -> str:
    """The last non-empty line of a log (read from its tail only)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


class BuildLog:
    """One build's log file and its progress lines: `with log.step("make"):` times a step,
    `log.run(...)` runs a command into the log, and failures become StepFailed."""

    def __init__(self, path: Path, what: str, progress: Callable[[str], object] = print):
        self.path, self.what, self.progress = path, what, progress
        path.parent.mkdir(parents=True, exist_ok=True)
        self._t0 = time.monotonic()
        self.times: dict[str, float] = {}
        with open(path, "a") as fh:
            fh.write(f"==== {what}: started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")

    def note(self, text: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(f"==== {text}\n")

    def fail(self, step: str, why: str) -> StepFailed:
        return StepFailed(f"{self.what}: step '{step}' failed: {why}; full log: {self.path}")

    def step(self, name: str) -> _Step:
        return _Step(self, name)

    def run(self, step: str, argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        """Run argv with its output appended to the log; a long run prints a heartbeat."""
        self.note(f"[{step}] $ {shlex.join(argv)}")
        with open(self.path, "ab") as fh:
            try:
                proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        cwd=cwd, env=env, start_new_session=True)
            except OSError as exc:
                raise self.fail(step, f"cannot run {argv[0]} ({exc.strerror})") from None
            t0 = time.monotonic()
            stop = threading.Event()

            def heartbeat() -> None:
                while not stop.wait(HEARTBEAT_S):
                    self.progress(f"  {step}: {time.monotonic() - t0:.0f} s ... {last_line(self.path)}")

            beat = threading.Thread(target=heartbeat, daemon=True)
            beat.start()
            try:
                code = proc.wait()
            except BaseException:
                proc.kill()  # our own child (and the namespace it made dies with it)
                proc.wait()
                raise
            finally:
                stop.set()
        if code != 0:
            raise self.fail(step, f"{shlex.join(argv[:3])}... exited {code}; last line: {last_line(self.path)}")

    def run_in_root(self, step: str, root: Path, binds: tuple[Bind, ...], argv: list[str]) -> None:
        """Run argv inside `root` (chroot) in a private mount namespace holding the binds and /proc."""
        for tool in ("unshare", "chroot", "mount"):
            if shutil.which(tool) is None:
                raise self.fail(step, f"{tool} not found; install util-linux/coreutils (scripts/setup does)")
        mounts = ["mount --make-rprivate /", f"mount -t proc proc {shlex.quote(str(root / 'proc'))}"]
        for i, b in enumerate(binds):
            target = root / b.inside.lstrip("/")
            # a bind inside an earlier one (a seeded driver directory over /src's) lands on a
            # directory of that tree, which exists once it is mounted: nothing to make in the root
            if not any(b.inside.startswith(e.inside.rstrip("/") + "/") for e in binds[:i]):
                target.mkdir(parents=True, exist_ok=True)
            mounts.append(f"mount --bind {shlex.quote(str(b.host))} {shlex.quote(str(target))}")
        script = " && ".join(mounts) + f' && exec chroot {shlex.quote(str(root))} env -i {" ".join(_ROOT_ENV)} "$@"'
        self.run(step, ["unshare", "--mount", "--fork", "sh", "-c", script, "sh", *argv])


class _Step:
    def __init__(self, log: BuildLog, name: str):
        self.log, self.name = log, name

    def __enter__(self) -> _Step:
        self.t0 = time.monotonic()
        self.log.progress(f"{self.log.what}: {self.name} ...")
        self.log.note(f"step {self.name}")
        return self

    def __exit__(self, kind, exc, tb) -> None:
        secs = time.monotonic() - self.t0
        self.log.times[self.name] = secs
        if kind is None:
            self.log.progress(f"{self.log.what}: {self.name} done in {secs:.0f} s "
                              f"({time.monotonic() - self.log._t0:.0f} s so far)")
            self.log.note(f"step {self.name}: {secs:.1f} s")
