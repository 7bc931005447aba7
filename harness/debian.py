"""Debian package handling: download a .deb and read files out of it in Python.

A .deb is an `ar` archive holding `data.tar.{xz,zst,gz}`; reading it here
means any Linux host works, without dpkg.
"""
from __future__ import annotations

import hashlib
import io
import lzma
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from harness.errors import ConfigError


def ar_members(blob: bytes) -> dict[str, bytes]:
    """Split a System V / GNU `ar` archive into {name: content}."""
    if not blob.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive (missing !<arch> magic)")
    members: dict[str, bytes] = {}
    pos = 8
    while pos + 60 <= len(blob):
        header = blob[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        start = pos + 60
        if start + size > len(blob):
            raise ValueError(f"ar member {name!r} is truncated")
        members[name] = blob[start : start + size]
        pos = start + size + (size % 2)
    return members


def _decompress(name: str, data: bytes) -> bytes:
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".zst"):
        try:
            import zstandard  # type: ignore[import-not-found]

            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
        except ImportError:
            return subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    if name.endswith(".gz"):
        import gzip

        return gzip.decompress(data)
    return data


def deb_data_tar(deb: Path) -> tarfile.TarFile:
    """Open the data tarball of a .deb file."""
    try:
        members = ar_members(deb.read_bytes())
    except ValueError as exc:
        raise ConfigError(f"{deb}: not a valid .deb ({exc}); delete it so it is fetched again") from None
    for name, content in members.items():
        if name.startswith("data.tar"):
            return tarfile.open(fileobj=io.BytesIO(_decompress(name, content)), mode="r:")
    raise ConfigError(f"{deb}: no data.tar member; is it a .deb?")


def extract_deb(deb: Path, dest: Path, wanted=lambda name: True) -> list[Path]:
    """Extract the files of `deb` for which `wanted(path)` is true into `dest`."""
    out: list[Path] = []
    with deb_data_tar(deb) as tar:
        for member in tar:
            name = member.name.lstrip("./")
            if not member.isfile() or not wanted(name):
                continue
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            with open(target, "wb") as fh:
                shutil.copyfileobj(src, fh)
            out.append(target)
    return out


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def apt_download(package: str, version: str, arch: str, dest_dir: Path) -> Path:
    """Fetch `package=version` for `arch` with `apt-get download` into dest_dir."""
    if shutil.which("apt-get") is None:
        raise ConfigError(f"apt-get not found; cannot download {package}={version} (use a recipe with a local file)")
    dest_dir.mkdir(parents=True, exist_ok=True)
    spec = f"{package}:{arch}={version}"
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        proc = subprocess.run(["apt-get", "download", "-q", spec], cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            hint = f" (run: dpkg --add-architecture {arch} && apt-get update)" if arch != host_deb_arch() else " (run: apt-get update)"
            raise ConfigError(f"apt-get download {spec} failed: {last}{hint}")
        debs = list(Path(tmp).glob("*.deb"))
        if len(debs) != 1:
            raise ConfigError(f"apt-get download {spec} produced {len(debs)} files, expected 1")
        final = dest_dir / f"{package}_{version}_{arch}.deb"
        debs[0].replace(final)
    return final


def host_deb_arch() -> str:
    try:
        return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
