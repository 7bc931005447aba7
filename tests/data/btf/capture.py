"""Capture a kernel's binder_linux BTF for the parser's tests (run by hand; see README.md).

    python tests/data/btf/capture.py NAME MODULE.ko KERNEL   # vmlinux ELF, or an arm64 Image

writes NAME.binder_linux.btf (the module's .BTF section, as /sys/kernel/btf/binder_linux
serves it) and NAME.vmlinux-strings.btf.gz: the kernel's BTF header with no types and its
string section kept at full length, every byte zeroed except the strings the module's split
BTF names (a base a few KB in size instead of 4-5 MB, with every offset where it was).
"""
import gzip
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from harness.evidence import btf  # noqa: E402


def kernel_btf(data: bytes) -> bytes:
    section = btf.elf_section(data, ".BTF")
    if section is not None:
        return section
    # an arm64 Image: .BTF is embedded; find a version-1 header of 24 bytes with types first
    pos = 0
    while (pos := data.find(b"\x9f\xeb\x01\x00\x18\x00\x00\x00", pos + 1)) >= 0:
        _m, _v, _f, hdr, t_off, t_len, s_off, s_len = struct.unpack_from("<HBBIIIII", data, pos)
        if t_off == 0 and s_off == t_len and t_len > 1_000_000:
            return data[pos:pos + hdr + s_off + s_len]
    raise SystemExit("no BTF in the kernel file")


def name_offsets(mod: bytes):
    _m, _v, _f, hdr, t_off, t_len, _s_off, _s_len = struct.unpack_from("<HBBIIIII", mod)
    types = mod[hdr + t_off:hdr + t_off + t_len]
    pos = 0
    while pos < len(types):
        name_off, info, _size = struct.unpack_from("<III", types, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        yield name_off
        body, pos = pos + 12, pos + 12 + btf._KIND_EXTRA[kind](vlen)
        stride = {4: 12, 5: 12, 6: 8, 13: 8, 19: 12}.get(kind)
        if stride:
            for i in range(vlen):
                yield struct.unpack_from("<I", types, body + stride * i)[0]


def main() -> None:
    name, ko, kernel = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    mod = btf.elf_section(ko.read_bytes(), ".BTF")
    base = kernel_btf(kernel.read_bytes())
    _m, _v, _f, hdr, _t_off, _t_len, s_off, s_len = struct.unpack_from("<HBBIIIII", base)
    strings = base[hdr + s_off:hdr + s_off + s_len]
    sparse = bytearray(s_len)
    for off in name_offsets(mod):
        if 0 < off < s_len:
            end = strings.index(b"\0", off)
            sparse[off:end] = strings[off:end]
    out = Path(__file__).parent
    (out / f"{name}.binder_linux.btf").write_bytes(mod)
    header = struct.pack("<HBBIIIII", btf.BTF_MAGIC, 1, 0, 24, 0, 0, 0, s_len)
    (out / f"{name}.vmlinux-strings.btf.gz").write_bytes(gzip.compress(header + bytes(sparse), 9, mtime=0))


if __name__ == "__main__":
    main()
