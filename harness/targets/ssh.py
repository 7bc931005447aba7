"""The ssh transport: a development board, or an emulated guest, reached with paramiko.

Host keys are checked against known_hosts unless the user explicitly accepts any
key (ephemeral guests). Files travel over SFTP, or over `cat` on an exec channel
when the server has no SFTP subsystem. After a reboot the transport reconnects,
recreates its working directory and pushes its files again, so a Session's
cached probe path stays valid. Key contents and passphrases are never printed.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import shlex
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from harness.errors import ConfigError, TargetError, TargetUnavailable
from harness.images.kernel import read_modinfo
from harness.targets.base import (FACTS_SCRIPT, MOUNT_SCRIPT, CommandResult, Facts, StartStop, TargetInfo,
                                  parse_facts, shell_command)

PASSPHRASE_ENV = "BINDER_HARNESS_SSH_PASSPHRASE"  # read, never printed
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
_GRACE_S = 15.0  # host-side allowance beyond the target-side `timeout`

# paramiko logs transport errors (with tracebacks) through logging; our errors are one line.
# Addresses this process has reached before: a new target for one of them (after a case
# crashed or rebooted the host) waits for it to come back instead of failing at once.
_REACHED: set[str] = set()

_plog = logging.getLogger("paramiko")
_plog.addHandler(logging.NullHandler())
_plog.propagate = False


@dataclass(frozen=True)
class SshAddress:
    user: str
    host: str
    port: int

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{self.user}@{host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH and paramiko name this host in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class SshOptions:
    identity: Path | None = None
    known_hosts: Path | None = None  # None: ~/.ssh/known_hosts
    insecure_accept_host_key: bool = False
    connect_timeout: float = 10.0
    keepalive_s: int = 15
    reconnect_s: float = 180.0  # how long to wait for a rebooting host to come back


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_line(address: SshAddress, key: paramiko.PKey) -> str:
    return f"{address.known_hosts_name} {key.get_name()} {key.get_base64()}"


class _UnknownHostKey(Exception):
    def __init__(self, key: paramiko.PKey):
        super().__init__("unknown host key")
        self.key = key


class _CheckHostKey(paramiko.MissingHostKeyPolicy):
    """Refuse a host that known_hosts does not list, remembering the key it offered."""

    def __init__(self, accept: bool):
        self.accept = accept
        self.offered: paramiko.PKey | None = None

    def missing_host_key(self, client, hostname, key) -> None:
        self.offered = key
        if not self.accept:
            raise _UnknownHostKey(key)


def load_identity(path: Path) -> paramiko.PKey:
    """Read a private key file; errors name the file, never its contents."""
    if not path.is_file():
        raise ConfigError(f"--identity {path}: no such file")
    try:
        # positional: paramiko 3.x calls it passphrase, 5.x password
        return paramiko.PKey.from_path(path, os.environ.get(PASSPHRASE_ENV) or None)
    except paramiko.PasswordRequiredException:
        raise ConfigError(f"--identity {path}: the key is encrypted; put its passphrase in {PASSPHRASE_ENV}") from None
    except (paramiko.SSHException, paramiko.pkey.UnknownKeyType, ValueError, OSError) as exc:
        what = "wrong passphrase" if "passphrase" in str(exc).lower() or "decrypt" in str(exc).lower() else "not a private key paramiko can read"
        raise ConfigError(f"--identity {path}: {what}") from None


def _unreachable_reason(exc: BaseException) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        errs = {getattr(e, "strerror", None) or str(e) for e in exc.errors.values()}
        return "; ".join(sorted(errs)).lower() or "connection failed"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


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
    def _known_hosts_path(self) -> Path:
        return (self.options.known_hosts or DEFAULT_KNOWN_HOSTS).expanduser()

    def _connect_once(self) -> paramiko.SSHClient:
        opts, label = self.options, self.address.label
        client = paramiko.SSHClient()
        policy = _CheckHostKey(opts.insecure_accept_host_key)
        known = self._known_hosts_path()
        if not opts.insecure_accept_host_key:
            if opts.known_hosts is not None and not known.is_file():
                raise ConfigError(f"--known-hosts {opts.known_hosts}: no such file")
            if known.is_file():
                try:
                    client.load_system_host_keys(str(known))  # read-only: never written back
                except (OSError, paramiko.SSHException) as exc:
                    raise ConfigError(f"{known}: unreadable known_hosts file ({exc})") from None
        client.set_missing_host_key_policy(policy)
        pkey = load_identity(opts.identity) if opts.identity else None
        try:
            client.connect(self.address.host, self.address.port, username=self.address.user, pkey=pkey,
                           allow_agent=True, look_for_keys=pkey is None, timeout=opts.connect_timeout,
                           banner_timeout=opts.connect_timeout, auth_timeout=opts.connect_timeout,
                           channel_timeout=opts.connect_timeout)
        except _UnknownHostKey as exc:
            client.close()
            raise TargetUnavailable(
                f"{label}: host key {exc.key.get_name()} {fingerprint(exc.key)} is not in {known}; "
                f"add '{known_hosts_line(self.address, exc.key)}' to it, pass --known-hosts FILE, "
                f"or --insecure-accept-host-key for an ephemeral guest") from None
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise TargetUnavailable(
                f"{label}: host key mismatch: the server offered {exc.key.get_name()} {fingerprint(exc.key)}, "
                f"but {known} has {fingerprint(exc.expected_key)}; refusing to connect") from None
        except paramiko.AuthenticationException:
            client.close()
            tried = f"key {opts.identity}" if opts.identity else "the agent and ~/.ssh keys"
            raise TargetUnavailable(f"{label}: authentication refused for user {self.address.user} (tried {tried})") from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            client.close()
            transient = not isinstance(exc, (paramiko.ssh_exception.NoValidConnectionsError, socket.gaierror))
            raise _Unreachable(f"{label}: host unreachable ({_unreachable_reason(exc)})", transient) from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(opts.keepalive_s)
        if opts.insecure_accept_host_key:
            key = transport.get_remote_server_key()
            self.progress(f"{label}: accepted host key {key.get_name()} {fingerprint(key)} without checking "
                          f"(--insecure-accept-host-key)")
        self.host_key_fingerprint = fingerprint(transport.get_remote_server_key())
        return client

    def _connect(self, wait_s: float, transient_only: bool = False) -> None:
        """Connect, retrying an unreachable host for wait_s; auth and host key refusals fail at once."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self._client = self._connect_once()
                return
            except _Unreachable as exc:
                if time.monotonic() >= deadline or (transient_only and not exc.transient):
                    raise TargetUnavailable(str(exc)) from None
                time.sleep(0.5)

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
        """Workdir, tracefs/debugfs mounts, and a binder driver: loaded, or refused with one line."""
        label, facts = self.address.label, self._facts
        assert facts is not None
        self._exec(shell_command(["mkdir", "-p", self.workdir]), 20)
        if facts.is_root and (facts.tracefs is None or facts.debugfs is None):
            self._exec(MOUNT_SCRIPT, 20)
        if self.binder_module is not None:
            self._load_module(self.binder_module)
        elif not facts.binder_found and facts.is_root:
            self._exec("modprobe binder_linux 2>&1", 30)
        self._facts = facts = self._read_facts()
        if not facts.binder_found:
            why = "not root, so binder_linux cannot be loaded" if not facts.is_root else "modprobe binder_linux did not create it"
            raise TargetUnavailable(f"{label}: no /dev/binder and no binderfs on {facts.kernel_release} ({why})")

    def _load_module(self, module: Path) -> None:
        label, facts = self.address.label, self._facts
        assert facts is not None
        info = read_modinfo(module)
        if info.arch != facts.arch:
            raise ConfigError(f"--binder-module {module}: built for {info.arch}, but {label} is {facts.arch} ({facts.kernel_release})")
        if info.release != facts.kernel_release:
            raise ConfigError(f"--binder-module {module}: vermagic says {info.release or 'nothing'}, but {label} runs {facts.kernel_release}")
        if facts.binder_found:
            raise TargetUnavailable(f"{label}: binder is already loaded, and binder_linux cannot be unloaded; "
                                    f"reboot the host to test {module.name}")
        if not facts.is_root:
            raise TargetUnavailable(f"{label}: --binder-module needs root to insmod")
        remote = f"{self.workdir}/{module.name}"
        self.push(module, remote, 0o644)
        res = self._exec(f"insmod {shlex.quote(remote)} 2>&1", 30)
        if not res.ok:
            raise TargetUnavailable(f"{label}: insmod {module.name} failed: {res.output.strip()[:160]}")

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
        """Run one command on a fresh channel: output with stderr merged, and its exit status."""
        label = self.address.label
        if self._client is None:
            raise TargetError(f"{label}: not connected")
        transport = self._client.get_transport()
        chan = None
        for attempt in range(4):
            # A busy server may refuse a session, or close it before taking the exec
            # request; the command has not run then, so another channel is safe.
            try:
                chan = transport.open_session(timeout=self.options.connect_timeout) if transport else None
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
                    raise TargetError(f"{label}: the server refuses new sessions ({_unreachable_reason(exc)})") from None
                time.sleep(0.3 * 2 ** attempt)
            except (OSError, EOFError) as exc:
                raise TargetError(f"{label}: cannot open a channel ({_unreachable_reason(exc)})") from None
        if chan is None or transport is None:
            raise TargetError(f"{label}: connection lost")
        deadline = time.monotonic() + timeout + _GRACE_S
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
                    raise TargetError(f"{label}: no response in {timeout + _GRACE_S:.0f} s to '{command[:60]}'")
                if not transport.is_active():
                    raise TargetError(f"{label}: connection lost while running '{command[:60]}'")
            if not chan.status_event.wait(max(0.1, deadline - time.monotonic())):
                raise TargetError(f"{label}: connection lost while running '{command[:60]}'")
            status = chan.recv_exit_status()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TargetError(f"{label}: connection lost while running '{command[:60]}' ({_unreachable_reason(exc)})") from None
        finally:
            chan.close()
        if status == -1:  # the server sent no exit status (killed by a signal, or a dropped session)
            status = 255
        return CommandResult(status, b"".join(chunks).decode(errors="replace"))

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
            raise TargetError(f"{label}: push {local.name} to {remote} failed ({_unreachable_reason(exc)})") from None
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
                raise TargetError(f"{self.address.label}: pull {remote} failed ({_unreachable_reason(exc)})") from None
        res = self._exec_bytes(f"test -f {shlex.quote(remote)} && cat {shlex.quote(remote)}", 120)
        if res is None:
            return False
        local.write_bytes(res)
        return True

    def _exec_bytes(self, command: str, timeout: float) -> bytes | None:
        """Binary-safe stdout of a command (no stderr), or None when it fails."""
        assert self._client is not None
        try:
            _, stdout, _ = self._client.exec_command(command, timeout=timeout + _GRACE_S)
            data = stdout.read()
            return data if stdout.channel.recv_exit_status() == 0 else None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TargetError(f"{self.address.label}: cannot read with cat ({_unreachable_reason(exc)})") from None


class _Unreachable(Exception):
    """Connecting failed in a way that may heal by itself (host booting, network down).

    transient: the TCP connection was made but no ssh answered (a guest still
    booting behind a port forward); worth a short retry even on the first connect.
    """

    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient
