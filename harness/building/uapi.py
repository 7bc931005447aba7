"""Binder's uapi header for a recipe's kernel: include/uapi/linux/android/binder.h, as Debian
ships it in `linux-libc-dev` built from the same kernel source version as the recipe's kernel
(6.1.192-3 in bookworm, 6.12.117-1 in trixie, 7.2.13-1 in sid), at
/usr/include/linux/android/binder.h. The archive lists one linux-libc-dev, the newest; a recipe
one ABI back (6.1.192-2) takes the same file from the kernel's own `linux-headers-ABI-common`
of its version (/usr/src/linux-headers-ABI-common/include/uapi/linux/android/binder.h).

The package comes through the harness's own client (packages.fetch_deb: apt, or HTTP trusted
through the suite's signed InRelease) from the recipe's mirrors, and the header is extracted
once into the cache, keyed by the package (whose bytes are SHA256-checked against the signed
index) like the kernels. The commands' numeric codes are the host C compiler's reading of that
header (evidence/uapi.codes_program), kept beside it.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.evidence.uapi import UapiCommands, UapiError, codes_program, parse_binder_uapi
from harness.files import atomic_dir, cache_root
from harness.building import debian
from harness.building.packages import fetch_deb
from harness.building.recipes import DebianPackage, Recipe

PACKAGE = "linux-libc-dev"
MEMBER = "usr/include/linux/android/binder.h"
CACHE_PART = "uapi"
CODES_FILE = "codes.json"


@dataclass(frozen=True)
class UapiHeader:
    """binder.h of one kernel source version, its commands and its ioctls' codes."""

    source: str  # "linux-libc-dev=6.1.192-3 (amd64) /usr/include/linux/android/binder.h"
    version: str  # the kernel source version, e.g. 6.1.192-3
    sha256: str  # of the header's bytes
    text: str
    commands: UapiCommands
    codes: dict[str, int]  # every command's code: BC_*/BR_* words, BINDER_* ioctl requests

    def as_json(self) -> dict:
        """What a run directory keeps (uapi.json), so a report or a replay needs no download."""
        return {"source": self.source, "version": self.version, "sha256": self.sha256, "text": self.text,
                "codes": self.codes}


def header_from_json(data: dict, where: str) -> UapiHeader:
    """A UapiHeader as a run directory keeps it (as_json); ConfigError naming `where` when it is not one."""
    try:
        text, codes = str(data["text"]), {str(k): int(v) for k, v in dict(data["codes"]).items()}
        return UapiHeader(str(data["source"]), str(data["version"]), str(data["sha256"]), text,
                          parse_binder_uapi(text), codes)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: not a binder uapi record ({exc}); delete it and run again") from None


def header_packages(recipe: Recipe) -> list[tuple[DebianPackage, str]]:
    """(package, member) that hold binder.h of the recipe kernel's source version (a Debian kernel's
    binary version is its source's): linux-libc-dev, then the kernel ABI's linux-headers-ABI-common."""
    version = recipe.source_version
    out = [(DebianPackage(PACKAGE, version), MEMBER)]
    if recipe.kernel_source.debian is None:  # built from linux-source: linux-libc-dev of that version
        return out
    abi = re.match(r"linux-(?:image|binary)-(\d+\.\d+\.\d+(?:-\d+|\+deb\d+))-", recipe.kernel.package)
    if abi:
        common = f"linux-headers-{abi.group(1)}-common"
        out.append((DebianPackage(common, version), f"usr/src/{common}/include/uapi/linux/android/binder.h"))
    return out


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def command_codes(header: Path, commands: UapiCommands) -> dict[str, int]:
    """Every command's code, as the host C compiler evaluates the header's _IO* macros."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ConfigError("no C compiler (cc or gcc) on this host: it reads binder.h's ioctl codes; "
                          "install it with: apt-get install gcc")
    with tempfile.TemporaryDirectory(prefix="bh-uapi-") as tmp:
        shutil.copyfile(header, Path(tmp) / "binder.h")
        (Path(tmp) / "codes.c").write_text(codes_program("binder.h", commands))
        exe = Path(tmp) / "codes"
        built = subprocess.run([cc, "-o", str(exe), str(Path(tmp) / "codes.c")], capture_output=True, text=True)
        if built.returncode != 0:
            first = next((l for l in built.stderr.splitlines() if "error" in l), built.stderr.strip()[:200])
            raise ConfigError(f"{header}: compiling its command codes with {cc} failed: {first}")
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {name: int(code) for name, code in (line.split() for line in out.splitlines())}


def ensure_uapi_header(recipe: Recipe, progress=print) -> UapiHeader:
    """binder.h of the recipe's kernel, fetched and extracted once (cached), with its command codes."""
    candidates = header_packages(recipe)
    key = f"{PACKAGE}_{recipe.source_version}_{recipe.deb_arch}".replace(":", "%3a")
    used: list[str] = []

    def build(tmp: Path) -> None:
        failed: list[str] = []
        for pkg, member in candidates:
            try:
                deb = fetch_deb(pkg, recipe.deb_arch, progress, recipe.mirrors)
                break
            except ConfigError as exc:  # not in the archive (any more): the next package may hold it
                failed.append(str(exc))
        else:
            raise ConfigError(f"binder.h of {recipe.name}: " + "; ".join(failed))
        got = debian.extract_deb(deb, tmp, lambda name: name == member)
        if not got:
            raise ConfigError(f"{deb}: has no /{member}; binder's uapi header is not in this package")
        used.append(f"{pkg.package}={pkg.version} ({recipe.deb_arch}) /{member}")
        (tmp / "source.txt").write_text(used[0] + "\n")
        header = tmp / "binder.h"
        got[0].replace(header)
        shutil.rmtree(tmp / "usr", ignore_errors=True)
        try:
            commands = parse_binder_uapi(header.read_text())
        except UapiError as exc:
            raise ConfigError(f"{deb}: /{member}: {exc}") from None
        (tmp / CODES_FILE).write_text(json.dumps(command_codes(header, commands), indent=1) + "\n")

    folder = atomic_dir(cache_root() / CACHE_PART / key, build)
    text = (folder / "binder.h").read_text()
    return UapiHeader((folder / "source.txt").read_text().strip(), recipe.source_version,
                      _sha256(text.encode()), text, parse_binder_uapi(text),
                      json.loads((folder / CODES_FILE).read_text()))
