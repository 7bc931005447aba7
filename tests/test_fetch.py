"""Fetching Debian packages over HTTP, as on a host without apt, trusted through
Debian's signed InRelease.

A local HTTP server (127.0.0.1, started here) plays the Debian mirror. It serves real
files: the InRelease and Packages.xz the harness's own client fetched from Debian (and
verified) into the cache, and the real .deb files the recipes pin, at their pool paths.
So the chain InRelease (gpgv, debian-archive-keyring) -> Packages (SHA256) -> .deb
(SHA256) is Debian's own; the tamper tests flip bytes in copies of those files.
Requests are counted, so a warm cache is seen to make none.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

from harness.errors import ConfigError
from harness.files import cache_root, sha256_file
from harness.building import fetch
from harness.building.packages import cached_deb_ok, deb_cache_path, fetch_deb
from harness.building.recipes import DebianPackage, recipe_for_arch
from tests.helpers import REPO, CliRun, one_error_line

QUIET = lambda _: None  # noqa: E731


@dataclass(frozen=True)
class Real:
    """A real package: its pin, its .deb, its stanza in a real index, and where that index is cached."""

    pkg: DebianPackage
    deb: Path
    entry: fetch.PackageEntry
    source: fetch.Source
    suite: str
    index_folder: Path  # InRelease + Packages.xz, as fetched from Debian and verified


def _real_suite(src: fetch.Source, suite: str, arch: str = "amd64") -> Path:
    """Fetch (once; cached) and verify a real suite's InRelease and Packages index; return its cache folder.

    Only an unreachable mirror skips (fetch.NetworkUnavailable). A signature or hash that does not
    verify (fetch.Untrusted), or any other error, fails: that is what these tests exist to catch.
    A cached InRelease is verified first, so a broken chain fails even when the network is down."""
    indexes = fetch.Indexes(cache_root() / "indexes", QUIET)
    cached = indexes.cache_folder(src, suite, arch) / "InRelease"
    if cached.is_file():
        fetch.trusted_release(cached.read_bytes(), suite, str(cached))
    try:
        indexes.suite_index(src, suite, arch)
    except fetch.NetworkUnavailable as exc:
        pytest.skip(f"cannot reach Debian's {suite} index: {exc}")
    return indexes.cache_folder(src, suite, arch)


@pytest.fixture(scope="module")
def real_debs() -> dict[str, Real]:
    """The default x86_64 recipe's kernel and busybox .debs (from the user's cache), with the
    real signed indexes that list them."""
    recipe = recipe_for_arch("x86_64")
    sources = fetch.parse_sources(";".join(fetch.DEFAULT_SOURCES), "default mirrors")
    out = {}
    for key, pkg in (("kernel", recipe.kernel), ("busybox", recipe.busybox)):
        deb = fetch_deb(pkg, "amd64", QUIET)
        for src in sources:
            for suite in src.suites:
                folder = _real_suite(src, suite)
                text = fetch.decompress_index("Packages.xz", (folder / "Packages.xz").read_bytes())
                entry = fetch.find_in_index(text, pkg.package, pkg.version, "amd64")
                if entry is not None and key not in out:
                    out[key] = Real(pkg, deb, entry, src, suite, folder)
        if key not in out:
            pytest.skip(f"{pkg.package}={pkg.version} is in none of {fetch.DEFAULT_SOURCES}")
    return out


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.server.answer:  # a mirror that answers every request with this HTTP status
            self.send_error(self.server.answer)
            return
        super().do_GET()


class Mirror:
    """A Debian-shaped directory served over HTTP on 127.0.0.1."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
        self.server.requests = []
        self.server.answer = 0
        self.suites: dict[str, list[str]] = {}
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def url(self) -> str:
        return f"{self.base}/debian"

    @property
    def sources(self) -> str:
        """The BINDER_HARNESS_DEBIAN_MIRROR value for what is published."""
        return "; ".join(f"{self.base}{path} {' '.join(suites)}" for path, suites in self.suites.items())

    @property
    def requests(self) -> list[str]:
        return self.server.requests

    def publish_suite(self, src: fetch.Source, suite: str, folder: Path, arch: str = "amd64") -> None:
        """Serve a real cached InRelease and Packages.xz (copies, so tests may damage them)."""
        path = urlparse(src.url).path
        dists = self.root / path.lstrip("/") / "dists" / suite
        (dists / "main" / f"binary-{arch}").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / "InRelease", dists / "InRelease")
        shutil.copyfile(folder / "Packages.xz", dists / "main" / f"binary-{arch}" / "Packages.xz")
        if suite not in self.suites.setdefault(path, []):
            self.suites[path].append(suite)

    def publish(self, reals: list[Real]) -> None:
        """Serve each real package at its pool path, with the real signed indexes that list it."""
        for real in reals:
            self.publish_suite(real.source, real.suite, real.index_folder)
            dest = self.root / urlparse(real.source.url).path.lstrip("/") / real.entry.filename
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.unlink(missing_ok=True)
            os.symlink(real.deb, dest)

    def served(self, real: Real, what: str) -> Path:
        """The served file: 'InRelease', 'Packages.xz' or 'deb' (made a private copy, to damage)."""
        top = self.root / urlparse(real.source.url).path.lstrip("/")
        if what == "deb":
            path = top / real.entry.filename
            data = path.read_bytes()
            path.unlink()
            path.write_bytes(data)
            return path
        if what == "InRelease":
            return top / "dists" / real.suite / "InRelease"
        return top / "dists" / real.suite / "main" / "binary-amd64" / "Packages.xz"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _flip(path: Path, at: int | None = None, needle: bytes = b"") -> None:
    """Change one byte of path: at an offset, after the first `needle`, or in the middle."""
    data = bytearray(path.read_bytes())
    pos = data.index(needle) + len(needle) if needle else (len(data) // 2 if at is None else at)
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def mirror(tmp_path):
    m = Mirror(tmp_path / "www")
    yield m
    m.close()


@pytest.fixture
def http_env(tmp_path, mirror, monkeypatch):
    """This process fetches over HTTP from the local mirror into an empty cache (set the mirror's
    sources after publishing: env['mirror'] is filled in by _use)."""
    env = {"BINDER_HARNESS_CACHE": str(tmp_path / "cache"), "BINDER_HARNESS_FETCH": "http"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _use(env: dict, mirror: Mirror, monkeypatch) -> dict:
    env[fetch.MIRROR_ENV] = mirror.sources
    monkeypatch.setenv(fetch.MIRROR_ENV, mirror.sources)
    return env


def _nothing_cached(cache: Path) -> None:
    assert not list(cache.glob("debs/*.deb")), list(cache.glob("debs/*"))
    assert not [p for p in cache.glob("indexes/*/*")], list(cache.glob("indexes/*/*"))
    assert not list(cache.glob("**/*.tmp")) and not list(cache.glob("**/*.part"))


def _cli(args: list[str], env: dict[str, str]) -> CliRun:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **env})
    return CliRun(proc.returncode, proc.stdout, proc.stderr, Path("."))


def _index_text(real: Real) -> str:
    return fetch.decompress_index("Packages.xz", (real.index_folder / "Packages.xz").read_bytes())


def test_parse_real_packages_stanzas(real_debs):
    real = real_debs["busybox"]
    text = _index_text(real)
    busybox = fetch.find_in_index(text, "busybox-static", real.pkg.version, "amd64")
    assert busybox == real.entry and busybox.architecture == "amd64"
    assert busybox.filename.startswith("pool/main/b/busybox/") and busybox.size == real.deb.stat().st_size
    assert busybox.sha256 == sha256_file(real.deb)
    stanzas = fetch.stanzas_of(text, "busybox-static")
    assert busybox in stanzas and all(e.package == "busybox-static" for e in stanzas)
    assert fetch.parse_packages(text[: text.index("\n\n", 200000)])  # a whole-stanza slice reads through deb822
    assert fetch.find_in_index(text, "busybox-static", "0.0-1", "amd64") is None
    assert fetch.find_in_index(text, "busybox-stati", real.pkg.version, "amd64") is None  # whole names only
    assert fetch.find_in_index(text, "busybox", real.pkg.version, "amd64").filename != busybox.filename
    assert fetch.newest_in_index(text, "busybox-static", "amd64").version == real.pkg.version


def test_real_inrelease_verifies_and_names_its_suite(real_debs):
    """bookworm's (and bookworm-security's) InRelease verify with gpgv against the keyring; the
    signed Release lists the Packages.xz that is cached beside it."""
    for real in real_debs.values():
        blob = (real.index_folder / "InRelease").read_bytes()
        release = fetch.trusted_release(blob, real.suite, "InRelease")
        assert real.suite in (release.suite, release.codename)
        fetch.check_hash((real.index_folder / "Packages.xz").read_bytes(),
                         release.sha256["main/binary-amd64/Packages.xz"], "Packages.xz", "InRelease")
    other = next(r for r in real_debs.values() if r.suite != "bookworm")
    with pytest.raises(fetch.Untrusted, match=r"X: signed for suite .*, not bookworm; the mirror serves another"):
        fetch.trusted_release((other.index_folder / "InRelease").read_bytes(), "bookworm", "X")
    with pytest.raises(fetch.Untrusted, match="X: not verified .no valid OpenPGP signature"):
        fetch.trusted_release(b"Suite: bookworm\n", "bookworm", "X")


def test_sources_syntax():
    (src,) = fetch.parse_sources("http://m/debian/ bookworm bookworm-updates", "X")
    assert src.url == "http://m/debian" and src.suites == ("bookworm", "bookworm-updates")
    assert len(fetch.parse_sources("http://a/debian bookworm; http://a/debian-security bookworm-security", "X")) == 2
    with pytest.raises(ConfigError, match="X: http://m/debian names no suite"):
        fetch.parse_sources("http://m/debian", "X")
    with pytest.raises(ConfigError, match="X: 'ftp://m' is not an http"):
        fetch.parse_sources("ftp://m bookworm", "X")


def test_cold_fetch_over_http_without_apt_then_warm(tmp_path, mirror, real_debs):
    """`images fetch` on a host without apt-get: packages come from the mirror, verified; a second run asks nothing."""
    mirror.publish(list(real_debs.values()))
    bin_dir = tmp_path / "bin"  # a PATH with gpgv but no apt-get: the harness must pick HTTP by itself
    bin_dir.mkdir()
    os.symlink(shutil.which("gpgv"), bin_dir / "gpgv")
    env = {"BINDER_HARNESS_CACHE": str(tmp_path / "cache"), fetch.MIRROR_ENV: mirror.sources,
           "PATH": str(bin_dir), "BINDER_HARNESS_FETCH": ""}
    t0 = time.monotonic()
    cold = _cli(["images", "fetch", "qemu-x86_64"], env)
    cold_s = time.monotonic() - t0
    assert cold.status == 0, cold.stderr
    assert cold.stderr.count("SHA256 verified (InRelease signed)") == 2, cold.stderr
    assert "/debian/dists/bookworm/InRelease" in mirror.requests
    assert "/debian/dists/bookworm/main/binary-amd64/Packages.xz" in mirror.requests
    for real in real_debs.values():
        cached = deb_cache_path(real.pkg, "amd64").relative_to(deb_cache_path(real.pkg, "amd64").parents[1])
        got = tmp_path / "cache" / cached
        assert got.read_bytes() == real.deb.read_bytes()
    assert (tmp_path / "cache" / "kernels").is_dir() and (tmp_path / "cache" / "busybox").is_dir()
    served = len(mirror.requests)
    t0 = time.monotonic()
    warm = _cli(["images", "fetch", "qemu-x86_64"], env)
    warm_s = time.monotonic() - t0
    assert warm.status == 0, warm.stderr
    assert len(mirror.requests) == served, "a warm cache still asked the mirror"
    listing = _cli(["images", "list"], env)
    assert "qemu-x86_64 " in listing.stdout and "verified" in listing.stdout
    print(f"cold HTTP fetch+extract {cold_s:.1f} s, warm {warm_s:.1f} s")


def test_corrupt_cached_file_is_fetched_again(http_env, mirror, real_debs, monkeypatch):
    real = real_debs["busybox"]
    mirror.publish([real])
    _use(http_env, mirror, monkeypatch)
    first = fetch_deb(real.pkg, "amd64", QUIET)
    assert first.read_bytes() == real.deb.read_bytes()
    pool_gets = lambda: [r for r in mirror.requests if r.endswith(".deb")]  # noqa: E731
    assert len(pool_gets()) == 1
    fetch_deb(real.pkg, "amd64", QUIET)  # intact: nothing fetched
    assert len(pool_gets()) == 1
    with open(first, "r+b") as fh:  # a partial download left behind
        fh.truncate(first.stat().st_size // 2)
    assert not cached_deb_ok(first)
    lines = []
    again = fetch_deb(real.pkg, "amd64", lines.append)
    assert len(pool_gets()) == 2
    assert again.read_bytes() == real.deb.read_bytes() and cached_deb_ok(again)
    assert any("partial or corrupt" in line for line in lines)
    again.write_bytes(b"X" * again.stat().st_size)  # same size, flipped bytes
    fetch_deb(real.pkg, "amd64", QUIET)
    assert len(pool_gets()) == 3 and cached_deb_ok(again)


# -- the signed chain refuses damage, in one line, caching nothing ----------------------

def test_tampered_inrelease_is_refused_in_one_line(http_env, mirror, real_debs, monkeypatch):
    real = real_debs["busybox"]
    mirror.publish([real])
    _flip(mirror.served(real, "InRelease"), needle=b"main/binary-amd64/Packages.xz\n ")  # inside the signed text
    run = _cli(["images", "fetch", "qemu-x86_64"], _use(http_env, mirror, monkeypatch))
    line = one_error_line(run)
    assert line == (f"binder-harness: {mirror.url}/dists/bookworm/InRelease: BAD signature: the file is not what "
                    "the Debian archive signed; the mirror serves a damaged or forged InRelease"), line
    assert not [r for r in mirror.requests if "Packages" in r or r.endswith(".deb")]
    _nothing_cached(Path(http_env["BINDER_HARNESS_CACHE"]))


def test_tampered_packages_index_is_refused_in_one_line(http_env, mirror, real_debs, monkeypatch):
    real = real_debs["busybox"]
    mirror.publish([real])
    _flip(mirror.served(real, "Packages.xz"))
    run = _cli(["images", "fetch", "qemu-x86_64"], _use(http_env, mirror, monkeypatch))
    line = one_error_line(run)
    assert line.startswith(f"binder-harness: {mirror.url}/dists/bookworm/main/binary-amd64/Packages.xz: SHA256 "), line
    assert f"does not match the signed {mirror.url}/dists/bookworm/InRelease" in line
    assert line.endswith("the mirror serves a damaged or different file")
    assert not [r for r in mirror.requests if r.endswith(".deb")]
    _nothing_cached(Path(http_env["BINDER_HARNESS_CACHE"]))


def test_tampered_deb_is_refused_in_one_line(http_env, mirror, real_debs, monkeypatch):
    real = real_debs["busybox"]
    mirror.publish(list(real_debs.values()))
    _flip(mirror.served(real, "deb"), at=real.entry.size // 3)  # same size, one byte off
    run = _cli(["images", "fetch", "qemu-x86_64"], _use(http_env, mirror, monkeypatch))
    assert run.status == 2 and "Traceback" not in run.stderr, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"binder-harness: {mirror.url}/{real.entry.filename}: SHA256 "), last
    assert "does not match the signed Packages index" in last and "damaged or different file" in last
    assert len([r for r in mirror.requests if r.endswith(real.entry.filename)]) == 2  # fetched once more, then refused
    assert not deb_cache_path(real.pkg, "amd64").exists()
    cache = Path(http_env["BINDER_HARNESS_CACHE"])
    assert not list((cache / "debs").glob("*busybox*")) and not list(cache.glob("**/*.tmp"))


def test_damaged_cached_index_is_verified_again_and_refetched(http_env, mirror, real_debs, monkeypatch):
    """A cached InRelease or Packages index is not trusted for having been cached: damaged, it is fetched anew."""
    real = real_debs["busybox"]
    mirror.publish([real])
    _use(http_env, mirror, monkeypatch)
    fetch_deb(real.pkg, "amd64", QUIET)
    cache = Path(http_env["BINDER_HARNESS_CACHE"])
    (folder,) = [p for p in (cache / "indexes").iterdir()]
    for name in ("InRelease", "Packages.xz"):
        deb_cache_path(real.pkg, "amd64").unlink()
        _flip(folder / name, needle=b"main/binary-amd64/Packages.xz\n " if name == "InRelease" else b"")
        before = len(mirror.requests)
        lines: list[str] = []
        assert fetch_deb(real.pkg, "amd64", lines.append).read_bytes() == real.deb.read_bytes()
        assert any(line.startswith(f"cached index {folder} does not verify") for line in lines), lines
        assert (folder / name).read_bytes() == mirror.served(real, name).read_bytes()  # the verified one replaced it
        assert "/debian/dists/bookworm/InRelease" in mirror.requests[before:]


def test_package_missing_from_index_is_one_line(http_env, mirror, real_debs, monkeypatch):
    mirror.publish([real_debs["busybox"]])
    _use(http_env, mirror, monkeypatch)
    with pytest.raises(ConfigError) as err:
        fetch_deb(DebianPackage("busybox-static", "9.9-9"), "amd64", QUIET)
    msg = str(err.value)
    assert "busybox-static=9.9-9 (amd64) is not in the Packages index of" in msg and mirror.url in msg
    assert "\n" not in msg


def test_unreachable_mirror_is_one_line(http_env, monkeypatch):
    monkeypatch.setenv(fetch.MIRROR_ENV, "http://127.0.0.1:9/debian bookworm")
    with pytest.raises(fetch.NetworkUnavailable, match=r"http://127\.0\.0\.1:9/debian/dists/bookworm/InRelease: cannot fetch"):
        fetch_deb(DebianPackage("busybox-static", "1.0"), "amd64", QUIET)


@pytest.mark.parametrize("status,network", [(503, True), (500, True), (401, False)])
def test_a_mirror_5xx_is_the_network_a_4xx_is_not(tmp_path, mirror, status, network):
    mirror.server.answer = status
    src = fetch.Source(mirror.url, ("bookworm",))
    with pytest.raises(ConfigError, match=f"{mirror.url}/dists/bookworm/InRelease: HTTP {status}") as err:
        fetch.Indexes(tmp_path / "indexes", QUIET).suite_index(src, "bookworm", "amd64")
    assert isinstance(err.value, fetch.NetworkUnavailable) == network
    assert not isinstance(err.value, fetch.Untrusted)


def test_real_suite_fails_on_a_broken_signature_and_skips_only_without_network(tmp_path, monkeypatch):
    """_real_suite, which the real-data tests stand on: an InRelease that does not verify (here:
    Debian's, against an empty keyring) must fail them; only an unreachable mirror skips."""
    debian = fetch.Source("http://deb.debian.org/debian", ("bookworm",))
    _real_suite(debian, "bookworm")  # cached (or fetched) and verified with the real keyring
    empty = tmp_path / "empty.gpg"
    empty.write_bytes(b"")
    monkeypatch.setenv(fetch.KEYRING_ENV, str(empty))
    try:
        _real_suite(debian, "bookworm")
    except fetch.Untrusted as exc:
        assert "not verified (signed by a key not in" in str(exc), exc
    except pytest.skip.Exception as exc:
        pytest.fail(f"a broken signature chain skipped the real-data tests: {exc}")
    else:
        pytest.fail("Debian's InRelease verified against an empty keyring")
    monkeypatch.delenv(fetch.KEYRING_ENV)
    with pytest.raises(pytest.skip.Exception, match="cannot reach Debian's bookworm index: .*cannot fetch"):
        _real_suite(fetch.Source("http://127.0.0.1:9/debian", ("bookworm",)), "bookworm")


def test_missing_keyring_or_gpgv_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv(fetch.KEYRING_ENV, str(tmp_path / "nope.gpg"))
    with pytest.raises(ConfigError, match=f"{tmp_path}/nope.gpg: no archive keyring .* fix {fetch.KEYRING_ENV}"):
        fetch.verify_inrelease(b"x", "X")
    monkeypatch.delenv(fetch.KEYRING_ENV)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="gpgv not found: .* install Debian's gpgv package"):
        fetch.verify_inrelease(b"x", "X")


def test_bad_fetch_method(monkeypatch, tmp_path):
    monkeypatch.setenv("BINDER_HARNESS_CACHE", str(tmp_path))
    monkeypatch.setenv("BINDER_HARNESS_FETCH", "ftp")
    with pytest.raises(ConfigError, match="BINDER_HARNESS_FETCH=ftp: use http, apt"):
        fetch_deb(DebianPackage("busybox-static", "1.0"), "amd64", QUIET)
