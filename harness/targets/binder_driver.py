"""Which binder driver the target runs: the C driver (drivers/android/binder.c) or the Rust
one (drivers/android/binder/, `rust_binder`), read from the target itself, with one shell round
trip that works the same over QEMU, ssh and adb.

The evidence, cheapest first: each driver's trace events in tracefs, `events/binder` (the C
driver's TRACE_SYSTEM, drivers/android/binder_trace.h) and `events/rust_binder` (the Rust one's,
drivers/android/binder/rust_binder_events.h), two `test -d`; only where tracefs shows neither,
the kernel's symbol table: the C driver's `binder_ioctl` (in vmlinux, or `[binder_linux]` as a
module), and the Rust driver's functions, whose mangled names carry its crate, e.g.
`_RNvMs3_NtCsbFXD6CMuNu5_11rust_binder10page_range...` (one grep over /proc/kallsyms took 5.9 s
under TCG on Debian's 7.3, hence last). A kernel that carries both (Android's common kernel, which
picks one with `binder.impl=` on the command line) is named by that parameter; without it, "c+rust".
"""
from __future__ import annotations

from dataclasses import dataclass

# tracefs's event directories; else one pass over /proc/kallsyms (names are readable without root).
DRIVER_SCRIPT = "; ".join([
    'for w in $(cat /proc/cmdline 2>/dev/null); do case "$w" in binder.impl=*) echo "cmdline=$w";; esac; done',
    "found=",
    "for t in /sys/kernel/tracing /sys/kernel/debug/tracing; do "
    "if [ -d $t/events/rust_binder ]; then echo events=rust_binder; found=1; fi; "
    "if [ -d $t/events/binder ]; then echo events=binder; found=1; fi; "
    '[ -n "$found" ] && break; done',
    'if [ -z "$found" ]; then '
    "grep -o -E '11rust_binder|[[:space:]]binder_ioctl([[:space:]]|$)' /proc/kallsyms 2>/dev/null | sort -u; "
    "echo kallsyms=$([ -r /proc/kallsyms ] && echo readable || echo unreadable); fi",
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
    impl = next((line.split("=", 2)[2] for line in lines if line.startswith("cmdline=binder.impl=")), "")
    if "events=rust_binder" in lines or "events=binder" in lines:
        rust, c = "events=rust_binder" in lines, "events=binder" in lines
        where, rust_is, c_is = "tracefs", "events/rust_binder", "events/binder"
    else:
        rust = any("rust_binder" in line for line in lines)
        c = any(line.startswith("binder_ioctl") for line in lines)
        where, rust_is, c_is = "/proc/kallsyms", "rust_binder functions", "binder_ioctl"
    if rust and c and impl in ("c", "rust"):
        return BinderDriver(impl, f"both in {where}; binder.impl={impl} on the kernel command line")
    if rust and c:
        return BinderDriver("c+rust", f"both in {where} ({rust_is} and {c_is}), no binder.impl= on the kernel command line")
    if rust:
        return BinderDriver("rust", f"{where}: {rust_is}, no {c_is}")
    if c:
        return BinderDriver("c", f"{where}: {c_is}, no {rust_is}")
    why = "/proc/kallsyms is not readable" if "kallsyms=unreadable" in lines else \
          "/proc/kallsyms has neither binder_ioctl nor rust_binder functions"
    return BinderDriver("unknown", why)
