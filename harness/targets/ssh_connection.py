"""An ssh connection with paramiko, and its host-key policy: a host is checked against
known_hosts unless the user explicitly accepts any key (ephemeral guests); auth and host-key
refusals fail at once, an unreachable host is retried. Key contents and passphrases are never
printed."""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from harness.errors import ConfigError, TargetUnavailable

PASSPHRASE_ENV = "BINDER_HARNESS_SSH_PASSPHRASE"  # read, never printed
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")

# paramiko logs transport errors (with tracebacks) through logging; our errors are one line.
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


def unreachable_reason(exc: BaseException) -> str:
    """One line for a failed socket or ssh operation."""
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        errs = {getattr(e, "strerror", None) or str(e) for e in exc.errors.values()}
        return "; ".join(sorted(errs)).lower() or "connection failed"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class _Unreachable(Exception):
    """Connecting failed in a way that may heal by itself (host booting, network down).

    transient: the TCP connection was made but no ssh answered (a guest still
    booting behind a port forward); worth a short retry even on the first connect.
    """

    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


def known_hosts_path(options: SshOptions) -> Path:
    return (options.known_hosts or DEFAULT_KNOWN_HOSTS).expanduser()


def connect_once(address: SshAddress, opts: SshOptions, progress) -> paramiko.SSHClient:
    """One connection attempt: host key checked (or accepted, and said so), then authenticated."""
    label = address.label
    client = paramiko.SSHClient()
    policy = _CheckHostKey(opts.insecure_accept_host_key)
    known = known_hosts_path(opts)
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
        client.connect(address.host, address.port, username=address.user, pkey=pkey,
                       allow_agent=True, look_for_keys=pkey is None, timeout=opts.connect_timeout,
                       banner_timeout=opts.connect_timeout, auth_timeout=opts.connect_timeout,
                       channel_timeout=opts.connect_timeout)
    except _UnknownHostKey as exc:
        client.close()
        raise TargetUnavailable(
            f"{label}: host key {exc.key.get_name()} {fingerprint(exc.key)} is not in {known}; "
            f"add '{known_hosts_line(address, exc.key)}' to it, pass --known-hosts FILE, "
            f"or --insecure-accept-host-key for an ephemeral guest") from None
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise TargetUnavailable(
            f"{label}: host key mismatch: the server offered {exc.key.get_name()} {fingerprint(exc.key)}, "
            f"but {known} has {fingerprint(exc.expected_key)}; refusing to connect") from None
    except paramiko.AuthenticationException:
        client.close()
        tried = f"key {opts.identity}" if opts.identity else "the agent and ~/.ssh keys"
        raise TargetUnavailable(f"{label}: authentication refused for user {address.user} (tried {tried})") from None
    except (OSError, paramiko.SSHException, EOFError) as exc:
        client.close()
        transient = not isinstance(exc, (paramiko.ssh_exception.NoValidConnectionsError, socket.gaierror))
        raise _Unreachable(f"{label}: host unreachable ({unreachable_reason(exc)})", transient) from None
    transport = client.get_transport()
    assert transport is not None
    transport.set_keepalive(opts.keepalive_s)
    if opts.insecure_accept_host_key:
        key = transport.get_remote_server_key()
        progress(f"{label}: accepted host key {key.get_name()} {fingerprint(key)} without checking "
                 f"(--insecure-accept-host-key)")
    return client


def connect(address: SshAddress, opts: SshOptions, progress, wait_s: float,
            transient_only: bool = False) -> paramiko.SSHClient:
    """Connect, retrying an unreachable host for wait_s; auth and host key refusals fail at once."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return connect_once(address, opts, progress)
        except _Unreachable as exc:
            if time.monotonic() >= deadline or (transient_only and not exc.transient):
                raise TargetUnavailable(str(exc)) from None
            time.sleep(0.5)


def host_key_fingerprint(client: paramiko.SSHClient) -> str:
    transport = client.get_transport()
    assert transport is not None
    return fingerprint(transport.get_remote_server_key())
