"""Commands over an ssh connection: each on a fresh exec channel, with stderr merged, its exit
status as a console would report it, and a deadline; a binary-safe read for files."""
from __future__ import annotations

import socket
import time

import paramiko

from harness.errors import TargetError
from harness.targets.base import CommandResult
from harness.targets.ssh_connection import unreachable_reason

GRACE_S = 15.0  # host-side allowance beyond the target-side `timeout`


def _open_channel(transport: paramiko.Transport | None, label: str, command: str,
                  open_timeout: float) -> paramiko.Channel | None:
    chan = None
    for attempt in range(4):
        # A busy server may refuse a session, or close it before taking the exec
        # request; the command has not run then, so another channel is safe.
        try:
            chan = transport.open_session(timeout=open_timeout) if transport else None
            if chan is None:
                break
            chan.set_combine_stderr(True)
            # A trailing `exit $?` keeps the shell from exec'ing the last command: a command
            # killed by a signal then reports 128+N as on a console (paramiko drops exit-signal).
            chan.exec_command(f"{command}\nexit $?")
            break
        except (paramiko.ChannelException, paramiko.SSHException) as exc:
            if chan is not None:
                chan.close()
                chan = None
            if attempt == 3 or not (transport and transport.is_active()):
                raise TargetError(f"{label}: the server refuses new sessions ({unreachable_reason(exc)})") from None
            time.sleep(0.3 * 2 ** attempt)
        except (OSError, EOFError) as exc:
            raise TargetError(f"{label}: cannot open a channel ({unreachable_reason(exc)})") from None
    return chan


def exec_command(client: paramiko.SSHClient | None, label: str, command: str, timeout: float,
                 open_timeout: float, stdin: bytes | None = None) -> CommandResult:
    """Run one command on a fresh channel: output with stderr merged, and its exit status."""
    if client is None:
        raise TargetError(f"{label}: not connected")
    transport = client.get_transport()
    chan = _open_channel(transport, label, command, open_timeout)
    if chan is None or transport is None:
        raise TargetError(f"{label}: connection lost")
    deadline = time.monotonic() + timeout + GRACE_S
    chunks: list[bytes] = []
    try:
        if stdin is not None:
            chan.sendall(stdin)
            chan.shutdown_write()
        while True:
            chan.settimeout(max(0.1, min(1.0, deadline - time.monotonic())))
            try:
                data = chan.recv(65536)
            except socket.timeout:
                data = None
            if data:
                chunks.append(data)
            elif data == b"":
                break
            if time.monotonic() >= deadline:
                raise TargetError(f"{label}: no response in {timeout + GRACE_S:.0f} s to '{command[:60]}'")
            if not transport.is_active():
                raise TargetError(f"{label}: connection lost while running '{command[:60]}'")
        if not chan.status_event.wait(max(0.1, deadline - time.monotonic())):
            raise TargetError(f"{label}: connection lost while running '{command[:60]}'")
        status = chan.recv_exit_status()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise TargetError(f"{label}: connection lost while running '{command[:60]}' ({unreachable_reason(exc)})") from None
    finally:
        chan.close()
    if status == -1:  # the server sent no exit status (killed by a signal, or a dropped session)
        status = 255
    return CommandResult(status, b"".join(chunks).decode(errors="replace"))


def exec_bytes(client: paramiko.SSHClient | None, label: str, command: str, timeout: float) -> bytes | None:
    """Binary-safe stdout of a command (no stderr), or None when it fails."""
    assert client is not None
    try:
        _, stdout, _ = client.exec_command(command, timeout=timeout + GRACE_S)
        data = stdout.read()
        return data if stdout.channel.recv_exit_status() == 0 else None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise TargetError(f"{label}: cannot read with cat ({unreachable_reason(exc)})") from None
