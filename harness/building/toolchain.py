"""A kernel build's toolchain: a Debian root made by debootstrap, holding the recipe's
pinned packages (e.g. trixie's rustc and bindgen, which a bookworm host cannot install).

The root is a directory in the cache, `toolchains/SUITE-KEY`, keyed by the suite, the mirror
and every pinned package, and made atomically (a half-made root is never reused). The host's
apt sources are never touched. debootstrap checks the suite's signed Release against the same
archive keyring the harness's own fetching trusts (harness/building/fetch.py `keyrings`); the
pins are then installed with the root's own apt and checked, package by package.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from harness.files import atomic_dir, cache_root
from harness.building.build_steps import BuildLog
from harness.building.recipes import Toolchain

LAYOUT = "toolchain 1: debootstrap minbase, pins by apt-get, apt cache cleaned"


def toolchain_key(tc: Toolchain) -> str:
    """The cache key of a root: suite, mirror, every package=version (order does not matter)."""
    lines = [LAYOUT, f"{tc.mirror} {tc.suite}"] + sorted(f"{p.package}={p.version}" for p in tc.packages)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def toolchain_dir(tc: Toolchain) -> Path:
    return cache_root() / "toolchains" / f"{tc.suite}-{toolchain_key(tc)}"


def installed_versions(root: Path, names: list[str]) -> dict[str, str]:
    """{package: version} of the named packages installed in root (dpkg's status file)."""
    status = root / "var" / "lib" / "dpkg" / "status"
    return parse_dpkg_status(status.read_text(errors="replace"), set(names)) if status.is_file() else {}


def parse_dpkg_status(text: str, names: set[str]) -> dict[str, str]:
    """{package: version} of the installed packages among `names` in a dpkg status file."""
    out: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        name = fields.get("Package", "")
        if name in names and fields.get("Status", "").endswith(" installed"):
            out[name] = fields.get("Version", "")
    return out


def pin_mismatches(tc: Toolchain, installed: dict[str, str]) -> list[str]:
    """'rustc: pinned X, installed Y' for every pin the root does not hold."""
    return [f"{p.package}: pinned {p.version}, installed {installed.get(p.package, 'nothing')}"
            for p in tc.packages if installed.get(p.package) != p.version]


def ensure_toolchain(tc: Toolchain, log: BuildLog) -> Path:
    """The toolchain root for tc, made (debootstrap, then the pins by apt) when not cached."""
    final = toolchain_dir(tc)
    if final.is_dir():
        log.progress(f"{log.what}: toolchain {final} (cached)")
        log.note(f"toolchain {final}: cached")
        return final
    if os.geteuid() != 0:
        raise log.fail("debootstrap", "making the toolchain root needs root (debootstrap, chroot, mount "
                                      "namespaces); run as root, or pass a kernel you built with --kernel")
    if shutil.which("debootstrap") is None:
        raise log.fail("debootstrap", "debootstrap not found; install Debian's debootstrap package (scripts/setup does)")
    from harness.building.fetch import keyrings

    names = [p.package for p in tc.packages]

    def build(tmp: Path) -> None:
        with log.step("debootstrap"):
            log.run("debootstrap", ["debootstrap", "--variant=minbase", f"--keyring={keyrings()[0]}",
                                    f"--include={','.join(names)}", tc.suite, str(tmp), tc.mirror])
        with log.step("apt"):
            pins = [f"{p.package}={p.version}" for p in tc.packages]
            log.run_in_root("apt", tmp, (), ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                                             "--allow-downgrades", *pins])
            log.run_in_root("apt", tmp, (), ["apt-get", "clean"])
            wrong = pin_mismatches(tc, installed_versions(tmp, names))
            if wrong:
                raise log.fail("apt", f"the root does not hold the recipe's pins ({'; '.join(wrong)}); "
                                      f"move the pins in the recipe's kernel.build.toolchain.packages")
        size = subprocess.run(["du", "-sm", str(tmp)], capture_output=True, text=True).stdout.split()
        log.note(f"toolchain root {final}: {size[0] if size else '?'} MB")

    return atomic_dir(final, build)
