"""QEMU's command line for a guest image, and how its process is started: to die with the
harness (PR_SET_PDEATHSIG), so no QEMU outlives it."""
from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

from harness.arches import GUEST_ARCHES
from harness.building.build import GuestImage
from harness.targets.accel import Accel

_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork: dlopen is not fork-safe


def die_with_parent() -> None:
    """Run in the QEMU child: get SIGKILL if the harness dies, so no QEMU outlives it.
    (Linux sends it when the thread that started QEMU ends; sessions stop their own guests.)"""
    _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def find_firmware(name: str, binary: str) -> str | None:
    """The path of a firmware file QEMU ships (e.g. qboot.rom), or None when this QEMU has none."""
    if not name:
        return None
    if os.path.isabs(name):
        return name if os.path.isfile(name) else None
    dirs = [Path(binary).resolve().parent.parent / "share" / "qemu", Path("/usr/share/qemu"), Path("/usr/local/share/qemu")]
    for d in dirs:
        if (d / name).is_file():
            return str(d / name)
    return None


def qemu_argv(binary: str, image: GuestImage, accel: Accel, share: Path, extra_args: tuple[str, ...]) -> list[str]:
    """Boot `image` under `accel`, its console on stdio, `share` exported over virtio-9p as `host`."""
    q = image.recipe.qemu
    machine = q.machine
    if accel.name == "kvm":
        extra = GUEST_ARCHES[image.recipe.arch].kvm_machine_options
        machine = f"{machine},{extra}" if extra else machine
        accel_args = ["-accel", "kvm", "-cpu", "host"]
    else:
        accel_args = ["-accel", "tcg", "-cpu", q.cpu]
    # A minimal firmware (qboot) reaches the kernel in about a tenth of SeaBIOS's time
    # under TCG; a QEMU without it boots with its default firmware, only slower.
    bios = find_firmware(q.bios, binary)
    return [
        binary, "-M", machine, *accel_args, "-m", str(q.memory_mb), "-smp", str(q.smp),
        *(["-bios", bios] if bios else []),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
        "-kernel", str(image.kernel), "-initrd", str(image.initramfs),
        "-append", image.recipe.cmdline,
        "-virtfs", f"local,path={share},mount_tag=host,security_model=none,id=host",
        *extra_args,
    ]
