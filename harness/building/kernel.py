"""Facts read straight from kernel and module files: arch, release, vermagic.

Nothing here boots anything. It lets the harness refuse a mismatched kernel or
module before boot, with a message naming both sides.
"""
from __future__ import annotations

import gzip
import lzma
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import zstandard

from harness.arches import ABIS
from harness.errors import ConfigError

_ELF_MACHINES = {abi.elf_machine: abi.arch for abi in ABIS.values()}
_VERSION_RE = re.compile(rb"Linux version (\S+) ")


@dataclass(frozen=True)
class KernelIdentity:
    arch: str  # "x86_64" or "arm64"
    release: str  # e.g. "6.1.0-57-amd64"
    kind: str  # "vmlinux", "bzImage" or "Image"


_PAYLOAD_MAGIC = {
    b"\xfd7zXZ\x00": "xz", b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd",
    b"\x02\x21\x4c\x18": "lz4", b"\x5d\x00": "lzma", b"BZh": "bzip2", b"\x89LZO": "lzo",
}


def bzimage_payload(bzimage: bytes) -> tuple[str, bytes]:
    """Return (compression, compressed vmlinux) from an x86 bzImage's setup header."""
    setup_sects = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = bzimage[start : start + length]
    if not length or len(payload) < length:
        raise ConfigError(f"bzImage payload is cut short ({len(payload)} of {length} bytes); the kernel file is truncated")
    kind = next((name for magic, name in _PAYLOAD_MAGIC.items() if payload.startswith(magic)), "unknown")
    return kind, payload


def extract_vmlinux(bzimage: bytes) -> bytes:
    """Return the ELF vmlinux inside an xz-, gzip- or zstd-compressed x86 bzImage (Debian
    bookworm's 6.1 uses xz, trixie's 6.12 and later zstd)."""
    kind, payload = bzimage_payload(bzimage)
    decomp: Any
    if kind == "xz":
        decomp = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elif kind == "gzip":
        decomp = zlib.decompressobj(31)
    elif kind == "zstd":
        decomp = zstandard.ZstdDecompressor().decompressobj()
    else:
        raise ConfigError(f"bzImage payload is {kind}-compressed; only xz, gzip and zstd can be unpacked here")
    try:
        elf = decomp.decompress(payload)
    except (lzma.LZMAError, zlib.error, zstandard.ZstdError) as exc:
        raise ConfigError(f"bzImage {kind} stream is corrupt ({exc}); the kernel file is truncated or damaged") from None
    if not decomp.eof or not elf.startswith(b"\x7fELF"):
        raise ConfigError(f"bzImage {kind} stream is truncated; the kernel file is incomplete")
    return elf


_MODULE_COMPRESSION: dict[str, Callable[[bytes], bytes]] = {
    ".xz": lzma.decompress, ".gz": gzip.decompress,
    ".zst": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}


def unpack_modules(moddir: Path) -> int:
    """Decompress every .ko.xz, .ko.zst and .ko.gz under moddir into a plain .ko beside it
    (Debian compresses its modules with xz from trixie's 6.12 on; busybox insmod and the
    .modinfo reader want ELF). Returns how many were unpacked."""
    count = 0
    for path in list(moddir.rglob("*.ko.*")):
        unpack = _MODULE_COMPRESSION.get(path.suffix)
        if unpack is None:
            continue
        try:
            data = unpack(path.read_bytes())
        except (lzma.LZMAError, OSError, EOFError, zstandard.ZstdError) as exc:
            raise ConfigError(f"{path}: cannot decompress module ({exc})") from None
        path.with_suffix("").write_bytes(data)
        path.unlink()
        count += 1
    return count


def has_pvh_note(elf: bytes) -> bool:
    """True when an x86 vmlinux carries the Xen PHYS32_ENTRY note that PVH boot needs."""
    if not elf.startswith(b"\x7fELF") or elf[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == 18:  # XEN_ELFNOTE_PHYS32_ENTRY
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def _elf_file_end(data: bytes) -> int:
    """Bytes an ELF file must hold: the end of its last loadable segment or section table."""
    is64 = data[4] == 2
    if is64:
        phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
        fmt = "<IIQQQQ"
    else:
        phoff, shoff = struct.unpack_from("<II", data, 0x1C)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x2A)
        fmt = "<IIIIII"
    end = max(phoff + phentsize * phnum, shoff + shentsize * shnum if shoff else 0)
    for i in range(phnum):
        base = phoff + i * phentsize
        if base + phentsize > len(data):
            return end
        if is64:
            _t, _f, off, _va, _pa, filesz = struct.unpack_from(fmt, data, base)
        else:
            _t, off, _va, _pa, filesz, _m = struct.unpack_from(fmt, data, base)
        end = max(end, off + filesz)
    return end


def _pe_file_end(data: bytes) -> int:
    """Bytes an arm64 Image with an EFI (PE/COFF) header must hold: the end of its last section."""
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    if data[pe : pe + 4] != b"PE\0\0":
        return 0
    nsec, = struct.unpack_from("<H", data, pe + 6)
    optsz, = struct.unpack_from("<H", data, pe + 20)
    table = pe + 24 + optsz
    end = 0
    for i in range(nsec):
        if table + 40 * (i + 1) > len(data):
            return table + 40 * nsec
        rawsz, rawptr = struct.unpack_from("<II", data, table + 40 * i + 16)
        end = max(end, rawptr + rawsz)
    return end


def identify_kernel(path: Path, flag: str = "--kernel") -> KernelIdentity:
    """Tell the arch and release of a vmlinux, bzImage or arm64 Image; refuse truncated files."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: cannot read ({exc.strerror})") from None
    if data.startswith(b"\x7fELF") and len(data) > 0x40:
        machine = struct.unpack_from("<H", data, 18)[0]
        arch, kind, text = _ELF_MACHINES.get(machine, f"elf-machine-{machine}"), "vmlinux", data
        need = _elf_file_end(data)
        if len(data) < need:
            raise ConfigError(f"{flag} {path}: truncated vmlinux ({len(data)} of {need} bytes); copy the kernel file again")
    elif len(data) > 0x250 and data[0x202:0x206] == b"HdrS":
        arch, kind = "x86_64", "bzImage"
        setup_sects = data[0x1F1] or 4
        vstart = struct.unpack_from("<H", data, 0x20E)[0] + 0x200
        text = data[vstart : vstart + 256]
        m = re.match(rb"(\S+) ", text)
        if m:
            release = m.group(1).decode()
            payload_end = (setup_sects + 1) * 512 + struct.unpack_from("<I", data, 0x1F4)[0] * 16
            if len(data) < payload_end:
                raise ConfigError(f"{flag} {path}: truncated bzImage ({len(data)} of {payload_end} bytes); copy the kernel file again")
            return KernelIdentity(arch, release, kind)
    elif len(data) > 0x40 and data[0x38:0x3C] == b"ARM\x64":
        arch, kind, text = "arm64", "Image", data
        need = _pe_file_end(data) if data.startswith(b"MZ") else 0
        image_size = struct.unpack_from("<Q", data, 0x10)[0]
        # image_size includes BSS, which the file does not carry; without a PE header, require half.
        need = need or image_size // 2
        if len(data) < need:
            raise ConfigError(f"{flag} {path}: truncated arm64 Image ({len(data)} of {need} bytes); copy the kernel file again")
    elif data.startswith(b"\x1f\x8b"):
        raise ConfigError(f"{flag} {path}: gzip-compressed; pass the uncompressed Image (gunzip it) or the bzImage")
    else:
        raise ConfigError(f"{flag} {path}: not a vmlinux, bzImage or arm64 Image")
    m = _VERSION_RE.search(text)
    if not m:
        raise ConfigError(f"{flag} {path}: no 'Linux version' string found; the file is truncated or not a kernel")
    return KernelIdentity(arch, m.group(1).decode(), kind)


def elf_section(data: bytes, wanted: str) -> bytes | None:
    """Return the bytes of the ELF section named `wanted` (32- or 64-bit, LE)."""
    if not data.startswith(b"\x7fELF"):
        return None
    is64 = data[4] == 2
    if is64:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    else:
        shoff, = struct.unpack_from("<I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)

    def section(i: int) -> tuple[int, int, int]:
        base = shoff + i * shentsize
        if is64:
            name, _type, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", data, base)
        else:
            name, _type, _flags, _addr, off, size = struct.unpack_from("<IIIIII", data, base)
        return name, off, size

    _, stroff, strsize = section(shstrndx)
    names = data[stroff : stroff + strsize]
    for i in range(shnum):
        name_off, off, size = section(i)
        name = names[name_off : names.index(b"\0", name_off)].decode()
        if name == wanted:
            return data[off : off + size]
    return None


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    arch: str
    vermagic: str
    depends: tuple[str, ...]

    @property
    def release(self) -> str:
        return self.vermagic.split()[0] if self.vermagic else ""


def read_modinfo(path: Path) -> ModuleInfo:
    """Read name, arch, vermagic and depends from a .ko file's .modinfo section."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read module ({exc.strerror})") from None
    if not data.startswith(b"\x7fELF"):
        raise ConfigError(f"{path}: not an ELF kernel module")
    try:
        raw = elf_section(data, ".modinfo")
    except (struct.error, ValueError):
        raw = None
    if raw is None:
        raise ConfigError(f"{path}: no .modinfo section; not a kernel module or truncated")
    fields: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep and key not in fields:
            fields[key] = value
    machine = struct.unpack_from("<H", data, 18)[0]
    deps = tuple(d for d in fields.get("depends", "").split(",") if d)
    name = fields.get("name", path.name.removesuffix(".ko"))
    return ModuleInfo(name, _ELF_MACHINES.get(machine, str(machine)), fields.get("vermagic", ""), deps)


@dataclass(frozen=True)
class ModulePlan:
    load: tuple[Path, ...]  # .ko files in load order, dependencies first
    builtin: tuple[str, ...]  # wanted modules that modules.builtin lists
    assumed_builtin: tuple[str, ...]  # wanted modules absent, with no modules.builtin to ask


def builtin_modules(moddir: Path) -> set[str] | None:
    """Names listed in moddir/modules.builtin, or None when the tree has no such file."""
    path = moddir / "modules.builtin"
    if not path.is_file():
        return None
    return {Path(line.strip()).name.removesuffix(".ko").replace("-", "_")
            for line in path.read_text(errors="replace").splitlines() if line.strip()}


def _module_index(moddir: Path, wanted: list[str]) -> dict[str, Path]:
    """{module name: .ko path}. modules.order (written by `make modules_install`, shipped in
    Debian's packages) names every module without walking the tree, which takes 0.1 s
    for 4000 files; any miss falls back to the walk, so a .ko dropped in by hand is found."""
    def key(p: Path) -> str:
        return p.name.removesuffix(".ko").replace("-", "_")

    order = moddir / "modules.order"
    if order.is_file():
        index = {}
        for line in order.read_text(errors="replace").splitlines():
            if line.strip().endswith(".ko"):
                path = moddir / line.strip()
                index[key(path)] = path
        todo = [w.replace("-", "_") for w in wanted]
        seen: set[str] = set()
        complete = True
        while todo and complete:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            found = index.get(name)
            if found is None or not found.is_file():
                complete = False
                break
            todo.extend(d.replace("-", "_") for d in read_modinfo(found).depends)
        if complete:
            return index
    return {key(p): p for p in moddir.rglob("*.ko")}


def plan_modules(moddir: Path, wanted: list[str]) -> ModulePlan:
    """Which .ko files to load for `wanted`, deps first; absent ones must be built in.

    A wanted module missing from moddir is fine when modules.builtin lists it; a
    tree without modules.builtin (e.g. a directory holding only binder_linux.ko)
    is trusted to mean the rest is built into the kernel.
    """
    index = _module_index(moddir, wanted)
    builtin = builtin_modules(moddir)
    order: list[Path] = []
    seen: set[str] = set()
    found_builtin: list[str] = []
    assumed: list[str] = []

    def visit(name: str, needed_by: str | None) -> None:
        key = name.replace("-", "_")
        if key in seen:
            return
        seen.add(key)
        if key not in index:
            if builtin is not None and key in builtin:
                found_builtin.append(key)
                return
            if builtin is None and needed_by is None:
                assumed.append(key)
                return
            why = f" (needed by {needed_by})" if needed_by else ""
            raise ConfigError(f"module {name}{why} is neither under {moddir} nor listed in its modules.builtin")
        for dep in read_modinfo(index[key]).depends:
            visit(dep, key)
        order.append(index[key])

    for name in wanted:
        visit(name, None)
    return ModulePlan(tuple(order), tuple(found_builtin), tuple(assumed))


def module_load_order(moddir: Path, wanted: list[str]) -> list[Path]:
    """Return .ko paths under moddir for `wanted` and their dependencies, deps first."""
    return list(plan_modules(moddir, wanted).load)
