"""Fetching Debian packages over HTTP, as on a host without apt.

A local HTTP server (127.0.0.1, started here) plays the Debian mirror: it
serves real .deb files from the cache and a Packages.xz built from their real
stanzas (`apt-cache show`). Requests are counted, so a warm cache is seen to
make none.
"""
from __future__ import annotations

import functools
import http.server
import lzma
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.images import fetch
from harness.errors import ConfigError
from harness.images.build import cached_deb_ok, deb_cache_path, fetch_deb
from harness.images.recipes import DebianPackage, recipe_for_arch
from tests.helpers import REPO, CliRun

QUIET = lambda _: None  # noqa: E731


def _stanza(pkg: DebianPackage, arch: str) -> str:
    if shutil.which("apt-cache") is None:
        pytest.skip("apt-cache is needed to take real Packages stanzas")
    proc = subprocess.run(["apt-cache", "show", f"{pkg.package}:{arch}={pkg.version}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"apt does not know {pkg.package}:{arch}={pkg.version}")
    return proc.stdout.strip().split("\n\n")[0] + "\n"


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        super().do_GET()


class Mirror:
    """A Debian-shaped directory served over HTTP on 127.0.0.1."""

    def __init__(self, root: Path):
        self.root = root
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
        self.server.requests = []
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/debian"

    @property
    def requests(self) -> list[str]:
        return self.server.requests

    def publish(self, arch: str, packages: list[tuple[DebianPackage, Path, str]]) -> None:
        """Serve each (package, .deb, stanza) at its pool path, with a Packages.xz listing them."""
        for _pkg, deb, stanza in packages:
            filename = fetch.parse_stanza(stanza)["Filename"]
            dest = self.root / "debian" / filename
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.unlink(missing_ok=True)
            os.symlink(deb, dest)
        index = self.root / "debian" / "dists" / "bookworm" / "main" / f"binary-{arch}"
        index.mkdir(parents=True, exist_ok=True)
        text = "\n".join(stanza for _, _, stanza in packages)
        (index / "Packages.xz").write_bytes(lzma.compress(text.encode()))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def real_debs() -> dict[str, tuple[DebianPackage, Path, str]]:
    """The default x86_64 recipe's kernel and busybox .debs (from the user's cache) and their stanzas."""
    recipe = recipe_for_arch("x86_64")
    out = {}
    for key, pkg in (("kernel", recipe.kernel), ("busybox", recipe.busybox)):
        deb = fetch_deb(pkg, "amd64", QUIET)
        out[key] = (pkg, deb, _stanza(pkg, "amd64"))
    return out


@pytest.fixture
def mirror(tmp_path):
    m = Mirror(tmp_path / "www")
    yield m
    m.close()


@pytest.fixture
def http_env(tmp_path, mirror, monkeypatch):
    """This process fetches over HTTP from the local mirror into an empty cache."""
    env = {"BINDER_HARNESS_CACHE": str(tmp_path / "cache"), "BINDER_HARNESS_FETCH": "http",
           fetch.MIRROR_ENV: f"{mirror.url} bookworm"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _cli(args: list[str], env: dict[str, str]) -> CliRun:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **env})
    return CliRun(proc.returncode, proc.stdout, proc.stderr, Path("."))


def test_parse_real_packages_stanzas(real_debs):
    pkg, deb, stanza = real_debs["busybox"]
    entries = fetch.parse_packages("\n".join(s for _, _, s in real_debs.values()))
    assert [e.package for e in entries] == [real_debs["kernel"][0].package, "busybox-static"]
    busybox = entries[1]
    assert busybox.version == pkg.version and busybox.architecture == "amd64"
    assert busybox.filename.startswith("pool/main/b/busybox/") and busybox.size == deb.stat().st_size
    assert busybox.sha256 == fetch.parse_stanza(stanza)["SHA256"]
    text = "\n".join(s for _, _, s in real_debs.values())
    assert fetch.find_in_index(text, "busybox-static", pkg.version, "amd64") == busybox
    assert fetch.find_in_index(text, "busybox-static", "0.0-1", "amd64") is None
    assert fetch.find_in_index(text, "busybox", pkg.version, "amd64") is None


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
    mirror.publish("amd64", list(real_debs.values()))
    bin_dir = tmp_path / "bin"  # a PATH with no apt-get on it: the harness must pick HTTP by itself
    bin_dir.mkdir()
    env = {"BINDER_HARNESS_CACHE": str(tmp_path / "cache"), fetch.MIRROR_ENV: f"{mirror.url} bookworm",
           "PATH": str(bin_dir), "BINDER_HARNESS_FETCH": ""}
    t0 = time.monotonic()
    cold = _cli(["images", "fetch", "qemu-x86_64"], env)
    cold_s = time.monotonic() - t0
    assert cold.status == 0, cold.stderr
    assert cold.stderr.count("SHA256 verified") == 2, cold.stderr
    assert "/debian/dists/bookworm/main/binary-amd64/Packages.xz" in mirror.requests
    for pkg, deb, _ in real_debs.values():
        cached = deb_cache_path(pkg, "amd64").relative_to(deb_cache_path(pkg, "amd64").parents[1])
        got = tmp_path / "cache" / cached
        assert got.read_bytes() == deb.read_bytes()
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


def test_corrupt_cached_file_is_fetched_again(http_env, mirror, real_debs):
    mirror.publish("amd64", [real_debs["busybox"]])
    pkg, original, _ = real_debs["busybox"]
    first = fetch_deb(pkg, "amd64", QUIET)
    assert first.read_bytes() == original.read_bytes()
    pool_gets = lambda: [r for r in mirror.requests if r.endswith(".deb")]  # noqa: E731
    assert len(pool_gets()) == 1
    fetch_deb(pkg, "amd64", QUIET)  # intact: nothing fetched
    assert len(pool_gets()) == 1
    with open(first, "r+b") as fh:  # a partial download left behind
        fh.truncate(first.stat().st_size // 2)
    assert not cached_deb_ok(first)
    lines = []
    again = fetch_deb(pkg, "amd64", lines.append)
    assert len(pool_gets()) == 2
    assert again.read_bytes() == original.read_bytes() and cached_deb_ok(again)
    assert any("partial or corrupt" in line for line in lines)
    again.write_bytes(b"X" * again.stat().st_size)  # same size, flipped bytes
    fetch_deb(pkg, "amd64", QUIET)
    assert len(pool_gets()) == 3 and cached_deb_ok(again)


def test_wrong_sha256_on_server_is_one_line(http_env, mirror, real_debs):
    pkg, deb, stanza = real_debs["busybox"]
    sha = fetch.parse_stanza(stanza)["SHA256"]
    lying = stanza.replace(sha, "0" * 64)
    mirror.publish("amd64", [real_debs["kernel"], (pkg, deb, lying)])
    run = _cli(["images", "fetch", "qemu-x86_64"], http_env)
    assert run.status == 2, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert "Traceback" not in run.stderr
    assert last.startswith("binder-harness: http://127.0.0.1:") and "busybox-static" in last
    assert "does not match the Packages index" in last and "damaged or different file" in last
    cache = Path(http_env["BINDER_HARNESS_CACHE"])
    assert not deb_cache_path(pkg, "amd64").exists()
    assert not list((cache / "debs").glob("*busybox*"))


def test_package_missing_from_index_is_one_line(http_env, mirror, real_debs):
    mirror.publish("amd64", [real_debs["busybox"]])
    with pytest.raises(ConfigError) as err:
        fetch_deb(DebianPackage("busybox-static", "9.9-9"), "amd64", QUIET)
    msg = str(err.value)
    assert "busybox-static=9.9-9 (amd64) is not in the Packages index of" in msg and mirror.url in msg
    assert "\n" not in msg


def test_unreachable_mirror_is_one_line(http_env, monkeypatch):
    monkeypatch.setenv(fetch.MIRROR_ENV, "http://127.0.0.1:9/debian bookworm")
    with pytest.raises(ConfigError, match=r"http://127\.0\.0\.1:9/debian/dists/bookworm/main/binary-amd64/Packages\.xz: cannot fetch"):
        fetch_deb(DebianPackage("busybox-static", "1.0"), "amd64", QUIET)


def test_bad_fetch_method(monkeypatch, tmp_path):
    monkeypatch.setenv("BINDER_HARNESS_CACHE", str(tmp_path))
    monkeypatch.setenv("BINDER_HARNESS_FETCH", "ftp")
    with pytest.raises(ConfigError, match="BINDER_HARNESS_FETCH=ftp: use http, apt"):
        fetch_deb(DebianPackage("busybox-static", "1.0"), "amd64", QUIET)
