"""Fetching Debian packages over HTTP, without apt.

A Debian archive is a base URL holding `dists/SUITE/main/binary-ARCH/Packages.xz`
(an index of stanzas) and the `pool/` files those stanzas name. Each stanza
carries the file's SHA256 and size, so a download is verified against the
index before anything trusts it.

Sources are written like a sources.list line, `URL SUITE [SUITE ...]`; several
are separated by `;`. BINDER_HARNESS_DEBIAN_MIRROR overrides them all.
"""
from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.files import atomic_path, atomic_write_text

MIRROR_ENV = "BINDER_HARNESS_DEBIAN_MIRROR"
DEFAULT_SOURCES = (
    "http://deb.debian.org/debian bookworm bookworm-updates",
    "http://deb.debian.org/debian-security bookworm-security",
)
_INDEX_NAMES = ("Packages.xz", "Packages.gz", "Packages")
_TIMEOUT = 60.0


@dataclass(frozen=True)
class Source:
    """One archive: a base URL and the suites (dists/*) to look in."""

    url: str
    suites: tuple[str, ...]

    def index_dir(self, suite: str, arch: str) -> str:
        return f"{self.url}/dists/{suite}/main/binary-{arch}"


@dataclass(frozen=True)
class PackageEntry:
    """The fields of one Packages stanza that fetching needs."""

    package: str
    version: str
    architecture: str
    filename: str
    sha256: str
    size: int


def parse_sources(text: str, where: str) -> tuple[Source, ...]:
    """Parse `URL SUITE [SUITE ...][; URL SUITE ...]`; `where` names the setting in errors."""
    sources = []
    for part in text.replace("\n", ";").split(";"):
        words = part.split()
        if not words:
            continue
        url, suites = words[0].rstrip("/"), tuple(words[1:])
        if not url.startswith(("http://", "https://", "file://")):
            raise ConfigError(f"{where}: {url!r} is not an http(s):// or file:// URL; write 'URL SUITE [SUITE ...]'")
        if not suites:
            raise ConfigError(f"{where}: {url} names no suite; write e.g. '{url} bookworm bookworm-updates'")
        sources.append(Source(url, suites))
    if not sources:
        raise ConfigError(f"{where}: no source given; write 'URL SUITE [SUITE ...]'")
    return tuple(sources)


def configured_sources(recipe_sources: tuple[str, ...] = ()) -> tuple[Source, ...]:
    """The environment's mirror, else the recipe's, else the official Debian archive."""
    env = os.environ.get(MIRROR_ENV, "").strip()
    if env:
        return parse_sources(env, MIRROR_ENV)
    if recipe_sources:
        return parse_sources(";".join(recipe_sources), "recipe field 'mirrors'")
    return parse_sources(";".join(DEFAULT_SOURCES), "default mirrors")


def parse_stanza(text: str) -> dict[str, str]:
    """One deb822 stanza into {field: value}; continuation lines join the value."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key is not None:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            fields[key] = value.strip()
    return fields


def _entry(fields: dict[str, str]) -> PackageEntry | None:
    try:
        return PackageEntry(fields["Package"], fields["Version"], fields["Architecture"],
                            fields["Filename"], fields["SHA256"].lower(), int(fields["Size"]))
    except (KeyError, ValueError):
        return None


def parse_packages(text: str) -> list[PackageEntry]:
    """Every complete stanza of a Packages index (stanzas missing a needed field are skipped)."""
    entries = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        entry = _entry(parse_stanza(block)) if block.strip() else None
        if entry is not None:
            entries.append(entry)
    return entries


def find_in_index(text: str, package: str, version: str, arch: str) -> PackageEntry | None:
    """Find package=version for arch without parsing the whole (large) index."""
    text = "\n" + text
    needle = f"\nPackage: {package}\n"
    pos = text.find(needle)
    while pos >= 0:
        end = text.find("\n\n", pos + 1)
        entry = _entry(parse_stanza(text[pos + 1: end if end >= 0 else len(text)]))
        if entry and entry.version == version and entry.architecture in (arch, "all"):
            return entry
        pos = text.find(needle, pos + 1)
    return None


def decompress_index(name: str, blob: bytes) -> str:
    if name.endswith(".xz"):
        blob = lzma.decompress(blob)
    elif name.endswith(".gz"):
        blob = gzip.decompress(blob)
    return blob.decode("utf-8", errors="replace")


def _open(url: str):
    request = urllib.request.Request(url, headers={"User-Agent": "binder-harness"})
    return urllib.request.urlopen(request, timeout=_TIMEOUT)  # noqa: S310 (the URL comes from configuration)


def _get(url: str) -> bytes | None:
    """The body at url, or None when the server says it is not there."""
    try:
        with _open(url) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (403, 404, 410):
            return None
        raise ConfigError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(f"{url}: cannot fetch ({reason}); check the network or set {MIRROR_ENV}") from None


class Indexes:
    """Packages indexes, cached on disk and refreshed when a wanted version is missing."""

    def __init__(self, cache_dir: Path):
        self.cache_dir = cache_dir
        self._text: dict[str, str] = {}
        self._refreshed: set[str] = set()

    def _cache_file(self, index_dir: str) -> Path:
        return self.cache_dir / (hashlib.sha256(index_dir.encode()).hexdigest()[:16] + ".Packages")

    def _load(self, index_dir: str, refresh: bool) -> str:
        if index_dir in self._text and not refresh:
            return self._text[index_dir]
        cached = self._cache_file(index_dir)
        if cached.exists() and not refresh:
            text = cached.read_text(errors="replace")
        else:
            text = ""
            for name in _INDEX_NAMES:
                blob = _get(f"{index_dir}/{name}")
                if blob is not None:
                    try:
                        text = decompress_index(name, blob)
                    except (lzma.LZMAError, OSError, EOFError) as exc:
                        raise ConfigError(f"{index_dir}/{name}: damaged index ({exc})") from None
                    break
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cached, text)
            self._refreshed.add(index_dir)
        self._text[index_dir] = text
        return text

    def lookup(self, sources: tuple[Source, ...], package: str, version: str, arch: str) -> tuple[Source, PackageEntry]:
        """The first source whose index lists package=version for arch; an old cached index is refreshed once."""
        dirs = [(src, src.index_dir(suite, arch)) for src in sources for suite in src.suites]
        for refresh in (False, True):
            for src, index_dir in dirs:
                if refresh and index_dir in self._refreshed:
                    continue
                entry = find_in_index(self._load(index_dir, refresh), package, version, arch)
                if entry is not None:
                    return src, entry
        where = ", ".join(f"{s.url} {' '.join(s.suites)}" for s in sources)
        raise ConfigError(f"{package}={version} ({arch}) is not in the Packages index of {where}; "
                          f"fix the recipe's version or point {MIRROR_ENV} at an archive that has it")


def download_verified(url: str, entry: PackageEntry, dest: Path, progress=print) -> Path:
    """Stream url to dest, checking size and SHA256 against the index entry; nothing is kept on mismatch."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    t0 = time.monotonic()
    progress(f"download {entry.package}={entry.version} ({entry.architecture}, {entry.size / 1e6:.1f} MB) from {url}")
    with atomic_path(dest) as part:  # nothing is left behind when a check below raises
        try:
            with _open(url) as resp, open(part, "wb") as out:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except urllib.error.HTTPError as exc:
            raise ConfigError(f"{url}: HTTP {exc.code} {exc.reason}; the mirror lacks a file its index lists") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ConfigError(f"{url}: download failed ({getattr(exc, 'reason', exc)}); run again to retry") from None
        got = digest.hexdigest()
        if size != entry.size or got != entry.sha256:
            raise ChecksumMismatch(
                f"{url}: SHA256 {got[:16]}… ({size} bytes) does not match the Packages index "
                f"({entry.sha256[:16]}…, {entry.size} bytes); the mirror serves a damaged or different file")
    secs = time.monotonic() - t0
    progress(f"downloaded {dest.name}: {size / 1e6:.1f} MB in {secs:.1f} s, SHA256 verified")
    return dest


class ChecksumMismatch(ConfigError):
    """A download whose bytes differ from what the index promises."""


def http_download(package: str, version: str, arch: str, dest_dir: Path, sources: tuple[Source, ...],
                  index_cache: Path, progress=print) -> tuple[Path, str]:
    """Fetch package=version for arch from the first source that has it; return (path, sha256)."""
    src, entry = Indexes(index_cache).lookup(sources, package, version, arch)
    url = f"{src.url}/{entry.filename}"
    dest = dest_dir / Path(entry.filename).name
    try:
        download_verified(url, entry, dest, progress)
    except ChecksumMismatch:
        progress(f"{entry.package}: checksum mismatch, fetching once more")
        download_verified(url, entry, dest, progress)
    return dest, entry.sha256
