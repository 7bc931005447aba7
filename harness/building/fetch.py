"""Fetching Debian packages over HTTP, without apt, trusted the way apt trusts them.

A Debian archive is a base URL holding `dists/SUITE/InRelease` (the suite's Release
file, signed by the archive keys), the Packages indexes it lists by SHA256
(`main/binary-ARCH/Packages.xz`), and the `pool/` files those indexes list by SHA256.
Trust runs down that chain, as in apt: `gpgv` checks InRelease against
debian-archive-keyring, the Packages index must hash to what the signed InRelease
says, and a .deb must hash to what that index says. Nothing is written to the cache
until its link of the chain has verified, and cached InRelease and Packages files
are verified again each time they are read. Release and Packages stanzas are read
with python-debian's deb822.

Sources are written like a sources.list line, `URL SUITE [SUITE ...]`; several
are separated by `;`. BINDER_HARNESS_DEBIAN_MIRROR overrides them all.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import lzma
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from debian import deb822
from debian.debian_support import Version

from harness.errors import ConfigError
from harness.files import atomic_path, atomic_write_bytes

MIRROR_ENV = "BINDER_HARNESS_DEBIAN_MIRROR"
KEYRING_ENV = "BINDER_HARNESS_DEBIAN_KEYRING"
# debian-archive-keyring: every archive key Debian still signs with (bookworm's package
# carries the bookworm and trixie keys; the archive signs each suite with both).
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEFAULT_SOURCES = (
    "http://deb.debian.org/debian bookworm bookworm-updates",
    "http://deb.debian.org/debian-security bookworm-security",
)
COMPONENT = "main"
_INDEX_NAMES = ("Packages.xz", "Packages.gz", "Packages")
_TIMEOUT = 60.0


@dataclass(frozen=True)
class Source:
    """One archive: a base URL and the suites (dists/*) to look in."""

    url: str
    suites: tuple[str, ...]

    def suite_dir(self, suite: str) -> str:
        return f"{self.url}/dists/{suite}"

    def index_dir(self, suite: str, arch: str) -> str:
        return f"{self.suite_dir(suite)}/{COMPONENT}/binary-{arch}"


@dataclass(frozen=True)
class PackageEntry:
    """The fields of one Packages stanza that fetching needs."""

    package: str
    version: str
    architecture: str
    filename: str
    sha256: str
    size: int


class Untrusted(ConfigError):
    """A signature or hash in the InRelease -> Packages -> .deb chain does not verify."""


class ChecksumMismatch(Untrusted):
    """A download whose bytes differ from what the index promises."""


class NetworkUnavailable(ConfigError):
    """The mirror could not be reached or did not answer: no route, DNS, a timeout, a dropped
    connection or an HTTP 5xx. Never a signature or a hash: those are Untrusted."""


# what urllib raises when the network, not the file, is the problem (URLError covers no route and DNS)
_NETWORK_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException)


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


def describe_sources(sources: tuple[Source, ...]) -> str:
    return "; ".join(f"{s.url} {' '.join(s.suites)}" for s in sources)


# -- Packages stanzas (python-debian's deb822) ----------------------------------------

def parse_stanza(text: str) -> dict[str, str]:
    """One deb822 stanza into {field: value}."""
    return dict(deb822.Deb822(text))


def _entry(para) -> PackageEntry | None:
    try:
        return PackageEntry(para["Package"], para["Version"], para["Architecture"],
                            para["Filename"], para["SHA256"].lower(), int(para["Size"]))
    except (KeyError, ValueError):
        return None


def parse_packages(text: str) -> list[PackageEntry]:
    """Every complete stanza of a Packages index (stanzas missing a needed field are skipped)."""
    entries = (_entry(p) for p in deb822.Packages.iter_paragraphs(text.splitlines(), use_apt_pkg=False))
    return [e for e in entries if e is not None]


def stanzas_of(text: str, package: str) -> list[PackageEntry]:
    """Every stanza of `package` in an index, without parsing the whole index: its
    `Package:` lines are found by plain text search, and only those stanzas are parsed
    by deb822 (a full deb822 pass over trixie's 57 MB amd64 index takes 4.4 s)."""
    text = "\n" + text
    needle = f"\nPackage: {package}\n"
    out = []
    pos = text.find(needle)
    while pos >= 0:
        end = text.find("\n\n", pos + 1)
        entry = _entry(deb822.Packages(text[pos + 1: end if end >= 0 else len(text)]))
        if entry is not None:
            out.append(entry)
        pos = text.find(needle, pos + 1)
    return out


def find_in_index(text: str, package: str, version: str, arch: str) -> PackageEntry | None:
    """package=version for arch (or arch all) in an index, or None."""
    return next((e for e in stanzas_of(text, package) if e.version == version and e.architecture in (arch, "all")),
                None)


def newest_in_index(text: str, package: str, arch: str) -> PackageEntry | None:
    """The highest version of package for arch (or all) that the index lists."""
    entries = [e for e in stanzas_of(text, package) if e.architecture in (arch, "all")]
    return max(entries, key=lambda e: Version(e.version)) if entries else None


def package_names(text: str, prefix: str) -> set[str]:
    """Names of the packages in an index that start with prefix."""
    names = set()
    needle = f"\nPackage: {prefix}"
    text = "\n" + text
    pos = text.find(needle)
    while pos >= 0:
        end = text.find("\n", pos + 1)
        names.add(text[pos + 10: end].strip())
        pos = text.find(needle, pos + 1)
    return names


def decompress_index(name: str, blob: bytes) -> str:
    if name.endswith(".xz"):
        blob = lzma.decompress(blob)
    elif name.endswith(".gz"):
        blob = gzip.decompress(blob)
    return blob.decode("utf-8", errors="replace")


# -- InRelease: gpgv, then python-debian's Release ------------------------------------

def keyrings() -> list[Path]:
    """The keyrings InRelease files are checked against (BINDER_HARNESS_DEBIAN_KEYRING=FILE[:FILE])."""
    env = os.environ.get(KEYRING_ENV, "").strip()
    paths = [Path(p).resolve() for p in env.split(":") if p] if env else [Path(DEFAULT_KEYRING)]
    for path in paths:
        if not path.is_file():
            fix = (f"fix {KEYRING_ENV}" if env else
                   "install Debian's debian-archive-keyring package (scripts/setup does)")
            raise ConfigError(f"{path}: no archive keyring to verify Debian's InRelease with; {fix}")
    return paths


def verify_inrelease(blob: bytes, where: str) -> bytes:
    """Check a clear-signed InRelease with gpgv against the archive keyring; return only
    the signed text (anything outside the signature is dropped, as apt does).

    Like apt: at least one good signature by a key in the keyring, and no bad one; a
    signature by a key we lack is ignored when another one verifies."""
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise ConfigError("gpgv not found: it verifies Debian's signed InRelease; install Debian's gpgv package "
                          "(scripts/setup does)")
    rings = keyrings()
    with tempfile.TemporaryDirectory(prefix="bh-gpgv-") as tmp:
        signed, payload = Path(tmp) / "InRelease", Path(tmp) / "Release"
        signed.write_bytes(blob)
        args = [gpgv, "--homedir", tmp, "--status-fd", "1", "--output", str(payload)]
        for ring in rings:
            args += ["--keyring", str(ring)]
        proc = subprocess.run([*args, str(signed)], capture_output=True, text=True, timeout=60)
        status = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("[GNUPG:] ")]
        tags = {words[0] for words in status if words}
        if "BADSIG" in tags:
            raise Untrusted(f"{where}: BAD signature: the file is not what the Debian archive signed; "
                            "the mirror serves a damaged or forged InRelease")
        if "VALIDSIG" not in tags or not payload.is_file():
            why = ("signed by a key not in " + ", ".join(map(str, rings))) if "NO_PUBKEY" in tags else \
                  ("its key has expired or was revoked" if tags & {"EXPKEYSIG", "REVKEYSIG"} else
                   "no valid OpenPGP signature")
            raise Untrusted(f"{where}: not verified ({why}); the harness trusts only a signed InRelease")
        return payload.read_bytes()


@dataclass(frozen=True)
class Release:
    """The signed part of one suite's InRelease: which suite it is and the SHA256 of its files."""

    suite: str
    codename: str
    valid_until: str
    sha256: dict[str, tuple[str, int]]  # "main/binary-amd64/Packages.xz" -> (sha256, size)


def parse_release(text: str) -> Release:
    rel = deb822.Release(text)
    files = {}
    for item in rel.get("SHA256", []):
        try:
            files[item["name"]] = (item["sha256"].lower(), int(item["size"]))
        except (KeyError, ValueError):
            continue
    return Release(rel.get("Suite", ""), rel.get("Codename", ""), rel.get("Valid-Until", ""), files)


def trusted_release(blob: bytes, suite: str, where: str) -> Release:
    release = parse_release(verify_inrelease(blob, where).decode("utf-8", errors="replace"))
    if suite not in (release.suite, release.codename):
        raise Untrusted(f"{where}: signed for suite {release.suite or '?'} ({release.codename or '?'}), not {suite}; "
                        "the mirror serves another suite's InRelease")
    return release


def check_hash(blob: bytes, expected: tuple[str, int], where: str, against: str) -> None:
    got = hashlib.sha256(blob).hexdigest()
    if got != expected[0] or len(blob) != expected[1]:
        raise Untrusted(f"{where}: SHA256 {got[:16]}… ({len(blob)} bytes) does not match {against} "
                        f"({expected[0][:16]}…, {expected[1]} bytes); the mirror serves a damaged or different file")


# -- HTTP ------------------------------------------------------------------------------

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
        kind = NetworkUnavailable if exc.code >= 500 else ConfigError
        raise kind(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except FileNotFoundError:
        return None
    except _NETWORK_ERRORS as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkUnavailable(f"{url}: cannot fetch ({reason}); check the network or set {MIRROR_ENV}") from None
    except OSError as exc:
        raise ConfigError(f"{url}: cannot fetch ({exc}); check the network or set {MIRROR_ENV}") from None


@dataclass(frozen=True)
class SuiteIndex:
    """One suite's verified Packages index for one arch."""

    source: Source
    suite: str
    release: Release
    text: str


def _unchanged(cached: Path, expected: tuple[str, int]) -> bytes | None:
    """The cached index when it already hashes to what a fresh InRelease lists (no download)."""
    try:
        blob = cached.read_bytes()
    except OSError:
        return None
    return blob if len(blob) == expected[1] and hashlib.sha256(blob).hexdigest() == expected[0] else None


def expired(release: Release, now: float | None = None) -> str:
    """The Valid-Until date when it has passed, else "".

    Pinned fetches do not refuse an expired InRelease: a replayed old signed index can only
    offer files Debian signed, and a pin asks for one exact version. `images update`, which
    asks what a suite has now, says so."""
    if not release.valid_until:
        return ""
    from email.utils import parsedate_to_datetime

    try:
        until = parsedate_to_datetime(release.valid_until).timestamp()
    except (TypeError, ValueError):
        return ""
    return release.valid_until if until < (time.time() if now is None else now) else ""


class Indexes:
    """Verified Packages indexes, cached on disk beside the InRelease that vouches for them,
    and refreshed when a wanted version is missing."""

    def __init__(self, cache_dir: Path, progress=print):
        self.cache_dir = cache_dir
        self.progress = progress
        self._mem: dict[str, SuiteIndex] = {}
        self._refreshed: set[str] = set()

    def cache_folder(self, src: Source, suite: str, arch: str) -> Path:
        return self.cache_dir / hashlib.sha256(src.index_dir(suite, arch).encode()).hexdigest()[:16]

    def _cached(self, src: Source, suite: str, arch: str) -> SuiteIndex | None:
        """The cached InRelease and index, verified again; None when absent or no longer verifying."""
        folder = self.cache_folder(src, suite, arch)
        inrelease = folder / "InRelease"
        indexes = [folder / name for name in _INDEX_NAMES if (folder / name).is_file()]
        if not inrelease.is_file() or not indexes:
            return None
        try:
            release = trusted_release(inrelease.read_bytes(), suite, str(inrelease))
            blob = indexes[0].read_bytes()
            key = f"{COMPONENT}/binary-{arch}/{indexes[0].name}"
            if key not in release.sha256:
                raise Untrusted(f"{indexes[0]}: not listed in its InRelease")
            check_hash(blob, release.sha256[key], str(indexes[0]), "its InRelease")
            text = decompress_index(indexes[0].name, blob)
        except (Untrusted, lzma.LZMAError, OSError, EOFError) as exc:
            self.progress(f"cached index {folder} does not verify ({exc}); fetching it again")
            return None
        return SuiteIndex(src, suite, release, text)

    def _download(self, src: Source, suite: str, arch: str) -> SuiteIndex:
        url = f"{src.suite_dir(suite)}/InRelease"
        blob = _get(url)
        if blob is None:
            raise ConfigError(f"{url}: not found; is '{suite}' a suite of {src.url}? (the harness reads only "
                              "signed InRelease files)")
        release = trusted_release(blob, suite, url)
        for name in _INDEX_NAMES:
            key = f"{COMPONENT}/binary-{arch}/{name}"
            if key not in release.sha256:
                continue
            index_url = f"{src.index_dir(suite, arch)}/{name}"
            folder = self.cache_folder(src, suite, arch)
            data = _unchanged(folder / name, release.sha256[key]) or _get(index_url)
            if data is None:
                continue
            check_hash(data, release.sha256[key], index_url, f"the signed {url}")
            try:
                text = decompress_index(name, data)
            except (lzma.LZMAError, OSError, EOFError) as exc:
                raise Untrusted(f"{index_url}: damaged index ({exc})") from None
            folder.mkdir(parents=True, exist_ok=True)
            for old in _INDEX_NAMES:
                (folder / old).unlink(missing_ok=True)
            atomic_write_bytes(folder / name, data)  # both verified: only now cached
            atomic_write_bytes(folder / "InRelease", blob)
            return SuiteIndex(src, suite, release, text)
        raise ConfigError(f"{url}: lists no {COMPONENT}/binary-{arch} Packages index that the mirror serves; "
                          f"{suite} has no {arch} packages there")

    def suite_index(self, src: Source, suite: str, arch: str, refresh: bool = False) -> SuiteIndex:
        key = src.index_dir(suite, arch)
        if key in self._mem and not refresh:
            return self._mem[key]
        index = None if refresh else self._cached(src, suite, arch)
        if index is None:
            index = self._download(src, suite, arch)
            self._refreshed.add(key)
        self._mem[key] = index
        return index

    def all_suites(self, sources: tuple[Source, ...], arch: str, refresh: bool = False) -> list[SuiteIndex]:
        return [self.suite_index(src, suite, arch, refresh and src.index_dir(suite, arch) not in self._refreshed)
                for src in sources for suite in src.suites]

    def lookup(self, sources: tuple[Source, ...], package: str, version: str, arch: str) -> tuple[Source, PackageEntry]:
        """The first source whose index lists package=version for arch; an old cached index is refreshed once."""
        for refresh in (False, True):
            for src in sources:
                for suite in src.suites:
                    if refresh and src.index_dir(suite, arch) in self._refreshed:
                        continue
                    entry = find_in_index(self.suite_index(src, suite, arch, refresh).text, package, version, arch)
                    if entry is not None:
                        return src, entry
        raise PinNotInArchive(package, version, arch, sources)


class PinNotInArchive(ConfigError):
    """package=version is in none of the configured suites (any more)."""

    def __init__(self, package: str, version: str, arch: str, sources: tuple[Source, ...], recipe: str = ""):
        self.package, self.version, self.arch, self.sources, self.recipe = package, version, arch, sources, recipe
        super().__init__(self.line())

    def line(self) -> str:
        fix = (f"move the pin to what the suites have now: binder-harness images update {self.recipe}" if self.recipe
               else f"fix the recipe's version or point {MIRROR_ENV} at an archive that has it")
        return (f"{self.package}={self.version} ({self.arch}) is not in the Packages index of "
                f"{describe_sources(self.sources)} (any more); {fix}")

    def for_recipe(self, recipe: str) -> PinNotInArchive:
        return PinNotInArchive(self.package, self.version, self.arch, self.sources, recipe)


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
            if exc.code >= 500:
                raise NetworkUnavailable(f"{url}: HTTP {exc.code} {exc.reason}; run again to retry") from None
            raise ConfigError(f"{url}: HTTP {exc.code} {exc.reason}; the mirror lacks a file its index lists") from None
        except _NETWORK_ERRORS as exc:
            raise NetworkUnavailable(f"{url}: download failed ({getattr(exc, 'reason', exc)}); run again to retry") from None
        except OSError as exc:
            raise ConfigError(f"{url}: download failed ({exc}); run again to retry") from None
        got = digest.hexdigest()
        if size != entry.size or got != entry.sha256:
            raise ChecksumMismatch(
                f"{url}: SHA256 {got[:16]}… ({size} bytes) does not match the signed Packages index "
                f"({entry.sha256[:16]}…, {entry.size} bytes); the mirror serves a damaged or different file")
    secs = time.monotonic() - t0
    progress(f"downloaded {dest.name}: {size / 1e6:.1f} MB in {secs:.1f} s, SHA256 verified (InRelease signed)")
    return dest


def http_download(package: str, version: str, arch: str, dest_dir: Path, sources: tuple[Source, ...],
                  index_cache: Path, progress=print) -> tuple[Path, str]:
    """Fetch package=version for arch from the first source that has it; return (path, sha256)."""
    src, entry = Indexes(index_cache, progress).lookup(sources, package, version, arch)
    url = f"{src.url}/{entry.filename}"
    dest = dest_dir / Path(entry.filename).name
    try:
        download_verified(url, entry, dest, progress)
    except ChecksumMismatch:
        progress(f"{entry.package}: checksum mismatch, fetching once more")
        download_verified(url, entry, dest, progress)
    return dest, entry.sha256
