"""The commands of binder's uapi header, include/uapi/linux/android/binder.h, read from its text.

Three kinds, each as the header declares it:
- `BC_*`: the entries of `enum binder_driver_command_protocol` (what user space writes);
- `BR_*`: the entries of `enum binder_driver_return_protocol` (what the driver returns);
- `BINDER_*` ioctls: the `#define BINDER_NAME _IO*('b', NR, TYPE)` lines.

A pure function over the header's text: no list of names is kept here. The numeric codes
(of the ioctls above all) depend on the sizes of the types they name, which only a C compiler knows for certain;
harness/building/uapi.py gets them from one (codes_program is the program it compiles).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_ENUMS = {"bc": "binder_driver_command_protocol", "br": "binder_driver_return_protocol"}
# NAME = _IOW('c', 3, TYPE) in an enum (an entry may span lines), or, for the ioctls,
# '#define NAME _IOW(...)' (6.1) or an entry of an anonymous enum (6.12 on)
_CODE = r"(_IO[RW]*)\s*\(\s*'(\w)'\s*,\s*(\d+)\s*(?:,\s*([^)]*?)\s*)?\)"
_ENTRY = re.compile(r"\b((?:BC|BR)_[A-Z0-9_]+)\s*=\s*" + _CODE)
_IOCTL = re.compile(r"(?:^#define\s+|\b)(BINDER_[A-Z0-9_]+)(?:\s*=\s*|[ \t]+)" + _CODE, re.M)
_COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


@dataclass(frozen=True)
class Command:
    """One command of the header: its name, family (bc, br, ioctl) and how it is encoded."""

    name: str
    family: str  # bc | br | ioctl
    macro: str  # _IO, _IOR, _IOW or _IOWR
    type_char: str  # 'c', 'r' or 'b'
    nr: int
    arg_type: str  # the C type whose size the code carries ("" for _IO)


@dataclass(frozen=True)
class UapiCommands:
    bc: tuple[Command, ...]
    br: tuple[Command, ...]
    ioctls: tuple[Command, ...]

    @property
    def all(self) -> tuple[Command, ...]:
        return self.bc + self.br + self.ioctls

    def names(self) -> list[str]:
        return [c.name for c in self.all]


class UapiError(ValueError):
    """The text is not binder's uapi header (an enum is missing or empty)."""


def _enum_body(text: str, name: str) -> str:
    m = re.search(r"enum\s+" + name + r"\s*\{(.*?)\}\s*;", text, re.S)
    if m is None:
        raise UapiError(f"no 'enum {name}' in the header")
    return m.group(1)


def _command(m: re.Match, family: str) -> Command:
    return Command(m.group(1), family, m.group(2), m.group(3), int(m.group(4)), " ".join((m.group(5) or "").split()))


def parse_binder_uapi(text: str) -> UapiCommands:
    """Every BC_*, BR_* and BINDER_* ioctl the header defines, in the header's order."""
    text = _COMMENTS.sub(" ", text)
    families: dict[str, tuple[Command, ...]] = {}
    for family, enum in _ENUMS.items():
        body = _enum_body(text, enum)
        found = tuple(_command(m, family) for m in _ENTRY.finditer(body))
        if not found:
            raise UapiError(f"'enum {enum}' has no {family.upper()}_* entries")
        families[family] = found
    ioctls = tuple(_command(m, "ioctl") for m in _IOCTL.finditer(text))
    if not ioctls:
        raise UapiError("no '#define BINDER_* _IO*(...)' ioctl in the header")
    return UapiCommands(families["bc"], families["br"], ioctls)


def codes_program(header_include: str, commands: UapiCommands) -> str:
    """A C program that prints 'NAME CODE' for every command of the header (compiled on the host:
    the generic _IOC encoding of x86 and arm is the same, and the protocol-8 structs have one
    layout on every ABI)."""
    lines = [f'#include "{header_include}"', "#include <stdio.h>", "int main(void)", "{"]
    lines += [f'\tprintf("%s %lu\\n", "{c.name}", (unsigned long){c.name});' for c in commands.all]
    lines += ["\treturn 0;", "}", ""]
    return "\n".join(lines)
