"""`binder-harness guest`: a long-lived QEMU guest that engineers and CI reach over ssh.

The guest is the usual image plus Debian's dropbear, the SFTP server and the
shared libraries they need (resolved from their ELF DT_NEEDED entries), and
virtio_net. At boot the console brings up eth0 behind QEMU's user network,
generates a fresh ed25519 host key, installs a client key generated on the
host for this guest, and starts dropbear, forwarded from 127.0.0.1:PORT only.
Before it says "ready", the harness logs in over ssh itself, checking the host
key, so the printed instructions are known to work. Its kernel and driver are shaped by the
run's own options (--image, --kernel, --modules, --binder-module; harness/options.py).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import paramiko

from harness.errors import ConfigError, TargetError
from harness.building.guest_files import (ADBD, HOST_KEY, adb_files, android_lib_dir, load_adb_recipe, load_ssh_recipe,
                                       ssh_files)
from harness.files import cache_root
from harness.building.recipes import resolve_recipe
from harness.running import binder_setup
from harness.running.devices import GUEST_BINDERFS_LINE, PRIVATE_DEVICE
from harness.targets import TargetOptions, build_qemu_image
from harness.targets.spec import TargetSpec

# -- keys ---------------------------------------------------------------------------
def openssh_fingerprint(public_line: str) -> str:
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def make_client_key(directory: Path) -> tuple[Path, str]:
    """A fresh ECDSA P-256 client keypair for this guest; returns (private key path, public line)."""
    key = paramiko.ECDSAKey.generate()
    path = directory / "id_ecdsa"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        key.write_private_key(fh)
    public = f"{key.get_name()} {key.get_base64()} binder-harness-guest"
    (directory / "id_ecdsa.pub").write_text(public + "\n")
    return path, public


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port(port: int, flag: str = "--ssh-port") -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"{flag} {port}: not a TCP port")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"{flag} {port}: 127.0.0.1:{port} is not free ({exc.strerror})") from None


@dataclass(frozen=True)
class GuestInfo:
    """What guest.json holds: everything a user or a test needs to reach the guest."""

    spec: str
    target: str
    port: int
    identity: str
    known_hosts: str
    known_hosts_line: str
    host_key_fingerprint: str
    ssh_command: str
    kernel_release: str
    accel: str
    pid: int


# Both guests: ptys (dropbear's sessions, adbd's `shell -t`) and eth0 behind QEMU's user network.
_NET_AND_PTYS = [
    "mount -t devpts devpts /dev/pts",
    "ip link set lo up",
    "ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2 || exit 3",
]


def _forwarded_guest(image, spec: str, state: Path, port: int, guest_port: int, progress):
    """The QEMU target of a long-lived guest: its files in `state` (a fresh console.log), and
    127.0.0.1:port (never another interface) forwarded to its guest_port."""
    from harness.targets.qemu import QemuTarget

    state.mkdir(parents=True, exist_ok=True)
    (state / "console.log").unlink(missing_ok=True)
    nic = ("-nic", f"user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{port}-:{guest_port}")
    return QemuTarget(image, spec, console_log=state / "console.log", extra_args=nic, progress=progress)


def _setup_script(public_key: str) -> str:
    """Network, keys and pty support; in `sh -c`, so its `exit` never ends the console shell."""
    q = shlex.quote
    return "sh -c " + q("; ".join([
        "mkdir -p /dev/pts /root/.ssh /etc/dropbear /var/log /var/run",
        *_NET_AND_PTYS,
        f"printf '%s\\n' {q(public_key)} > /root/.ssh/authorized_keys",
        "chmod 700 /root /root/.ssh && chmod 600 /root/.ssh/authorized_keys",
        f"/usr/bin/dropbearkey -t ed25519 -f {HOST_KEY} > /dev/null 2>&1 || exit 4",
        f"/usr/bin/dropbearkey -y -f {HOST_KEY} | grep '^ssh-ed25519 '",
    ]))


def boot_guest(qemu_spec: TargetSpec, port: int, options: TargetOptions, progress=print):
    """Boot the ssh-reachable guest (its kernel and driver as `options` shape them, as for `run`);
    returns (QemuTarget, GuestInfo). The caller stops the target."""
    from harness.targets.ssh import SshAddress, SshOptions, SshTarget

    spec, arch = qemu_spec.text, _arch(qemu_spec)
    recipe = resolve_recipe(options.image, arch)
    ssh = load_ssh_recipe(recipe)
    port = port or free_port()
    check_port(port)
    image = build_qemu_image(options, recipe, progress, extra_files=tuple(ssh_files(recipe, ssh, progress)),
                             extra_modules=ssh.modules)
    state = cache_root() / "guests" / f"qemu-{arch}-{port}"
    target = _forwarded_guest(image, spec, state, port, 22, progress)
    identity, public = make_client_key(state)
    t0 = time.monotonic()
    try:
        progress(f"boot {spec} with ssh on 127.0.0.1:{port} ...")
        target.start()
        res = target.run_shell(_setup_script(public), 60)
        line = next((l.strip() for l in res.output.splitlines() if l.startswith("ssh-ed25519 ")), "")
        if not res.ok or not line:
            raise TargetError(f"{spec}: guest ssh setup failed (status {res.status}): {res.output.strip()[-200:]}")
        target.run_shell(f"/usr/sbin/dropbear -F -E -s -p 22 -r {HOST_KEY} < /dev/null > /tmp/dropbear.log 2>&1 & echo started", 10)
        host_pub = " ".join(line.split()[:2])
        kh_line = f"[127.0.0.1]:{port} {host_pub}"
        (state / "known_hosts").write_text(kh_line + "\n")
        target_spec = f"ssh://root@127.0.0.1:{port}"
        # Prove the instructions work before printing them: log in, checking the host key.
        check = SshTarget(target_spec, SshAddress("root", "127.0.0.1", port),
                          SshOptions(identity=identity, known_hosts=state / "known_hosts"), progress=progress)
        try:
            check.start()
        except BaseException:
            log = target.run_shell("cat /tmp/dropbear.log", 10).output.strip().splitlines()[-3:]
            progress(f"{spec}: dropbear log: {' | '.join(log) or 'empty'}")
            raise
        finally:
            check.stop()
        ident = target.info()
        ssh_cmd = shlex.join(["ssh", "-i", str(identity), "-o", "IdentitiesOnly=yes",
                              "-o", f"UserKnownHostsFile={state / 'known_hosts'}", "-p", str(port), "root@127.0.0.1"])
        info = GuestInfo(spec=spec, target=target_spec, port=port, identity=str(identity),
                         known_hosts=str(state / "known_hosts"), known_hosts_line=kh_line,
                         host_key_fingerprint=openssh_fingerprint(line), ssh_command=ssh_cmd,
                         kernel_release=ident.kernel_release, accel=ident.accel, pid=os.getpid())
        (state / "guest.json").write_text(json.dumps(asdict(info), indent=2) + "\n")
        progress(f"guest {spec} up in {time.monotonic() - t0:.1f} s ({ident.kernel_release}, {ident.accel})")
        return target, info
    except BaseException:
        target.stop()
        forget_keys(state)
        raise


def forget_keys(state: Path) -> None:
    for name in ("id_ecdsa", "id_ecdsa.pub", "guest.json"):
        (state / name).unlink(missing_ok=True)


def describe(info: GuestInfo) -> str:
    state = Path(info.identity).parent
    return "\n".join([
        f"host key:    ssh-ed25519 {info.host_key_fingerprint}",
        f"known_hosts: {info.known_hosts_line}",
        f"             (written to {info.known_hosts})",
        f"client key:  {info.identity}",
        f"ssh:         {info.ssh_command}",
        f"target:      --target {info.target} --identity {info.identity} --known-hosts {info.known_hosts}",
        f"details:     {state / 'guest.json'}",
        f"stop:        Ctrl-C, or kill -TERM {info.pid}",
        "READY",
    ])


def _arch(spec: TargetSpec) -> str:
    assert spec.arch is not None, spec  # harness/options.py takes only qemu:ARCH for `guest`
    return spec.arch


def run_guest(spec: TargetSpec, port: int, options: TargetOptions, progress=print) -> int:
    """Boot, print how to reach the guest, and keep it up until SIGINT/SIGTERM (KeyboardInterrupt)."""
    target = None
    info = None
    try:
        target, info = boot_guest(spec, port, options, progress)
        print(describe(info), flush=True)
        while target.drain_console(1.0):
            pass
        progress(f"guest {info.spec} exited on its own; see {Path(info.identity).parent / 'console.log'}")
        return 1
    except KeyboardInterrupt:
        progress("guest: stopping")
        return 0
    finally:
        if target is not None:
            target.stop()
        if info is not None:
            forget_keys(Path(info.identity).parent)


# -- the adb-reachable guest ------------------------------------------------------------
# Debian's adbd listens on ADBD_PORT on every interface and, patched by Debian, asks for no
# auth: whoever reaches the port gets a root shell. QEMU's user network forwards only
# 127.0.0.1:PORT to it, so only this host's users can.
ADBD_GUEST_PORT = 5555


@dataclass(frozen=True)
class AdbGuestInfo:
    """What adb-guest.json holds: how to reach the adb guest."""

    spec: str
    target: str
    port: int
    serial: str
    connect_command: str
    kernel_release: str
    accel: str
    pid: int
    resident_pid: int = 0  # the resident context manager on /dev/binder (0: none)
    # the device cases should use (--binder-device); "" where the guest has binderfs: each run
    # makes its own through /dev/binderfs/binder-control (harness/running/devices.py)
    binder_device: str = "/dev/binder"


def _adb_setup_script(lib_dir: str) -> str:
    """Network, devpts (adbd's `shell -t` needs /dev/ptmx) and adbd on ADBD_GUEST_PORT, in `sh -c`."""
    q = shlex.quote
    return "sh -c " + q("; ".join([
        "mkdir -p /dev/pts /var/run /data/local/tmp",
        *_NET_AND_PTYS,
        f"export ADBD_PORT={ADBD_GUEST_PORT} LD_LIBRARY_PATH={q(lib_dir)}",
        f"(/{ADBD} < /dev/null > /tmp/adbd.log 2>&1 &)",
        "echo adbd-started",
    ]))


def adb_connect(adb: str, serial: str, timeout: float = 30.0) -> None:
    """`adb connect SERIAL` until the device answers a shell command, or one line saying why not."""
    import subprocess

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        out = subprocess.run([adb, "connect", serial], capture_output=True, text=True, timeout=20)
        last = (out.stdout + out.stderr).strip()
        if "connected to" in last:
            probe = subprocess.run([adb, "-s", serial, "shell", "echo", "bh-ok"], capture_output=True, text=True,
                                   timeout=20, stdin=subprocess.DEVNULL)
            if "bh-ok" in probe.stdout:
                return
            last = (probe.stdout + probe.stderr).strip()
        time.sleep(0.5)
    raise TargetError(f"adb:{serial}: adbd did not answer in {timeout:.0f} s: {last.splitlines()[-1:] or 'no output'}")


def adb_disconnect(adb: str, serial: str) -> None:
    import subprocess

    try:
        subprocess.run([adb, "disconnect", serial], capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        pass


def adb_state_dir(arch: str, port: int) -> Path:
    """Where an adb guest keeps its console log and adb-guest.json."""
    return cache_root() / "guests" / f"qemu-{arch}-adb-{port}"


RESIDENT_DIR = "/var/run/binder-resident"  # outside the adb target's workdir, which it removes when done


def start_resident(target, arch: str) -> int:
    """Start the probe's resident context manager on /dev/binder in the guest (servicemanager's
    place), as a run does (harness/running/binder_setup.py); returns its pid, or raises one line."""
    from harness.arches import abi_for
    from harness.evidence.probe import ensure_probe

    abi = abi_for(arch, False)
    assert abi is not None
    staged = f"{target.workdir}/binder-resident"  # the console target pushes through its share
    target.push(ensure_probe(abi), staged, 0o755)
    return binder_setup.start_resident(target, staged, f"{RESIDENT_DIR}/binder-resident",
                                       f"{RESIDENT_DIR}/resident.jsonl",
                                       f"{PRIVATE_DEVICE}, or a device of their own through binderfs")


def boot_adb_guest(qemu_spec: TargetSpec, port: int, options: TargetOptions, progress=print):
    """Boot the adb-reachable guest (its kernel and driver as `options` shape them, as for `run`);
    returns (QemuTarget, AdbGuestInfo). The caller stops the target.
    With options.resident_cm, binder_linux gets a second device (/dev/binder-harness; on a binder_linux with
    binderfs, runs make their own through binder-control) and a resident context manager owns
    /dev/binder, as servicemanager does on Android."""
    from harness.targets.adb import AdbTarget, find_adb

    adb = find_adb()
    spec, arch = qemu_spec.text, _arch(qemu_spec)
    recipe = resolve_recipe(options.image, arch)
    section = load_adb_recipe(recipe)
    port = port or free_port()
    check_port(port, "--adb-port")
    files = adb_files(recipe, section, progress)
    image = build_qemu_image(options, recipe, progress, extra_files=tuple(files), extra_modules=section.modules)
    state = adb_state_dir(arch, port)
    serial = f"127.0.0.1:{port}"
    target = _forwarded_guest(image, spec, state, port, ADBD_GUEST_PORT, progress)
    t0 = time.monotonic()
    try:
        progress(f"boot {spec} with adbd on 127.0.0.1:{port} ...")
        target.start()
        res = target.run_shell(_adb_setup_script(android_lib_dir(files)), 60)
        if not res.ok or "adbd-started" not in res.output:
            raise TargetError(f"{spec}: guest adb setup failed (status {res.status}): {res.output.strip()[-200:]}")
        resident_pid = start_resident(target, arch) if options.resident_cm else 0
        try:
            adb_connect(adb, serial)
            # Prove the printed target works before printing it: the harness's own adb target starts on it.
            check = AdbTarget(f"adb:{serial}", serial=serial, progress=progress, adb=adb)
            check.start()
            check.stop()
        except BaseException:
            log = target.run_shell("cat /tmp/adbd.log", 10).output.strip().splitlines()[-3:]
            progress(f"{spec}: adbd log: {' | '.join(log) or 'empty'}")
            raise
        ident = target.info()
        info = AdbGuestInfo(spec=spec, target=f"adb:{serial}", port=port, serial=serial,
                            connect_command=shlex.join(["adb", "connect", serial]),
                            kernel_release=ident.kernel_release, accel=ident.accel, pid=os.getpid(),
                            resident_pid=resident_pid,
                            binder_device="" if GUEST_BINDERFS_LINE in (target.boot_dmesg() or "")
                            else PRIVATE_DEVICE if options.resident_cm else "/dev/binder")
        (state / "adb-guest.json").write_text(json.dumps(asdict(info), indent=2) + "\n")
        progress(f"guest {spec} up in {time.monotonic() - t0:.1f} s ({ident.kernel_release}, {ident.accel})")
        return target, info
    except BaseException:
        adb_disconnect(adb, serial)
        target.stop()
        raise


def describe_adb(info: AdbGuestInfo, state: Path) -> str:
    return "\n".join([
        f"adb:         {info.connect_command}   (already connected; adbd asks no auth, so the port is 127.0.0.1 only)",
        f"shell:       adb -s {info.serial} shell",
        f"target:      --target {info.target}"
        + (f" --binder-device {info.binder_device}" if info.resident_pid and info.binder_device else ""),
        *([f"resident:    a context manager (pid {info.resident_pid}) owns /dev/binder; cases use "
           f"{info.binder_device or 'a device each run makes through /dev/binderfs/binder-control'}"]
          if info.resident_pid else []),
        f"details:     {state / 'adb-guest.json'}",
        f"stop:        Ctrl-C, or kill -TERM {info.pid}",
        "READY",
    ])


def run_adb_guest(spec: TargetSpec, port: int, options: TargetOptions, progress=print) -> int:
    """Boot the adb guest, print how to reach it, keep it up until SIGINT/SIGTERM."""
    from harness.targets.adb import find_adb

    target = None
    info = None
    try:
        target, info = boot_adb_guest(spec, port, options, progress)
        print(describe_adb(info, adb_state_dir(_arch(spec), info.port)), flush=True)
        while target.drain_console(1.0):
            pass
        progress(f"guest {info.spec} exited on its own")
        return 1
    except KeyboardInterrupt:
        progress("guest: stopping")
        return 0
    finally:
        if info is not None:
            adb_disconnect(find_adb(), info.serial)
            (adb_state_dir(_arch(spec), info.port) / "adb-guest.json").unlink(missing_ok=True)
        if target is not None:
            target.stop()
