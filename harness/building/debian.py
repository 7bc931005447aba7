"""Debian package handling: download a .deb and read files out of it in Python.

A .deb is an `ar` archive holding `data.tar.{xz,zst,gz}`; python-debian's `arfile`
reads the container and tarfile streams the data, so any Linux host works, without dpkg,
and a 100+ MB kernel package is never held in memory.
"""
from __future__ import annotations

import contextlib
import io
import lzma
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Iterator, Literal, cast

import zstandard
from debian import arfile

from harness.errors import ConfigError


# data.tar's compression (its name's suffix) -> tarfile's stream mode
_STREAM_MODES: dict[str, Literal["r|", "r|xz", "r|gz", "r|bz2"]] = {"xz": "r|xz", "gz": "r|gz", "bz2": "r|bz2"}


def _data_member(fh) -> tuple[str, IO[bytes]]:
    """python-debian's ar reader over an open .deb: the data.tar.* member, checked to be whole."""
    try:
        members = arfile.ArFile(fileobj=fh).getmembers()
    except (arfile.ArError, OSError) as exc:  # ArFile says OSError for a damaged member header
        raise ValueError(f"not an ar archive (missing !<arch> magic or a damaged header: {exc})") from None
    end = 8  # "!<arch>\n", then a 60-byte header and the (even-padded) body of each member
    for member in members:
        end += 60 + member.size + (member.size % 2)
        if member.name.startswith("data.tar"):
            fh.seek(0, io.SEEK_END)
            if fh.tell() < end - (member.size % 2):
                raise ValueError(f"{member.name} is truncated ({fh.tell()} bytes, needs {end})")
            member.seek(0)
            return member.name, cast(IO[bytes], member)  # a read-only file over that member
    raise ValueError("no data.tar member")


@contextlib.contextmanager
def deb_data_tar(deb: Path) -> Iterator[tarfile.TarFile]:
    """Stream the data tarball of a .deb: members come in order, nothing is held in memory
    (python-debian's debfile would read a zstd data.tar whole; here zstd streams too)."""
    try:
        with open(deb, "rb") as fh:
            name, member = _data_member(fh)
            suffix = name.rsplit(".", 1)[-1]
            if suffix == "zst":
                stream = zstandard.ZstdDecompressor().stream_reader(member)
                tar = tarfile.open(fileobj=stream, mode="r|")
            else:
                tar = tarfile.open(fileobj=member, mode=_STREAM_MODES.get(suffix, "r|"))
            with tar:
                yield tar
    except (ValueError, EOFError, tarfile.TarError, lzma.LZMAError, zstandard.ZstdError) as exc:
        raise ConfigError(f"{deb}: not a valid .deb ({exc}); delete it so it is fetched again") from None
    except OSError as exc:
        raise ConfigError(f"{deb}: cannot read ({exc.strerror or exc})") from None


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
