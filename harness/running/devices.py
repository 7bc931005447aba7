"""Which binder device a target's cases open, and how it came to be (report.json's
evidence.binder_device {path, made_by}).

In order: the device named with --binder-device; a device of the harness's own made through
binderfs's binder-control (BINDER_CTL_ADD) where the target's kernel has binderfs, as GKI
kernels do; with --resident-context-manager on a QEMU guest, the second device of
binder_linux's devices= parameter; else /dev/binder.

A target with binderfs gets its own device even without --resident-context-manager: on Android
/dev/binder belongs to servicemanager, so the cases could not become its context manager, and a
device made through binder-control is a context of its own on any kernel that has one.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from harness.evidence.probe import parse_probe_output


@dataclass(frozen=True)
class BinderDevice:
    """The binder device a target's cases open, and how it came to be."""

    path: str
    made_by: str


DEFAULT_DEVICE = BinderDevice("/dev/binder", "the kernel's default device (CONFIG_ANDROID_BINDER_DEVICES)")
# --resident-context-manager on a QEMU guest: binder_linux devices=PRIVATE_DEVICES (harness/targets)
# gives the resident's /dev/binder and the cases' own (binder_init -> init_binder_device per name).
# A binder_linux with binderfs makes no misc device from these names; its binderfs mounts get one
# per name instead (binderfs_fill_super), and the cases use a binderfs device of their own.
PRIVATE_DEVICE = "/dev/binder-harness"

# The device the harness asks binder-control for. It is in no devices= list (neither Debian's
# "binder", Android's "binder,hwbinder,vndbinder" nor PRIVATE_DEVICES), so a mount never makes it:
# it exists only through BINDER_CTL_ADD, or is one an earlier run made on a long-lived target.
BINDERFS_DEVICE_NAME = "binder-harness-ctl"
# What images/guest-init.sh prints to the kernel log once it has mounted binderfs at
# /dev/binderfs (and linked /dev/binder to its "binder" device), as Android's init does. A QEMU
# guest whose boot log lacks it has no binderfs: its cases need no round trip to find out.
GUEST_BINDERFS_LINE = "binder-harness: binderfs mounted at /dev/binderfs"


def binderfs_script(probe: str, own_mount: str, name: str = BINDERFS_DEVICE_NAME) -> str:
    """One round trip on the target: find binderfs and ask its binder-control for device `name`.

    A mounted binderfs comes first (the first `binder` line of /proc/mounts, e.g. Android's
    /dev/binderfs); a kernel that has the filesystem (/proc/filesystems) but no mount of it gets
    one at `own_mount`. Prints `binderfs=none|mounted|mounted_here|mount_failed [DIR]`, then the
    probe's binderfs_add lines and `binderfs_device=PATH` when PATH is a character device after
    the call. parse_binderfs() reads it."""
    q = shlex.quote
    return "; ".join([
        'm=; while read -r _dev dir type _rest; do if [ "$type" = binder ]; then m=$dir; break; fi; done < /proc/mounts',
        'if [ -n "$m" ]; then echo "binderfs=mounted $m"',
        f"elif grep -qw binder /proc/filesystems; then m={q(own_mount)}; "
        'if mkdir -p "$m" && mount -t binder binder "$m" 2>&1; then echo "binderfs=mounted_here $m"; '
        'else echo "binderfs=mount_failed $m"; m=; fi',
        "else echo binderfs=none; fi",
        f'if [ -n "$m" ]; then {q(probe)} binderfs_add control="$m/binder-control" name={q(name)} 2>&1; '
        f'if [ -c "$m"/{q(name)} ]; then echo "binderfs_device=$m/"{q(name)}; fi; fi',
    ])


@dataclass(frozen=True)
class BinderfsAnswer:
    """What binderfs_script() found and did."""

    state: str  # none | mounted | mounted_here | mount_failed | "" (the script did not say)
    mount: str  # the binderfs directory ("" for none)
    errno_name: str  # the BINDER_CTL_ADD answer: "" (made), "EEXIST", another errno, or "not run"
    device: str  # the device's path when it is a character device after the call, else ""
    major: int | None = None
    minor: int | None = None
    why: str = ""  # the probe's error, or the lines that were not the script's, for a message

    @property
    def made(self) -> bool:
        return self.errno_name == "" and bool(self.device)

    @property
    def existed(self) -> bool:
        return self.errno_name == "EEXIST" and bool(self.device)


def parse_binderfs(text: str) -> BinderfsAnswer:
    """Read binderfs_script()'s output (tolerates \\r\\n and stray lines)."""
    state = mount = device = ""
    other = []
    lines = text.replace("\r", "").splitlines()
    for line in lines:
        line = line.strip()
        key, sep, value = line.partition("=")
        if sep and key == "binderfs" and not state:
            state, _, mount = value.partition(" ")
        elif sep and key == "binderfs_device":
            device = value
        elif line and not line.startswith("{"):
            other.append(line)
    out = parse_probe_output("\n".join(lines))
    result = out.one("result", name="binderfs_add")
    done = out.done
    if result is None:
        errno_name = "not run"
    else:
        errno_name = "" if not result.get("errno") else str(result.get("errno_name") or result.get("errno"))
    why = str(done.get("error") or "") if done and not done.get("ok") else ""
    return BinderfsAnswer(state, mount, errno_name, device,
                          result.get("major") if result else None, result.get("minor") if result else None,
                          why or " | ".join(other)[-200:])
