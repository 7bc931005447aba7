"""The ssh transport: a development board, or an emulated guest, reached with paramiko.

Connecting and the host-key policy are ssh_connection.py; commands on exec channels,
ssh_commands.py; readying the host's binder driver, ssh_device.py. Here: the target's
lifecycle, and files over SFTP, or over `cat` on an exec channel when the server has no SFTP
subsystem. After a reboot the transport reconnects, recreates its working directory and
pushes its files again, so a Session's cached probe path stays valid.
"""
from __future__ import annotations

import os
import shlex
import stat
import time
from pathlib import Path

import paramiko

from harness.errors import TargetError, TargetUnavailable
from harness.targets.base import FACTS_SCRIPT, CommandResult, Facts, StartStop, TargetInfo, parse_facts, shell_command
from harness.targets.ssh_commands import exec_bytes, exec_command
from harness.targets.ssh_connection import (SshAddress, SshOptions, connect, host_key_fingerprint,
                                            unreachable_reason)
from harness.targets.ssh_device import prepare_device

__all__ = ["SshAddress", "SshOptions", "SshTarget"]  # the address and options: ssh_connection.py

# Addresses this process has reached before: a new target for one of them (after a case
# crashed or rebooted the host) waits for it to come back instead of failing at once.
_REACHED: set[str] = set()


class SshTarget(StartStop):
    """A Linux host over ssh. Commands run in the login user's shell, quoted by the caller."""

    def __init__(self, spec: str, address: SshAddress, options: SshOptions = SshOptions(),
                 binder_module: Path | None = None, progress=print):
        self.spec = spec
        self.address = address
        self.options = options
        self.binder_module = binder_module
        self.progress = progress
        self.workdir = ""
        self.boot_s = 0.0
        self.host_key_fingerprint = ""
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_missing = False
        self._facts: Facts | None = None
        self._pushed: dict[str, tuple[Path, int]] = {}
        self._started = False

    # -- connection ----------------------------------------------------------
    def _connect(self, wait_s: float, transient_only: bool = False) -> None:
        """Connect, retrying an unreachable host for wait_s; auth and host key refusals fail at once."""
        self._client = connect(self.address, self.options, self.progress, wait_s, transient_only)
        self.host_key_fingerprint = host_key_fingerprint(self._client)

    def _connected(self) -> paramiko.SSHClient:
        """The live client; after a dropped connection, reconnect and restore the workdir."""
        transport = self._client.get_transport() if self._client else None
        if transport is not None and transport.is_active():
            return self._client  # type: ignore[return-value]
        if not self._started:
            raise TargetError(f"{self.address.label}: not connected")
        self._close_client()
        self.progress(f"{self.address.label}: connection lost; reconnecting (up to {self.options.reconnect_s:.0f} s)")
        try:
            self._connect(self.options.reconnect_s)
        except TargetUnavailable as exc:
            raise TargetError(str(exc)) from None
        old_boot = self._facts.boot_id if self._facts else ""
        self._facts = self._read_facts()
        if self._facts.boot_id != old_boot:
            self.progress(f"{self.address.label}: the host rebooted; restoring {self.workdir}")
            self._prepare_device()
            for remote, (local, mode) in list(self._pushed.items()):
                self.push(local, remote, mode)
        return self._client  # type: ignore[return-value]

    def _close_client(self) -> None:
        sftp, self._sftp = self._sftp, None
        client, self._client = self._client, None
        for thing in (sftp, client):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing a dead connection: nothing left to save
                    pass

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        t0 = time.monotonic()
        if self.address.label in _REACHED:
            self._connect(self.options.reconnect_s)
        else:
            self._connect(min(5.0, self.options.connect_timeout), transient_only=True)
        _REACHED.add(self.address.label)
        self._started = True
        self._facts = self._read_facts()
        mk = self._exec("mktemp -d /tmp/binder-harness.XXXXXX", 20)
        self.workdir = mk.output.strip().splitlines()[-1] if mk.ok and mk.output.strip() else f"/tmp/binder-harness.{os.getpid()}"
        self._prepare_device()
        self.boot_s = time.monotonic() - t0

    def _read_facts(self) -> Facts:
        return parse_facts(self._exec(FACTS_SCRIPT, 20).output)

    def _prepare_device(self) -> None:
        """Workdir, tracefs/debugfs mounts, and a binder driver (ssh_device.py)."""
        assert self._facts is not None
        self._facts = prepare_device(self.address.label, self._facts, self.workdir, self.binder_module,
                                     self._exec, self.push, self._read_facts)

    def stop(self) -> None:
        if self._client is not None and self.workdir.startswith("/tmp/binder-harness."):
            try:
                self._exec(shell_command(["rm", "-rf", self.workdir]), 10)
            except (TargetError, OSError, paramiko.SSHException):
                pass
        self._started = False
        self._close_client()

    def alive(self) -> bool:
        return self._started

    def info(self) -> TargetInfo:
        if self._facts is None:
            raise TargetError(f"{self.address.label}: not started")
        return self._facts.target_info(self.spec, str(self.binder_module) if self.binder_module else "stock")

    # -- commands ------------------------------------------------------------
    def run(self, argv: list[str], timeout: float = 30.0) -> CommandResult:
        return self.run_shell(shell_command(argv, timeout), timeout)

    def run_shell(self, command: str, timeout: float = 30.0) -> CommandResult:
        self._connected()
        return self._exec(command, timeout)

    def dmesg(self, timeout: float = 20.0) -> str:
        return self.run(["dmesg"], timeout).output

    def _exec(self, command: str, timeout: float, stdin: bytes | None = None) -> CommandResult:
        """Run one command on a fresh channel (ssh_commands.py), without reconnecting first."""
        return exec_command(self._client, self.address.label, command, timeout, self.options.connect_timeout, stdin)

    # -- files ---------------------------------------------------------------
    def _sftp_client(self) -> paramiko.SFTPClient | None:
        if self._sftp_missing:
            return None
        if self._sftp is None:
            try:
                self._sftp = self._connected().open_sftp()
            except (paramiko.SSHException, OSError, EOFError):
                self._sftp_missing = True  # no SFTP subsystem: fall back to cat
                self.progress(f"{self.address.label}: no SFTP subsystem; copying files with cat")
                return None
        return self._sftp

    def push(self, local: Path, remote: str, mode: int = 0o755) -> None:
        self._connected()
        label = self.address.label
        parent = remote.rsplit("/", 1)[0] or "/"
        self._exec(shell_command(["mkdir", "-p", parent]), 20)
        sftp = self._sftp_client()
        try:
            if sftp is not None:
                sftp.put(str(local), remote)
                sftp.chmod(remote, mode)
            else:
                cmd = f"cat > {shlex.quote(remote)} && chmod {mode:o} {shlex.quote(remote)}"
                res = self._exec(cmd, 120, stdin=local.read_bytes())
                if not res.ok:
                    raise TargetError(f"{label}: cannot write {remote}: {res.output.strip()[:120]}")
        except (OSError, paramiko.SSHException) as exc:
            raise TargetError(f"{label}: push {local.name} to {remote} failed ({unreachable_reason(exc)})") from None
        self._pushed[remote] = (local, mode)

    def pull(self, remote: str, local: Path) -> bool:
        self._connected()
        local.parent.mkdir(parents=True, exist_ok=True)
        sftp = self._sftp_client()
        if sftp is not None:
            try:
                if not stat.S_ISREG(sftp.stat(remote).st_mode or 0):
                    return False
                sftp.get(remote, str(local))
                return True
            except FileNotFoundError:
                return False
            except (OSError, paramiko.SSHException) as exc:
                raise TargetError(f"{self.address.label}: pull {remote} failed ({unreachable_reason(exc)})") from None
        res = exec_bytes(self._client, self.address.label,
                         f"test -f {shlex.quote(remote)} && cat {shlex.quote(remote)}", 120)
        if res is None:
            return False
        local.write_bytes(res)
        return True
