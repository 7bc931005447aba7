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

import shlex
from dataclasses import dataclass

from harness.targets.base import Target

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


# -- Rust functions in /proc/kallsyms ----------------------------------------------------------
# A Rust symbol is v0-mangled with a hash per build, e.g.
# `_RNvMNtCsbFXD6CMuNu5_11rust_binder10allocationNtB2_10Allocation9copy_into` for
# rust_binder::allocation::Allocation::copy_into: its path's pieces, each prefixed with its length,
# appear in order (a back-reference such as `B2_` stands for a repeated prefix, not for a piece
# that first appears), and a method's own name ends the symbol (a closure or a generic instance
# of it carries more after). One pass over /proc/kallsyms with a fixed string (`grep -F`, far
# faster under TCG than a regex) finds the candidates; the pieces are matched here.
RustPath = tuple[str, ...]


def rust_symbols_script(paths: tuple[RustPath, ...]) -> str:
    """Shell that prints the /proc/kallsyms lines that may name `paths` (grep -F on each last piece)."""
    patterns = " ".join(f"-e {shlex.quote(p[-1])}" for p in dict.fromkeys(paths))
    return f"grep -F {patterns} /proc/kallsyms 2>/dev/null; echo kallsyms=$?"


def match_rust_symbol(kallsyms: str, path: RustPath) -> list[str]:
    """The text symbols in `kallsyms` lines ("ADDR TYPE NAME [MODULE]") that name `path`."""
    found = []
    for line in kallsyms.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[1] not in "tTwW" or not parts[2].startswith("_R"):
            continue
        name, at = parts[2], 0
        for piece in path:
            at = name.find(piece, at)
            if at < 0 or name[at - 1].isdigit():  # "9copy_into" must not be the tail of "19copy_into"
                break
            at += len(piece)
        else:
            if name.endswith(path[-1]):
                found.append(name)
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class RustSymbol:
    path: RustPath
    symbol: str | None  # None: not found, or more than one
    why: str  # how it was found, or why not, one line

    def as_evidence(self) -> dict:
        return {"path": "::".join(p.lstrip("0123456789") for p in self.path), "symbol": self.symbol, "found": self.why}


def resolve_rust_symbols(kallsyms: str, paths: tuple[RustPath, ...]) -> dict[RustPath, RustSymbol]:
    """Each path's one symbol in the output of rust_symbols_script."""
    readable = "kallsyms=0" in kallsyms or "kallsyms=1" in kallsyms
    out = {}
    for path in paths:
        names = match_rust_symbol(kallsyms, path)
        if len(names) == 1:
            out[path] = RustSymbol(path, names[0], "/proc/kallsyms")
        elif names:
            out[path] = RustSymbol(path, None, f"/proc/kallsyms names it {len(names)} times: {', '.join(names[:3])}")
        else:
            why = "no such function in /proc/kallsyms (inlined, or another build)" if readable else \
                "/proc/kallsyms was not read"
            out[path] = RustSymbol(path, None, why)
    return out


# Looked up once per kernel build a process meets (a session's guests all boot one kernel;
# each restored guest has the same names, only KASLR moves their addresses, which a kprobe by
# name does not need).
_SYMBOLS: dict[tuple[str, str, str, RustPath], RustSymbol] = {}


def rust_symbols(target: Target, paths: tuple[RustPath, ...]) -> dict[RustPath, RustSymbol]:
    """The mangled names of Rust functions on `target`, from its /proc/kallsyms, cached per build."""
    info = target.info()
    key = (info.spec, info.kernel_release, info.build_id)
    todo = tuple(p for p in dict.fromkeys(paths) if key + (p,) not in _SYMBOLS)
    if todo:
        found = resolve_rust_symbols(target.run_shell(rust_symbols_script(todo), 60).output, todo)
        for p, sym in found.items():
            if sym.symbol is not None or "was not read" not in sym.why:
                _SYMBOLS[key + (p,)] = sym
        return {p: _SYMBOLS.get(key + (p,)) or found[p] for p in paths}
    return {p: _SYMBOLS[key + (p,)] for p in paths}
