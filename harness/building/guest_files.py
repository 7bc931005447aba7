"""Extra files for a guest image, from pinned Debian packages in a recipe section.

A recipe's `ssh:` and `trace_cmd:` sections pin Debian packages (dropbear and its SFTP
server; trace-cmd) for the guest arch. Their binaries, the shared libraries those need
(resolved from ELF DT_NEEDED entries, transitively) and the ELF interpreter become
initramfs entries, cached by the packages' identity.
"""
from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from harness.building import debian, fetch
from harness.errors import ConfigError
from harness.files import atomic_dir, cache_root
from harness.building.packages import fetch_for
from harness.building.kernel import elf_section
from harness.building.recipes import DebianPackage, Recipe, recipe_data

# dropbear-bin's compiled-in paths on Debian (checked with `strings`): host keys and sftp-server.
HOST_KEY = "/etc/dropbear/dropbear_ed25519_host_key"
SFTP_SERVER = "usr/lib/sftp-server"
BINARIES = {"usr/sbin/dropbear": "usr/sbin/dropbear", "usr/bin/dropbearkey": "usr/bin/dropbearkey",
            "usr/lib/openssh/sftp-server": SFTP_SERVER}
ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "etc/shells": "/bin/sh\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
}


@dataclass(frozen=True)
class PackageSection:
    """A recipe section of pinned Debian packages (and extra modules) for an optional guest tool."""

    packages: tuple[DebianPackage, ...]
    modules: tuple[str, ...]
    mirrors: tuple[str, ...] = ()  # extra "URL SUITE..." sources, added to the recipe's or the defaults


SshRecipe = PackageSection


def load_package_section(recipe: Recipe, key: str, purpose: str) -> PackageSection:
    """The recipe's `key:` section (inherited through `extends:` too): pinned packages and modules."""
    where = f"{recipe.path}: {key}"
    section = recipe_data(recipe.path).get(key)
    if not isinstance(section, dict):
        raise ConfigError(f"{recipe.path}: no '{key}' section; this recipe cannot {purpose}")
    pkgs = section.get("packages")
    mods = section.get("modules", [])
    if not isinstance(pkgs, list) or not all(isinstance(p, dict) and "debian_package" in p and "version" in p for p in pkgs):
        raise ConfigError(f"{where}: 'packages' must be a list of {{debian_package, version}}")
    if not isinstance(mods, list) or not all(isinstance(m, str) for m in mods):
        raise ConfigError(f"{where}: 'modules' must be a list of module names")
    mirrors = section.get("mirrors", [])
    if not isinstance(mirrors, list) or not all(isinstance(m, str) and len(m.split()) >= 2 for m in mirrors):
        raise ConfigError(f"{where}: 'mirrors' must be a list of 'URL SUITE [SUITE ...]' strings")
    return PackageSection(tuple(DebianPackage(str(p["debian_package"]), str(p["version"])) for p in pkgs), tuple(mods),
                          tuple(mirrors))


def section_sources(recipe: Recipe, section: PackageSection) -> tuple[str, ...]:
    """Where the section's packages come from: the recipe's mirrors (or Debian's defaults), plus
    the section's own (bookworm-backports for adbd). BINDER_HARNESS_DEBIAN_MIRROR still wins."""
    if not section.mirrors:
        return recipe.mirrors
    return (recipe.mirrors or fetch.DEFAULT_SOURCES) + section.mirrors


def load_ssh_recipe(recipe: Recipe) -> SshRecipe:
    """The recipe's `ssh:` section: pinned Debian packages and extra modules."""
    return load_package_section(recipe, "ssh", "make an ssh-reachable guest")


# -- ELF: what a dynamic binary needs ------------------------------------------------
def elf_interp(data: bytes) -> str | None:
    raw = elf_section(data, ".interp")
    return raw.rstrip(b"\0").decode() if raw else None


def elf_needed(data: bytes) -> list[str]:
    """DT_NEEDED sonames of a 64-bit little-endian ELF file (both guest arches)."""
    dynamic, dynstr = elf_section(data, ".dynamic"), elf_section(data, ".dynstr")
    if not dynamic or not dynstr:
        return []
    needed = []
    for off in range(0, len(dynamic) - 15, 16):
        tag, val = struct.unpack_from("<qQ", dynamic, off)
        if tag == 0:
            break
        if tag == 1:  # DT_NEEDED
            needed.append(dynstr[val : dynstr.index(b"\0", val)].decode())
    return needed


def _deb_tree(deb: Path) -> dict[str, bytes | str]:
    """path -> file bytes, or the target path (str) of a symlink, for one .deb."""
    tree: dict[str, bytes | str] = {}
    with debian.deb_data_tar(deb) as tar:
        for member in tar:
            name = member.name.lstrip("./")
            if member.isfile():
                src = tar.extractfile(member)
                assert src is not None
                tree[name] = src.read()
            elif member.issym():
                link = member.linkname
                tree[name] = link.lstrip("/") if link.startswith("/") else os.path.normpath(os.path.join(os.path.dirname(name), link))
    return tree


def _resolve(tree: dict[str, bytes | str], path: str) -> bytes | None:
    for _ in range(10):
        item = tree.get(path)
        if isinstance(item, bytes) or item is None:
            return item
        path = item
    return None


def binary_files(recipe: Recipe, section: PackageSection, binaries: dict[str, str], key: str,
                 progress=print) -> list[tuple[str, bytes, int]]:
    """The `binaries` ({path in the packages: guest path}) of the section's packages, the shared
    libraries they need (DT_NEEDED, transitively) and their ELF interpreter, as initramfs entries.
    Cached under `key` (the section's name) and the packages' identity."""
    digest = hashlib.sha256(repr((recipe.deb_arch, section.packages, sorted(binaries.items()))).encode()).hexdigest()[:16]

    def build(tmp: Path) -> None:
        tree: dict[str, bytes | str] = {}
        sources = section_sources(recipe, section)
        for pkg in section.packages:
            tree.update(_deb_tree(fetch_for(recipe, pkg, progress, sources)))
        libs: dict[str, str] = {}
        for path in tree:
            parts = path.split("/")
            # usr/lib/<triplet>/libX.so.N, and Debian's private android/ directory beside it
            in_triplet = len(parts) >= 2 and parts[-2].endswith("-linux-gnu")
            in_android = len(parts) >= 3 and parts[-3].endswith("-linux-gnu") and parts[-2] == "android"
            if (in_triplet or in_android) and ".so" in parts[-1]:
                libs.setdefault(parts[-1], path)
        out: dict[str, bytes] = {}
        todo: list[bytes] = []
        for src, dest in binaries.items():
            data = _resolve(tree, src)
            if data is None:
                raise ConfigError(f"{recipe.path}: {key} packages provide no {src}")
            out[dest] = data
            todo.append(data)
        interp = elf_interp(todo[0])
        if interp is None:
            raise ConfigError(f"{recipe.path}: {next(iter(binaries))} has no ELF interpreter; wrong package?")
        done: set[str] = set()
        while todo:
            for soname in elf_needed(todo.pop()):
                if soname in done:
                    continue
                done.add(soname)
                data = _resolve(tree, libs[soname]) if soname in libs else None
                if data is None:
                    raise ConfigError(f"{recipe.path}: no package in the {key} section provides {soname}; add it")
                out[f"{libs[soname].rsplit('/', 1)[0].lstrip('/').replace('usr/lib/', 'lib/')}/{soname}"] = data
                todo.append(data)
        ld = _resolve(tree, interp.lstrip("/"))
        if ld is None:
            raise ConfigError(f"{recipe.path}: no package in the {key} section provides the interpreter {interp}")
        out[interp.lstrip("/")] = ld
        for name, data in out.items():
            file = tmp / name
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data)

    root = atomic_dir(cache_root() / f"{key}-files" / f"{recipe.name}-{digest}", build)
    return [(str(p.relative_to(root)), p.read_bytes(), 0o755) for p in sorted(root.rglob("*")) if p.is_file()]


def ssh_files(recipe: Recipe, ssh: SshRecipe, progress=print) -> list[tuple[str, bytes, int]]:
    """dropbear, dropbearkey, sftp-server, their libraries and /etc files, as initramfs entries (cached)."""
    files = binary_files(recipe, ssh, BINARIES, "ssh", progress)
    files += [(name, text.encode(), 0o644) for name, text in ETC_FILES.items()]
    return files


# Debian's trace-cmd, for `run --trace-dat`: `trace-cmd extract` writes each case's trace.dat in the
# guest. It goes to /bin, which is on the guest's PATH (images/guest-init.sh).
TRACE_CMD = {"usr/bin/trace-cmd": "bin/trace-cmd"}


def trace_cmd_files(recipe: Recipe, progress=print) -> tuple[list[tuple[str, bytes, int]], tuple[str, ...]]:
    """trace-cmd and its libraries from the recipe's `trace_cmd:` section, as initramfs entries
    (cached), and the section's extra modules."""
    section = load_package_section(recipe, "trace_cmd", "add trace-cmd to the guest (--trace-dat)")
    return binary_files(recipe, section, TRACE_CMD, "trace_cmd", progress), section.modules


# Debian's adbd, for `binder-harness guest --adb-port`: the daemon, its android-* libraries (in
# the private lib/<triplet>/android directory) and the rest it needs, from the recipe's `adb:`
# section. ADBD is its guest path; ANDROID_LIBS is the directory given as LD_LIBRARY_PATH.
ADBD = "usr/sbin/adbd"
ADBD_BINARIES = {"usr/lib/android-sdk/platform-tools/adbd": ADBD}


def load_adb_recipe(recipe: Recipe) -> PackageSection:
    """The recipe's `adb:` section: pinned Debian packages (adbd from bookworm-backports), modules."""
    return load_package_section(recipe, "adb", "make an adb-reachable guest")


def adb_files(recipe: Recipe, section: PackageSection, progress=print) -> list[tuple[str, bytes, int]]:
    """adbd, its libraries and the /etc files a shell wants, as initramfs entries (cached)."""
    files = binary_files(recipe, section, ADBD_BINARIES, "adb", progress)
    etc = dict(ETC_FILES)
    # Android's unprivileged `shell` user (uid 2000), for running an adbd without root (tests)
    etc["etc/passwd"] += "shell:x:2000:2000:shell:/data/local/tmp:/bin/sh\n"
    etc["etc/group"] += "shell:x:2000:\n"
    files += [(name, text.encode(), 0o644) for name, text in etc.items()]
    return files


def android_lib_dir(files: list[tuple[str, bytes, int]]) -> str:
    """The guest directory holding the android-* libraries (for LD_LIBRARY_PATH)."""
    for name, _, _ in files:
        if name.rsplit("/", 1)[0].endswith("/android"):
            return "/" + name.rsplit("/", 1)[0]
    return ""
