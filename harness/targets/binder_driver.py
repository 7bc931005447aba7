"""Which binder driver the target runs: the C driver (drivers/android/binder.c) or the Rust
one (drivers/android/binder/, `rust_binder`), read from the target itself, with one shell round
trip that works the same over QEMU, ssh and adb.

The evidence is the kernel's own symbol table: the C driver's `binder_ioctl` (in vmlinux, or
`[binder_linux]` as a module), and the Rust driver's functions, whose mangled names carry its
crate, e.g. `_RNvMs3_NtCsbFXD6CMuNu5_11rust_binder10page_range...`. A kernel that carries both
(Android's common kernel, which picks one with `binder.impl=` on the command line) is named by
that parameter; without it, "c+rust".
"""
from __future__ import annotations

from dataclasses import dataclass

# One pass over /proc/kallsyms (names are readable without root; only addresses are hidden).
DRIVER_SCRIPT = "; ".join([
    'for w in $(cat /proc/cmdline 2>/dev/null); do case "$w" in binder.impl=*) echo "cmdline=$w";; esac; done',
    "grep -o -E '11rust_binder|[[:space:]]binder_ioctl([[:space:]]|$)' /proc/kallsyms 2>/dev/null | sort -u",
    "echo kallsyms=$([ -r /proc/kallsyms ] && echo readable || echo unreadable)",
])


@dataclass(frozen=True)
class BinderDriver:
    name: str  # "c", "rust", "c+rust" (both built, none chosen on the command line) or "unknown"
    evidence: str  # what it was read from, one line

    def as_json(self) -> dict:
        return {"driver": self.name, "driver_evidence": self.evidence}


def parse_driver(text: str) -> BinderDriver:
    """DRIVER_SCRIPT's output as the driver it names."""
    lines = [line.strip() for line in text.replace("\r", "").splitlines()]
    rust = any("rust_binder" in line for line in lines)
    c = any(line == "binder_ioctl" or line.startswith("binder_ioctl") for line in lines)
    impl = next((line.split("=", 2)[2] for line in lines if line.startswith("cmdline=binder.impl=")), "")
    if rust and c and impl in ("c", "rust"):
        return BinderDriver(impl, f"both in /proc/kallsyms; binder.impl={impl} on the kernel command line")
    if rust and c:
        return BinderDriver("c+rust", "both in /proc/kallsyms (rust_binder functions and binder_ioctl), "
                                      "no binder.impl= on the kernel command line")
    if rust:
        return BinderDriver("rust", "/proc/kallsyms: rust_binder functions, no binder_ioctl")
    if c:
        return BinderDriver("c", "/proc/kallsyms: binder_ioctl, no rust_binder functions")
    why = "/proc/kallsyms is not readable" if "kallsyms=unreadable" in lines else \
          "/proc/kallsyms has neither binder_ioctl nor rust_binder functions"
    return BinderDriver("unknown", why)
