"""Which accelerator a QEMU guest runs under, and why.

KVM is used only where a real guest boots under it. No toy probe decides: on some hosts
(nested virtualisation) a few real-mode instructions run under KVM while the real kernel
dies mid-boot with "KVM internal error ... emulation failure", or crawls slower than TCG.
So the first real boot of a run is the probe: it must reach READY under KVM within
KVM_BOOT_BOUND_S, and QEMU's KVM failure text is watched for at every step after it.
The outcome is remembered per host boot and QEMU binary in the cache (`kvm-probe.json`).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.arches import GUEST_ARCHES, host_arch
from harness.errors import ConfigError, TargetError
from harness.files import atomic_write_text, cache_root

FORCE_ENV = "BINDER_HARNESS_ACCEL"
KVM_DEVICE = "/dev/kvm"
# A working KVM boots the default guests in well under a second; TCG takes about 2 s. A KVM
# boot that has not reached READY after this long is broken (one nested host showed its first
# kernel line after 9.7 s and "KVM internal error" after 21.9 s) or slower than TCG: fall back.
# BINDER_HARNESS_ACCEL=kvm waits the whole boot timeout instead (e.g. for a slow debug kernel).
KVM_BOOT_BOUND_S = 5.0
# What QEMU prints when KVM fails: at start (no module, no permission, a vCPU or MSR it
# cannot set up) or while running (an exit it cannot emulate, a failed entry).
KVM_FAILURE = re.compile(
    rb"KVM internal error[^\r\n]*|emulation failure|failed to initialize kvm[^\r\n]*"
    rb"|Could not access KVM kernel module[^\r\n]*|kvm run failed[^\r\n]*|KVM: entry failed[^\r\n]*"
    rb"|kvm_init_vcpu[^\r\n]*failed[^\r\n]*|Assertion[^\r\n]*kvm[^\r\n]*")


@dataclass(frozen=True)
class Accel:
    name: str  # kvm | tcg
    reason: str  # why, one line: shown in report.json target.accel_reason and report.html
    forced: bool = False  # chosen by BINDER_HARNESS_ACCEL: no fallback
    proven: bool = True  # False for a KVM not yet shown to boot a real guest on this host boot


class KvmFailed(TargetError):
    """QEMU said KVM failed (or a KVM boot made no progress); the guest is gone."""

    def __init__(self, message: str, why: str, forced: bool = False):
        super().__init__(message)
        self.why = why  # short cause, e.g. "KVM internal error at boot"
        self.forced = forced  # KVM was asked for by BINDER_HARNESS_ACCEL: no fallback


_CAUSES = (  # what a KVM_FAILURE match means, in the words a report shows
    (re.compile(r"failed to initialize kvm|Could not access KVM kernel module"), "QEMU refused KVM at start"),
    (re.compile(r"KVM internal error|emulation failure"), "KVM internal error"),
    (re.compile(r"kvm run failed|KVM: entry failed"), "KVM run failed"),
)


_OTHER_CAUSE = "QEMU aborted under KVM"  # a KVM_FAILURE line none of _CAUSES names (e.g. an assertion)


def cause(signature: str, during: str) -> str:
    """Why KVM failed, from QEMU's words: 'KVM internal error at boot', 'QEMU refused KVM at start', ..."""
    for pattern, name in _CAUSES:
        if pattern.search(signature):
            return name if name.endswith("at start") else f"{name} {during}"
    return f"{_OTHER_CAUSE} {during}"


def mid_boot_causes() -> tuple[str, ...]:
    """Every cause() a KVM failure that QEMU reports after start, during the boot, can have."""
    names = [name for _, name in _CAUSES if not name.endswith("at start")]
    return tuple(f"{name} at boot" for name in [*names, _OTHER_CAUSE])


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _stamp() -> Path:
    return cache_root() / "kvm-probe.json"


def _key(binary: str) -> str:
    """One decision per QEMU binary and version of it on this host boot."""
    try:
        mtime = int(os.stat(binary).st_mtime)
    except OSError:
        mtime = 0
    return f"{os.path.realpath(binary)}@{mtime}"


def _this_boot() -> dict:
    """The remembered decisions of this host boot, {QEMU key: {accel, reason}}; none after a reboot."""
    try:
        data = json.loads(_stamp().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("boot_id") != _boot_id() or not isinstance(data.get("qemu"), dict):
        return {}
    return data["qemu"]


def _remembered(binary: str) -> dict:
    entry = _this_boot().get(_key(binary))
    return entry if isinstance(entry, dict) and entry.get("accel") in ("kvm", "tcg") else {}


def remember(binary: str, accel: Accel) -> None:
    """Keep this host boot's verdict on KVM for this QEMU (atomic: parallel guests may race)."""
    decisions = {**_this_boot(), _key(binary): {"accel": accel.name, "reason": accel.reason}}
    atomic_write_text(_stamp(), json.dumps({"boot_id": _boot_id(), "qemu": decisions}, indent=1) + "\n")


def forced() -> str:
    value = os.environ.get(FORCE_ENV, "").strip()
    if value and value not in ("kvm", "tcg"):
        raise ConfigError(f"{FORCE_ENV}={value}: use kvm, tcg, or leave it unset (kvm when a real boot works)")
    return value


def choose(guest_arch: str, binary: str) -> Accel:
    """The accelerator for a guest of `guest_arch` run by the QEMU at `binary`, with its reason."""
    value = forced()
    if value:
        return Accel(value, f"{FORCE_ENV}={value}", forced=True)
    host = host_arch()
    if guest_arch not in GUEST_ARCHES or host != guest_arch:
        return Accel("tcg", f"host is {host}, guest {guest_arch}: KVM runs only the host's own arch")
    if not os.path.exists(KVM_DEVICE):
        return Accel("tcg", f"no {KVM_DEVICE}")
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return Accel("tcg", f"{KVM_DEVICE} is not readable and writable by uid {os.getuid()}")
    known = _remembered(binary)
    if known:
        return Accel(known["accel"], str(known.get("reason", "")))
    return Accel("kvm", "first real boot under KVM on this host boot", proven=False)


def proven(boot_s: float) -> Accel:
    return Accel("kvm", f"a real boot reached READY under KVM in {boot_s:.1f} s")


def fell_back(why: str) -> Accel:
    return Accel("tcg", f"{why}, fell back")

