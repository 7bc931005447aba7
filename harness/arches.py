"""Every fact about a CPU architecture, declared once (in the spirit of KUnit's qemu_configs/).

Two tables: the probe ABIs (what the native probe is built for and runs as) and the
QEMU guest arches (what a recipe boots). Everything else in the harness derives its
arch knowledge from these; a new guest arch is one `GuestArch` entry plus a recipe.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class Abi:
    """A userspace ABI the probe is cross-built for, and the arch name it runs under."""

    name: str  # probe ABI: x86_64 | i386 | arm64 | armhf
    arch: str  # TargetInfo.arch of a device whose primary ABI this is
    compiler: str  # cross compiler on a Debian host
    packages: str  # Debian packages that provide it
    elf_machine: int  # e_machine of its ELF files (kernels and modules too)
    uname: tuple[str, ...]  # `uname -m` values of a CPU running it natively
    android: tuple[str, ...] = ()  # ro.product.cpu.abi values


ABIS: dict[str, Abi] = {a.name: a for a in (
    Abi("x86_64", "x86_64", "x86_64-linux-gnu-gcc", "gcc", 62, ("x86_64", "amd64"), ("x86_64",)),
    Abi("i386", "i386", "i686-linux-gnu-gcc", "gcc-i686-linux-gnu libc6-dev-i386-cross", 3,
        ("i386", "i486", "i586", "i686"), ("x86",)),
    Abi("arm64", "arm64", "aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu libc6-dev-arm64-cross", 183,
        ("aarch64", "arm64"), ("arm64-v8a",)),
    Abi("armhf", "arm", "arm-linux-gnueabihf-gcc", "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross", 40,
        ("armv8l", "armv7l", "armv7", "armv6l"), ("armeabi-v7a", "armeabi")),
)}


@dataclass(frozen=True)
class GuestArch:
    """An arch a QEMU guest boots: its ABIs, Debian arch, QEMU and KVM settings."""

    name: str  # qemu:NAME, recipe `arch:`
    native_abi: str  # key of ABIS
    compat_abi: str | None  # the 32-bit ABI its kernel runs through CONFIG_COMPAT, if any
    debian_arch: str  # Debian's name for it (.deb architecture)
    qemu_binary: str
    kernel_kind: str  # what its bootable kernel file is: vmlinux (x86 PVH) or Image (arm64)
    kvm_machine_options: str = ""  # appended to -M under KVM (the host's GIC on arm64)

    @property
    def uname(self) -> tuple[str, ...]:
        return ABIS[self.native_abi].uname

    @property
    def elf_machine(self) -> int:
        return ABIS[self.native_abi].elf_machine


GUEST_ARCHES: dict[str, GuestArch] = {g.name: g for g in (
    GuestArch("x86_64", "x86_64", "i386", "amd64", "qemu-system-x86_64", "vmlinux"),
    GuestArch("arm64", "arm64", "armhf", "arm64", "qemu-system-aarch64", "Image", kvm_machine_options="gic-version=max"),
)}


DEFAULT_ARCH = "x86_64"  # qemu:x86_64 is the default target


def arch_of_uname(machine: str) -> str:
    """`uname -m` -> TargetInfo.arch (x86_64, i386, arm64, arm); unknown values pass through."""
    for abi in ABIS.values():
        if machine in abi.uname:
            return abi.arch
    return machine or "unknown"


def host_arch() -> str:
    """The arch name of the machine running the harness."""
    return arch_of_uname(platform.machine())


def abi_for(arch: str, compat: bool = False) -> str | None:
    """The probe ABI for a target arch (x86_64, i386, arm64, arm), or its 32-bit compat ABI."""
    if compat:
        guest = GUEST_ARCHES.get(arch)
        return guest.compat_abi if guest else None
    return next((a.name for a in ABIS.values() if a.arch == arch), None)
