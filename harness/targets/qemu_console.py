"""QEMU's serial console, driven with pexpect: the QEMU process behind it, console.log, and
the last lines kept for error messages."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import BinaryIO

import pexpect
import ptyprocess

from harness.targets.qemu_command import die_with_parent


TAIL_BYTES = 64 * 1024


class SerialConsole:
    """One QEMU process at a time (`child`), its console appended to `log` (when given)."""

    def __init__(self, log: Path | None):
        self.log = log
        self.child: pexpect.spawn | None = None
        self._log_fh: BinaryIO | None = None
        self._tail = bytearray()  # the console's last TAIL_BYTES, for error messages

    def open_log(self) -> None:
        """Append to `log` from now on (when not already)."""
        if self._log_fh is None and self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            self._log_fh = open(self.log, "ab")

    def close_log(self) -> None:
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def move_log(self, path: Path) -> None:
        """Go on logging the console into `path`, after what it logged so far (a guest started
        in the background logs apart until a case takes it). Not while a command runs."""
        old = self.log
        if self._log_fh is not None:
            self._log_fh.close()
        with open(path, "ab") as out:
            if old is not None and old.exists():
                out.write(old.read_bytes())
                old.unlink()
        self.log = path
        self._log_fh = open(path, "ab")
        if self.child is not None:
            self.child.logfile_read = _Tee(self._log_fh, self._tail)

    def spawn(self, argv: list[str], timeout: float, pass_fd: int | None = None) -> pexpect.spawn:
        """Start QEMU; `pass_fd` is a descriptor of ours QEMU gets under the same number
        (a restore's state file, read by `-incoming fd:N`)."""
        self.child = _Spawn(argv[0], argv[1:], timeout=timeout, maxread=65536, echo=False,
                            preexec_fn=_in_child(pass_fd), env={**os.environ, "TERM": "dumb"},
                            pass_fds=() if pass_fd is None else (pass_fd,))
        # pexpect sleeps 50 ms before every send by default (for password prompts);
        # a console shell needs no such pause, and a case makes several round trips.
        self.child.delaybeforesend = None
        self.child.logfile_read = _Tee(self._log_fh, self._tail)
        return self.child

    def end(self) -> None:
        """End QEMU and reap it."""
        child, self.child = self.child, None
        if child is not None:
            # SIGKILL at once: the guest keeps no state worth a clean shutdown, and
            # pexpect's terminate() sleeps 0.1 s between its gentler signals.
            if child.isalive():
                try:
                    os.kill(child.pid, signal.SIGKILL)
                    child.wait()  # reaped: close() then has nothing to terminate
                except (ProcessLookupError, pexpect.ExceptionPexpect):
                    pass
            child.delayafterclose = 0
            child.ptyproc.delayafterclose = 0  # ptyprocess sleeps 0.1 s on close otherwise
            child.close(force=True)

    def alive(self) -> bool:
        return self.child is not None and self.child.isalive()

    def kill(self) -> None:
        """SIGKILL QEMU now, from any thread; whoever waits on the console sees it exit."""
        child = self.child
        if child is not None and child.pid:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def drain(self, timeout: float) -> bool:
        """Read what the console printed (into console.log) for up to timeout; False once QEMU has exited."""
        if self.child is None:
            return False
        try:
            self.child.read_nonblocking(65536, timeout)
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            return False
        return self.alive()

    def read_to_end(self, timeout: float) -> None:
        """Read what QEMU still prints until it exits (a panic line may come in halves)."""
        if self.child is not None:
            try:
                self.child.expect(pexpect.EOF, timeout=timeout)
            except (pexpect.TIMEOUT, pexpect.EOF):
                pass

    def tail_bytes(self) -> bytes:
        return bytes(self._tail)

    def last_lines(self, n: int = 200) -> str:
        text = self.tail_bytes().decode(errors="replace").replace("\r", "")
        return "\n".join(text.splitlines()[-n:])

    def last_line(self) -> str:
        last = [l for l in self.last_lines(5).splitlines() if l.strip()]
        return last[-1].strip()[:200] if last else "none"


class _Spawn(pexpect.spawn):
    """pexpect.spawn that leaves `pass_fds` open in the child (ptyprocess closes the rest)."""

    def __init__(self, *args, pass_fds: tuple[int, ...] = (), **kwargs):
        self._pass_fds = pass_fds
        super().__init__(*args, **kwargs)

    def _spawnpty(self, args, **kwargs):
        return ptyprocess.PtyProcess.spawn(args, pass_fds=self._pass_fds, **kwargs)


def _in_child(pass_fd: int | None):
    """What QEMU's child process does before exec: die with the harness, and keep `pass_fd`
    across the exec (ours is close-on-exec, so no other child inherits it)."""
    def prepare() -> None:
        die_with_parent()
        if pass_fd is not None:
            os.set_inheritable(pass_fd, True)
    return prepare


class _Tee:
    """pexpect logfile: append console bytes to console.log and keep the last lines."""

    def __init__(self, fh, tail: bytearray):
        self.fh, self.tail = fh, tail

    def write(self, data: bytes) -> None:
        # by bytes, not by reads: a panic's dump comes in many small reads, and 200 of them kept
        # only its end, without the "Kernel panic" line the error message names
        self.tail += data
        if len(self.tail) > TAIL_BYTES:
            del self.tail[:len(self.tail) - TAIL_BYTES]
        if self.fh is not None:
            try:
                self.fh.write(data)
            except OSError:  # disk full: keep driving the guest; the runner notices the run dir
                self.fh = None

    def flush(self) -> None:
        if self.fh is not None:
            try:
                self.fh.flush()
            except OSError:
                self.fh = None
