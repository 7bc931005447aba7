"""The adb transport: a phone or an Android emulator, through the platform `adb` tool.

Every device command is run as `sh -c QUOTED` (wrapped in `su` when root comes
from su), followed by an echo of a per-call marker carrying `$?`: modern adbd
(the shell_v2 feature) also returns the remote exit status as adb's own, and
the marker covers the older daemons that do not. Files travel through a staging
directory owned by the shell user, so `adb push`/`adb pull` work whether the
commands run as shell, as root through `adb root`, or as root through su.

The parsers below are pure functions over adb's documented text formats, so
they are tested on captured output without a device.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError, TargetError, TargetUnavailable
from harness.arches import ABIS as PROBE_ABIS
from harness.targets.base import (FACTS_SCRIPT, MOUNT_SCRIPT, CommandResult, Facts, TargetInfo,
                                  parse_facts, shell_command)

ADB_ENV = "ADB"  # the platform tools' own name for the adb binary to use

WORKDIR = "/data/local/tmp/binder-harness"
_GRACE_S = 15.0

# ro.product.cpu.abi -> (TargetInfo.arch, probe ABI built by harness/evidence/probe.py)
ABIS = {android: (abi.arch, abi.name) for abi in PROBE_ABIS.values() for android in abi.android}

# `adb devices -l` qualifiers that follow the state (AOSP adb transport listing)
_QUALIFIER = re.compile(r"^(usb|product|model|device|transport_id|features):")


@dataclass
class AdbDevice:
    serial: str
    state: str  # device | unauthorized | offline | no permissions | recovery | bootloader | sideload | ...
    detail: str = ""  # the full state text, e.g. "no permissions (missing udev rules? ...)"
    qualifiers: dict[str, str] = field(default_factory=dict)


def parse_devices(text: str) -> list[AdbDevice]:
    """Parse `adb devices` or `adb devices -l` output.

    Short form: `SERIAL<TAB>STATE`. Long form: the serial padded to a column,
    the state, then `key:value` qualifiers (usb:, product:, model:, device:,
    transport_id:). The state may contain spaces ("no permissions (...); see
    [URL]"). Lines from the adb server itself ("* daemon ...") are skipped.
    """
    devices: list[AdbDevice] = []
    for raw in text.replace("\r", "").splitlines():
        line = raw.strip()
        if not line or line.startswith(("*", "List of devices", "adb server", "adb: ")):
            continue
        parts = line.split(None, 1)
        serial, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        tokens = rest.split()
        state_tokens: list[str] = []
        quals: dict[str, str] = {}
        for i, tok in enumerate(tokens):
            if _QUALIFIER.match(tok) and not state_tokens:  # 2012-era `-l`: devpath before the state
                key, _, value = tok.partition(":")
                quals[key] = value
                continue
            if _QUALIFIER.match(tok):
                for q in tokens[i:]:
                    key, _, value = q.partition(":")
                    quals[key] = value
                break
            state_tokens.append(tok)
        detail = " ".join(state_tokens)
        state = "no permissions" if detail.startswith("no permissions") else (state_tokens[0] if state_tokens else "unknown")
        devices.append(AdbDevice(serial, state, detail, quals))
    return devices


def choose_device(devices: list[AdbDevice], serial: str | None, spec: str) -> AdbDevice:
    """Pick the device for `spec`, or raise one line saying why none can be used."""
    listing = ", ".join(f"{d.serial} ({d.state})" for d in devices)
    if serial is None:
        if not devices:
            raise TargetUnavailable(f"{spec}: no device attached ('adb devices' lists none)")
        if len(devices) > 1:
            raise TargetUnavailable(f"{spec}: {len(devices)} devices attached ({listing}); pick one with --target adb:SERIAL")
        dev = devices[0]
    else:
        found = next((d for d in devices if d.serial == serial), None)
        if found is None:
            attached = listing or "none"
            raise TargetUnavailable(f"{spec}: no device with serial {serial} (attached: {attached})")
        dev = found
    label = f"adb:{dev.serial}"
    if dev.state == "device":
        return dev
    if dev.state == "unauthorized":
        raise TargetUnavailable(f"{label}: device unauthorized; accept the USB debugging prompt on the device")
    if dev.state == "offline":
        raise TargetUnavailable(f"{label}: device offline; reconnect it, or restart adbd (adb reconnect)")
    if dev.state == "no permissions":
        raise TargetUnavailable(f"{label}: no permission to open the USB device (udev rules?): {dev.detail[:120]}")
    raise TargetUnavailable(f"{label}: device is in state '{dev.state}', not booted to Android")


def abi_info(abi: str) -> tuple[str, str]:
    """ro.product.cpu.abi -> (arch, probe ABI); one line for an ABI without a probe."""
    key = abi.strip()
    if key not in ABIS:
        raise TargetUnavailable(f"unsupported Android ABI {key!r}; known: {', '.join(ABIS)}")
    return ABIS[key]


def device_abi(getprop_abi: str, uname_m: str) -> tuple[str, str]:
    """(arch, probe ABI) of a device: ro.product.cpu.abi on Android; `uname -m` on a plain Linux
    device reached through adbd (Debian's adbd in a guest or on a board has no getprop)."""
    if getprop_abi.strip():
        return abi_info(getprop_abi)
    machine = uname_m.strip()
    for abi in PROBE_ABIS.values():
        if machine in abi.uname:
            return abi.arch, abi.name
    raise TargetUnavailable(f"no ro.product.cpu.abi and unsupported `uname -m` {machine!r}; "
                            f"known: {', '.join(m for a in PROBE_ABIS.values() for m in a.uname)}")


def parse_getprop(text: str) -> dict[str, str]:
    """Parse `getprop` (all properties): lines of `[name]: [value]`."""
    props: dict[str, str] = {}
    for m in re.finditer(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text.replace("\r", ""), re.M):
        props[m.group(1)] = m.group(2)
    return props


def adb_argv(adb: str, serial: str | None, *args: str) -> list[str]:
    """The host command line for one adb call on one device."""
    return [adb, *(["-s", serial] if serial else []), *args]


def su_prefixes() -> tuple[tuple[str, ...], ...]:
    """su variants to try, in order: AOSP's `su UID CMD...`, then `su -c STRING` (Magisk, SuperSU)."""
    return (("su", "0"), ("su", "-c"))


def device_command(command: str, su: tuple[str, ...] | None, marker: str) -> str:
    """The string given to `adb shell`: the command in `sh -c`, maybe under su, then the status marker."""
    quoted = shlex.quote(command)
    if su == ("su", "-c"):
        inner = f"su -c {shlex.quote('sh -c ' + quoted)}"
    elif su:
        inner = f"{shlex.join(su)} sh -c {quoted}"
    else:
        inner = f"sh -c {quoted}"
    return f"{inner}; echo \"{marker}$?@@\""


def split_status(output: str, marker: str) -> tuple[str, int | None]:
    """Remove the status marker line from output; return (output, status or None when absent)."""
    text = output.replace("\r\n", "\n")
    pattern = re.compile(re.escape(marker) + r"(\d+)@@\n?")
    found = list(pattern.finditer(text))
    if not found:
        return text, None
    last = found[-1]
    return text[: last.start()] + text[last.end():], int(last.group(1))


def shell_result(returncode: int, output: str, marker: str, shell_v2: bool) -> CommandResult | None:
    """Decide a command's exit status: the marker when present, else adb's own (shell_v2), else None."""
    body, status = split_status(output, marker)
    if status is not None:
        return CommandResult(status, body)
    if shell_v2 and returncode >= 0 and not _adb_error(body):
        return CommandResult(returncode, body)
    return None


_ADB_ERRORS = re.compile(r"^(adb: |error: ).*(device|closed|not found|offline|unauthorized|no devices)", re.M)


def _adb_error(text: str) -> str | None:
    m = _ADB_ERRORS.search(text)
    return m.group(0).strip() if m else None


def root_state(adb_root_output: str) -> str:
    """Classify `adb root` output: restarting | already | refused | unknown."""
    text = adb_root_output.lower()
    if "already running as root" in text:
        return "already"
    if "cannot run as root" in text or "production builds" in text:
        return "refused"
    if "restarting adbd as root" in text:
        return "restarting"
    return "unknown"


def find_adb() -> str:
    name = os.environ.get(ADB_ENV, "adb")
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"{name} not found; install the platform tools (Debian: apt-get install adb) or set ADB=PATH")
    return path


class AdbTarget:
    def __init__(self, spec: str, serial: str | None = None, progress=print, adb: str | None = None):
        self.spec = spec
        self.serial = serial
        self.progress = progress
        self.adb = adb
        self.workdir = WORKDIR
        self.boot_s = 0.0
        self.shell_v2 = False
        self.su: tuple[str, ...] | None = None
        self.root_via = "none"  # adbd | su | none
        self.arch = ""
        self.probe_abi = ""
        self._facts: Facts | None = None
        self._seq = 0

    @property
    def label(self) -> str:
        return f"adb:{self.serial}" if self.serial else "adb"

    # -- host adb calls --------------------------------------------------------
    def _adb(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        assert self.adb is not None
        argv = adb_argv(self.adb, self.serial, *args)
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=timeout, text=True, errors="replace")
        except subprocess.TimeoutExpired:
            raise TargetError(f"{self.label}: adb {' '.join(args[:2])} gave no answer in {timeout:.0f} s") from None

    def _raw_shell(self, command: str, timeout: float = 30.0, su: tuple[str, ...] | None = None) -> CommandResult:
        self._seq += 1
        marker = f"@@BH{self._seq}-RC:"
        proc = self._adb("shell", device_command(command, su, marker), timeout=timeout + _GRACE_S)
        result = shell_result(proc.returncode, proc.stdout, marker, self.shell_v2)
        if result is None:
            err = _adb_error(proc.stdout) or (proc.stdout.strip().splitlines() or ["no output"])[-1]
            raise TargetError(f"{self.label}: adb shell failed: {err[:160]}")
        return result

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        t0 = time.monotonic()
        self.adb = self.adb or find_adb()
        requested = self.serial
        self.serial = None
        listing = self._adb("devices", "-l", timeout=30)
        if listing.returncode != 0:
            raise TargetUnavailable(f"{self.spec}: 'adb devices -l' failed: {listing.stdout.strip()[:160]}")
        self.serial = choose_device(parse_devices(listing.stdout), requested, self.spec).serial
        feats = self._adb("features", timeout=15)
        self.shell_v2 = feats.returncode == 0 and "shell_v2" in feats.stdout.split()
        self._become_root()
        abi = self._raw_shell("getprop ro.product.cpu.abi 2>/dev/null", 15).output.strip()
        machine = "" if abi else self._raw_shell("uname -m", 15).output
        try:
            self.arch, self.probe_abi = device_abi(abi, machine)
        except TargetUnavailable as exc:
            raise TargetUnavailable(f"{self.label}: {exc}") from None
        stage = f"{WORKDIR}/.stage"
        self._raw_shell(shell_command(["mkdir", "-p", stage]), 15)  # as the shell user: adb push/pull can use it
        if self.su:
            self._raw_shell(shell_command(["chmod", "0777", WORKDIR, stage]), 15)
        self._facts = parse_facts(self.run_shell(FACTS_SCRIPT, 20).output)
        if self._facts.is_root and (self._facts.tracefs is None or self._facts.debugfs is None):
            self.run_shell(MOUNT_SCRIPT, 20)
            self._facts = parse_facts(self.run_shell(FACTS_SCRIPT, 20).output)
        if not self._facts.binder_found:
            raise TargetUnavailable(f"{self.label}: no /dev/binder and no binderfs on {self._facts.kernel_release}")
        self.boot_s = time.monotonic() - t0

    def _become_root(self) -> None:
        """Root through adbd (`adb root`) when the build allows it, else through su, else none."""
        if self._raw_shell("id -u", 15).output.strip() == "0":
            self.root_via = "adbd"
            return
        state = root_state(self._adb("root", timeout=30).stdout)
        if state == "restarting":
            self._adb("wait-for-device", timeout=60)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if self._raw_shell("id -u", 15).output.strip() == "0":
                        self.root_via = "adbd"
                        return
                    break
                except TargetError:  # adbd is still restarting
                    time.sleep(1)
        for prefix in su_prefixes():
            try:
                if self._raw_shell("id -u", 15, su=prefix).output.strip() == "0":
                    self.su, self.root_via = prefix, "su"
                    return
            except TargetError:
                continue
        self.progress(f"{self.label}: no root (adb root refused, no working su); cases needing root are skipped")

    def stop(self) -> None:
        if self._facts is not None and self.serial:
            try:
                self.run_shell(shell_command(["rm", "-rf", WORKDIR]), 20)
            except (TargetError, OSError):
                pass
        self._facts = None

    def alive(self) -> bool:
        return self._facts is not None

    def info(self) -> TargetInfo:
        if self._facts is None:
            raise TargetError(f"{self.label}: not started")
        return self._facts.target_info(self.spec, arch=self.arch)

    # -- commands ----------------------------------------------------------------
    def run(self, argv: list[str], timeout: float = 30.0) -> CommandResult:
        return self.run_shell(shell_command(argv, timeout), timeout)

    def run_shell(self, command: str, timeout: float = 30.0) -> CommandResult:
        return self._raw_shell(command, timeout, su=self.su)

    def dmesg(self, timeout: float = 20.0) -> str:
        return self.run(["dmesg"], timeout).output

    # -- files -------------------------------------------------------------------
    def _stage_path(self, remote: str) -> str:
        self._seq += 1
        return f"{WORKDIR}/.stage/{self._seq}-{os.path.basename(remote)}"

    def push(self, local: Path, remote: str, mode: int = 0o755) -> None:
        stage = self._stage_path(remote)
        proc = self._adb("push", str(local), stage, timeout=300)
        if proc.returncode != 0:
            raise TargetError(f"{self.label}: adb push {local.name} failed: {proc.stdout.strip().splitlines()[-1:]}")
        q = shlex.quote
        parent = remote.rsplit("/", 1)[0] or "/"
        res = self.run_shell(f"mkdir -p {q(parent)} && cp {q(stage)} {q(remote)} && chmod {mode:o} {q(remote)}; "
                             f"s=$?; rm -f {q(stage)}; exit $s", 60)
        if not res.ok:
            raise TargetError(f"{self.label}: cannot place {remote}: {res.output.strip()[:120]}")

    def pull(self, remote: str, local: Path) -> bool:
        stage = self._stage_path(remote)
        q = shlex.quote
        res = self.run_shell(f"test -f {q(remote)} && cp {q(remote)} {q(stage)} && chmod 0644 {q(stage)}", 60)
        if not res.ok:
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            proc = self._adb("pull", stage, str(local), timeout=300)
        finally:
            self.run_shell(f"rm -f {q(stage)}", 20)
        if proc.returncode != 0:
            raise TargetError(f"{self.label}: adb pull {remote} failed: {proc.stdout.strip().splitlines()[-1:]}")
        return True
