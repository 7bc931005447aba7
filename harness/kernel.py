"""Facts read straight from kernel and module files: arch, release, vermagic.

Nothing here boots anything. It lets the harness refuse a mismatched kernel or
module before boot, with a message naming both sides.
"""
from __future__ import annotations

import lzma
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError

_ELF_MACHINES = {62: "x86_64", 183: "arm64", 3: "i386", 40: "arm"}
_VERSION_RE = re.compile(rb"Linux version (\S+) ")


@dataclass(frozen=True)
class KernelIdentity:
    arch: str  # "x86_64" or "arm64"
    release: str  # e.g. "6.1.0-57-amd64"
    kind: str  # "vmlinux", "bzImage" or "Image"


def extract_vmlinux(bzimage: bytes) -> bytes:
    """Return the ELF vmlinux embedded as an XZ stream in an x86 bzImage."""
    start = bzimage.find(b"\xfd7zXZ\x00")
    if start < 0:
        raise ConfigError("bzImage holds no XZ stream; pass a vmlinux or an XZ-compressed bzImage")
    decomp = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        elf = decomp.decompress(bzimage[start:])
    except lzma.LZMAError as exc:
        raise ConfigError(f"bzImage XZ stream is corrupt ({exc}); the kernel file is truncated or damaged") from None
    if not decomp.eof or not elf.startswith(b"\x7fELF"):
        raise ConfigError("bzImage XZ stream is truncated; the kernel file is incomplete")
    return elf


def identify_kernel(path: Path) -> KernelIdentity:
    """Tell the arch and release of a vmlinux, bzImage or arm64 Image."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--kernel {path}: cannot read ({exc.strerror})") from None
    if data.startswith(b"\x7fELF"):
        machine = struct.unpack_from("<H", data, 18)[0]
        arch, kind, text = _ELF_MACHINES.get(machine, f"elf-machine-{machine}"), "vmlinux", data
    elif len(data) > 0x206 and data[0x202:0x206] == b"HdrS":
        arch, kind = "x86_64", "bzImage"
        setup_sects = data[0x1F1] or 4
        vstart = struct.unpack_from("<H", data, 0x20E)[0] + 0x200
        text = data[vstart : vstart + 256]
        m = re.match(rb"(\S+) ", text)
        if m:
            release = m.group(1).decode()
            payload_end = (setup_sects + 1) * 512 + struct.unpack_from("<I", data, 0x1F4)[0] * 16
            if len(data) < payload_end:
                raise ConfigError(f"--kernel {path}: truncated bzImage ({len(data)} of {payload_end} bytes)")
            return KernelIdentity(arch, release, kind)
    elif len(data) > 0x40 and data[0x38:0x3C] == b"ARM\x64":
        arch, kind, text = "arm64", "Image", data
        image_size = struct.unpack_from("<Q", data, 0x10)[0]
        # image_size includes BSS, which the file does not carry; require the text to be there.
        if image_size and len(data) < image_size // 2:
            raise ConfigError(f"--kernel {path}: truncated arm64 Image ({len(data)} bytes, header says {image_size})")
    else:
        raise ConfigError(f"--kernel {path}: not a vmlinux, bzImage or arm64 Image")
    m = _VERSION_RE.search(text)
    if not m:
        raise ConfigError(f"--kernel {path}: no 'Linux version' string found; the file is truncated or not a kernel")
    return KernelIdentity(arch, m.group(1).decode(), kind)


def _elf_section(data: bytes, wanted: str) -> bytes | None:
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
        raw = _elf_section(data, ".modinfo")
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


def module_load_order(moddir: Path, wanted: list[str]) -> list[Path]:
    """Return .ko paths under moddir for `wanted` and their dependencies, deps first."""
    index = {p.name.removesuffix(".ko").replace("-", "_"): p for p in moddir.rglob("*.ko")}
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        key = name.replace("-", "_")
        if key in seen:
            return
        seen.add(key)
        if key not in index:
            raise ConfigError(f"module {name} not found under {moddir}")
        for dep in read_modinfo(index[key]).depends:
            visit(dep)
        order.append(index[key])

    for name in wanted:
        visit(name)
    return order
