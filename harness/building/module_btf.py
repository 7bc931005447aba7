"""A `--binder-module` without BTF gets it on the host, made from its own DWARF, before boot.

The kprobes that read `binder_buffer->user_data` are placed with the offset the kernel under
test describes in `/sys/kernel/btf/binder_linux` (harness/judging/layout.py). A module built
out of tree against a distribution's headers has no BTF: kbuild's Makefile.modfinal runs
`pahole -J --btf_base vmlinux` only when the tree has a vmlinux, and Debian's linux-headers
ship none. Its DWARF (kbuild's `-g` under CONFIG_DEBUG_INFO, Debian's config) still describes
every struct, so the harness takes that step itself, on a copy kept in the cache by content
(the user's file is never changed): `pahole -J` with kbuild's flags, split on the BTF of the
very kernel the guest boots (an x86_64 vmlinux's `.BTF`, the raw BTF inside an arm64 Image;
pahole reads a raw BTF base as it reads an ELF one, and makes the same bytes). The kernel
checks the split BTF against its own and loads it as the module's, so the offsets then come
from the guest as for any module. A module with neither BTF nor DWARF is refused here,
before anything boots, with the way to build it.
"""
from __future__ import annotations

import functools
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from harness.errors import ConfigError
from harness.evidence import btf
from harness.files import atomic_dir, cache_root
from harness.building.kernel import extract_vmlinux

MADE_BY = "module BTF made on the host from its DWARF by pahole"
CACHE_PART = "module-btf"
_RECIPE = b"module-btf 1\n"  # bump when the way the BTF is made changes


def pahole_flags(version: int) -> list[str]:
    """PAHOLE_FLAGS as kbuild gives them for pahole `version` (124 for 1.24): 6.1's
    scripts/pahole-flags.sh. Later kernels (Makefile.btf) give the same up to 1.24 and add
    only flags about functions beyond it, which no struct layout depends on."""
    flags = []
    if 118 <= version <= 121:
        flags.append("--skip_encoding_btf_vars")
    if version >= 121:
        flags.append("--btf_gen_floats")
    if version >= 122:
        flags.append("-j")
    if version >= 124:
        flags.append("--lang_exclude=rust")
    return flags


@functools.lru_cache(maxsize=None)
def pahole_version() -> int | None:
    """The host's pahole as kbuild counts it (v1.24 -> 124), or None when there is none."""
    exe = shutil.which("pahole")
    if exe is None:
        return None
    r = subprocess.run([exe, "--version"], capture_output=True, text=True)
    m = re.search(r"v?(\d+)\.(\d+)", r.stdout)
    return int(m.group(1)) * 100 + int(m.group(2)) if r.returncode == 0 and m else None


def kernel_base_btf(kernel: Path) -> bytes | None:
    """The vmlinux BTF of the kernel file the guest boots: a vmlinux's .BTF, the raw BTF in an
    arm64 Image, or that of the vmlinux inside a bzImage. None when it has none."""
    data = kernel.read_bytes()
    found = btf.kernel_btf(data)
    if found is None and len(data) > 0x202 and data[0x202:0x206] == b"HdrS":  # a bzImage's setup header
        try:
            found = btf.kernel_btf(extract_vmlinux(data))
        except ConfigError:
            return None
    return found


def has_btf(module: bytes) -> bool:
    return btf.elf_section(module, ".BTF") is not None


def has_dwarf(module: bytes) -> bool:
    return btf.elf_section(module, ".debug_info") is not None


@functools.lru_cache(maxsize=32)
def made_on_host(module: str) -> bool:
    """Whether the guest's BTF for the module at host path `module` is the harness's own
    (made by for_guest): the file has no BTF of its own but has DWARF."""
    try:
        data = Path(module).read_bytes()
    except OSError:
        return False
    return not has_btf(data) and has_dwarf(data)


def for_guest(module: Path, kernel: Path, flag: str = "--binder-module") -> Path:
    """The file to load in the guest for `module` on `kernel`: the module itself when it has
    BTF (or when the kernel has none to split on), else a cached copy with BTF made from its
    DWARF. ConfigError, one line, when it has neither BTF nor DWARF or pahole cannot make it."""
    data = module.read_bytes()
    if has_btf(data):
        return module
    if not has_dwarf(data):
        raise ConfigError(
            f"{flag} {module}: has no BTF and no DWARF (.debug_info), so nothing describes the struct offsets "
            f"the one-copy kprobes read; rebuild it with debug info (CONFIG_DEBUG_INFO, kbuild's -g) and do not "
            f"strip it, or add BTF yourself: pahole -J --btf_base VMLINUX {module.name}")
    base = kernel_base_btf(kernel)
    if base is None:
        return module  # the kernel has no BTF (CONFIG_DEBUG_INFO_BTF=n): it could not load the module's either
    version = pahole_version()
    if version is None:
        raise ConfigError(f"{flag} {module}: has no BTF; making it from its DWARF needs pahole: "
                          f"install Debian's dwarves (scripts/setup does)")
    flags = pahole_flags(version)
    key = hashlib.sha256(_RECIPE + f"pahole {version} {' '.join(flags)}\n".encode())
    key.update(hashlib.sha256(data).digest() + hashlib.sha256(base).digest())
    final = cache_root() / CACHE_PART / key.hexdigest()[:16]

    def make(tmp: Path) -> None:
        (tmp / "vmlinux.btf").write_bytes(base)
        out = tmp / module.name
        out.write_bytes(data)
        cmd = ["pahole", "-J", *flags, "--btf_base", str(tmp / "vmlinux.btf"), str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not has_btf(out.read_bytes()):
            why = (r.stderr or r.stdout).strip().splitlines()
            raise ConfigError(f"{flag} {module}: has no BTF, and pahole -J {' '.join(flags)} could not make it "
                              f"from its DWARF: {why[-1] if why else 'it wrote no .BTF section'}")
        (tmp / "vmlinux.btf").unlink()
        (tmp / "made-by").write_text(f"pahole -J {' '.join(flags)} --btf_base <the BTF of {kernel}> {module}\n")

    return atomic_dir(final, make) / module.name
