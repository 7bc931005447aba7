"""Debian package handling: download a .deb and read files out of it in Python.

A .deb is an `ar` archive holding `data.tar.{xz,zst,gz}`; reading it here
means any Linux host works, without dpkg.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import lzma
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator, Literal

from harness.errors import ConfigError


class _Member(io.RawIOBase):
    """A read-only stream over one member of an ar archive, read from the open file."""

    def __init__(self, fh, size: int):
        super().__init__()
        self._fh, self._left = fh, size

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self._left)
        data = self._fh.read(n)
        if len(data) < n:
            raise ValueError("the ar member is truncated")
        buf[: len(data)] = data
        self._left -= len(data)
        return len(data)


def _data_member(fh) -> tuple[str, int]:
    """Walk an ar archive's headers to data.tar.*; return its name and size, fh at its start."""
    if fh.read(8) != b"!<arch>\n":
        raise ValueError("not an ar archive (missing !<arch> magic)")
    while True:
        header = fh.read(60)
        if len(header) < 60:
            raise ValueError("no data.tar member")
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        if name.startswith("data.tar"):
            return name, size
        fh.seek(size + (size % 2), io.SEEK_CUR)


# data.tar's compression (its name's suffix) -> tarfile's stream mode
_STREAM_MODES: dict[str, Literal["r|", "r|xz", "r|gz", "r|bz2"]] = {"xz": "r|xz", "gz": "r|gz", "bz2": "r|bz2"}


@contextlib.contextmanager
def deb_data_tar(deb: Path) -> Iterator[tarfile.TarFile]:
    """Stream the data tarball of a .deb: members come in order, nothing is held in memory."""
    try:
        with open(deb, "rb") as fh:
            name, size = _data_member(fh)
            stream = io.BufferedReader(_Member(fh, size), 1 << 20)
            if name.endswith(".zst"):  # tarfile has no zstd stream mode
                data = subprocess.run(["zstd", "-dc"], input=stream.read(), capture_output=True, check=True).stdout
                tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
            else:
                tar = tarfile.open(fileobj=stream, mode=_STREAM_MODES.get(name.rsplit(".", 1)[-1], "r|"))
            with tar:
                yield tar
    except (ValueError, EOFError, tarfile.TarError, lzma.LZMAError, subprocess.CalledProcessError) as exc:
        raise ConfigError(f"{deb}: not a valid .deb ({exc}); delete it so it is fetched again") from None
    except OSError as exc:
        raise ConfigError(f"{deb}: cannot read ({exc.strerror})") from None


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
