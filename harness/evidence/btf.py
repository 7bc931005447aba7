"""Struct layouts from BTF, the kernel's own type information (pure; no I/O).

A kprobe that reads a struct field (`+OFF($arg2)`) is only right for the layout it was
written against. The kernel under test describes its layouts itself: `/sys/kernel/btf/vmlinux`
(the base) and `/sys/kernel/btf/MODULE` (split BTF on top of the base: its type ids continue
after the base's, and a string offset below the base's `str_len` names a base string).
This module reads that raw format (include/uapi/linux/btf.h) and answers "at which byte
offset is MEMBER in struct NAME".
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Iterator

BTF_MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len

# kind -> bytes that follow the 12-byte btf_type, given vlen (include/uapi/linux/btf.h)
_KIND_EXTRA = {
    1: lambda v: 4,        # INT
    2: lambda v: 0,        # PTR
    3: lambda v: 12,       # ARRAY
    4: lambda v: 12 * v,   # STRUCT
    5: lambda v: 12 * v,   # UNION
    6: lambda v: 8 * v,    # ENUM
    7: lambda v: 0,        # FWD
    8: lambda v: 0,        # TYPEDEF
    9: lambda v: 0,        # VOLATILE
    10: lambda v: 0,       # CONST
    11: lambda v: 0,       # RESTRICT
    12: lambda v: 0,       # FUNC
    13: lambda v: 8 * v,   # FUNC_PROTO
    14: lambda v: 4,       # VAR
    15: lambda v: 12 * v,  # DATASEC
    16: lambda v: 0,       # FLOAT
    17: lambda v: 4,       # DECL_TAG
    18: lambda v: 0,       # TYPE_TAG
    19: lambda v: 12 * v,  # ENUM64
}
STRUCT, UNION, FUNC = 4, 5, 12


class BTFError(ValueError):
    """The bytes are not BTF this parser can read, or the type or member is not in them."""


@dataclass(frozen=True)
class Member:
    name: str
    bit_offset: int
    bitfield_size: int  # 0 when not a bitfield


@dataclass(frozen=True)
class Struct:
    name: str
    size: int
    members: tuple[Member, ...]

    def offset_of(self, member: str) -> int:
        """Byte offset of `member`; BTFError when absent or a bitfield not on a byte boundary."""
        for m in self.members:
            if m.name == member:
                if m.bit_offset % 8:
                    raise BTFError(f"struct {self.name}: {member} starts at bit {m.bit_offset}, not on a byte")
                return m.bit_offset // 8
        raise BTFError(f"struct {self.name} has no member {member!r} "
                       f"(it has {', '.join(m.name for m in self.members if m.name) or 'none'})")


@dataclass(frozen=True)
class _Header:
    types: bytes
    strings: bytes


def _sections(data: bytes, what: str) -> _Header:
    if len(data) < _HEADER.size:
        raise BTFError(f"{what}: {len(data)} bytes is too short for a BTF header")
    magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(data)
    if magic != BTF_MAGIC:
        raise BTFError(f"{what}: magic {magic:#06x} is not BTF's {BTF_MAGIC:#06x} (little-endian)")
    if version != 1:
        raise BTFError(f"{what}: BTF version {version}, this parser reads version 1")
    start = hdr_len
    if start + type_off + type_len > len(data) or start + str_off + str_len > len(data):
        raise BTFError(f"{what}: its sections run past its {len(data)} bytes (truncated?)")
    return _Header(data[start + type_off:start + type_off + type_len],
                   data[start + str_off:start + str_off + str_len])


def _string(strings: bytes, off: int, what: str) -> str:
    if off >= len(strings):
        raise BTFError(f"{what}: string offset {off} is past its {len(strings)}-byte string section")
    end = strings.find(b"\0", off)
    return strings[off:end if end >= 0 else len(strings)].decode(errors="replace")


def _split_strings(own: _Header, base: bytes | None, what: str) -> Callable[[int], str]:
    """The string at a name offset of `own`: split BTF's offsets below the base's string length
    are the base's strings (a module's BTF on vmlinux's)."""
    base_strings = _sections(base, f"{what} base").strings if base is not None else b""

    def string(off: int) -> str:
        if off < len(base_strings):
            return _string(base_strings, off, f"{what} base")
        return _string(own.strings, off - len(base_strings), what)

    return string


def _walk(types: bytes, what: str) -> Iterator[tuple[int, int, int, int, int]]:
    """Each type of a BTF type section: (kind, name offset, info, size/type, where its body starts)."""
    pos = 0
    while pos + 12 <= len(types):
        name_off, info, size = struct.unpack_from("<III", types, pos)
        kind = (info >> 24) & 0x1F
        extra = _KIND_EXTRA.get(kind)
        if extra is None:
            raise BTFError(f"{what}: unknown BTF kind {kind} at type byte {pos}")
        body = pos + 12
        pos = body + extra(info & 0xFFFF)
        if pos > len(types):
            raise BTFError(f"{what}: type section ends inside a type (truncated?)")
        yield kind, name_off, info, size, body


def function_names(data: bytes, base: bytes | None = None, what: str = "BTF") -> set[str]:
    """The names of the functions (BTF_KIND_FUNC) that raw BTF describes: on vmlinux, every
    kernel function with a body; with `base`, a module's split BTF on its kernel's, the
    module's own functions."""
    own = _sections(data, what)
    string = _split_strings(own, base, what)
    return {string(name_off) for kind, name_off, *_ in _walk(own.types, what) if kind == FUNC}


def find_struct(data: bytes, name: str, base: bytes | None = None, what: str = "BTF") -> Struct:
    """The struct (or union) `name` defined in `data`.

    `data` is raw BTF; with `base`, it is split BTF on top of `base` (a module's BTF on
    vmlinux's), and its string offsets below the base's string length are base strings.
    The struct must be defined in `data` itself (a module's own types are in its split BTF).
    """
    own = _sections(data, what)
    string = _split_strings(own, base, what)
    types = own.types
    for kind, name_off, info, size, body in _walk(types, what):
        vlen, kflag = info & 0xFFFF, info >> 31
        if kind not in (STRUCT, UNION) or name_off == 0 or string(name_off) != name:
            continue
        members = []
        for i in range(vlen):
            m_name, _m_type, m_off = struct.unpack_from("<III", types, body + 12 * i)
            bit_off, bits = (m_off & 0xFFFFFF, m_off >> 24) if kflag else (m_off, 0)
            members.append(Member(string(m_name) if m_name else "", bit_off, bits))
        if vlen == 0 and size == 0:
            continue  # a declaration-only stub; keep looking for the definition
        return Struct(name, size, tuple(members))
    raise BTFError(f"{what}: no struct {name}")


def member_offset(data: bytes, struct_name: str, member: str, base: bytes | None = None,
                  what: str = "BTF") -> int:
    """Byte offset of struct_name.member in raw (split) BTF `data`."""
    return find_struct(data, struct_name, base, what).offset_of(member)


def elf_section(data: bytes, name: str) -> bytes | None:
    """The contents of section `name` of a 64-bit little-endian ELF file (a .ko, a vmlinux), or None."""
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] != 2 or data[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if shoff == 0 or shoff + shnum * shentsize > len(data) or shstrndx >= shnum:
        return None

    def header(i: int) -> tuple[int, int, int]:
        name_off, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name_off, offset, size

    _, str_offset, str_size = header(shstrndx)
    names = data[str_offset:str_offset + str_size]
    for i in range(shnum):
        name_off, offset, size = header(i)
        end = names.find(b"\0", name_off)
        if names[name_off:end] == name.encode():
            return data[offset:offset + size]
    return None


def kernel_btf(kernel: bytes) -> bytes | None:
    """The vmlinux BTF a kernel file carries: an ELF vmlinux's .BTF section, or, in a raw
    image (an arm64 Image has no section table), the BTF blob inside it, found by its header:
    magic, version 1, a 24-byte header, types then strings, all inside the file."""
    section = elf_section(kernel, ".BTF")
    if section is not None:
        return section
    pos = kernel.find(b"\x9f\xeb\x01")
    while pos >= 0:
        if pos + _HEADER.size <= len(kernel):
            magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(kernel, pos)
            size = hdr_len + str_off + str_len
            if (magic, version, hdr_len, type_off) == (BTF_MAGIC, 1, _HEADER.size, 0) and str_off == type_len \
                    and type_len > 0 and str_len > 0 and pos + size <= len(kernel):
                return kernel[pos:pos + size]
        pos = kernel.find(b"\x9f\xeb\x01", pos + 1)
    return None


def gnu_build_id(notes: bytes) -> str | None:
    """The GNU build ID (hex) in ELF notes such as /sys/kernel/notes, or None."""
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from("<III", notes, pos)
        name_at = pos + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        end = desc_at + (descsz + 3) // 4 * 4
        if end > len(notes):
            return None
        if ntype == 3 and notes[name_at:name_at + namesz].rstrip(b"\0") == b"GNU" and descsz:
            return notes[desc_at:desc_at + descsz].hex()
        pos = end
    return None
