"""A recipe's Debian packages: fetched with apt where it knows them, else over HTTP through the
signed chain (harness/building/fetch.py), cached by name, version and arch beside a SHA256 stamp,
and fetched again when the stamp no longer matches. The one way any part of the harness gets a
.deb: kernels, modules, busybox, the guest's extra files, linux-source, linux-libc-dev.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.building import debian
from harness.building.recipes import IMAGES_DIR, DebianPackage, Recipe
from harness.errors import ConfigError
from harness.files import cache_root, sha256_file

FETCH_ENV = "BINDER_HARNESS_FETCH"


def deb_cache_path(pkg: DebianPackage, deb_arch: str) -> Path:
    return cache_root() / "debs" / f"{pkg.package}_{pkg.version.replace(':', '%3a')}_{deb_arch}.deb"


def cached_deb_ok(final: Path) -> bool:
    """True when the .deb is there and its bytes hash to the SHA256 recorded when it was fetched."""
    stamp = final.with_suffix(".deb.sha256")
    try:
        expected = stamp.read_text().split()[0]
    except (OSError, IndexError):
        return False
    return final.is_file() and sha256_file(final) == expected


def _fetch_method() -> str:
    method = os.environ.get(FETCH_ENV, "auto").strip() or "auto"
    if method not in ("auto", "apt", "http"):
        raise ConfigError(f"{FETCH_ENV}={method}: use http, apt, or leave it unset (apt when present, else http)")
    if method == "auto":
        return "apt" if shutil.which("apt-get") else "http"
    return method


def fetch_deb(pkg: DebianPackage, deb_arch: str, progress=print, mirrors: tuple[str, ...] = ()) -> Path:
    """Return the cached .deb for pkg, downloading it when absent, partial or corrupt.

    apt-get download is used where apt exists (BINDER_HARNESS_FETCH=apt|http
    forces one); otherwise, or when apt does not know the package, the file
    comes over HTTP, trusted through the suite's signed InRelease (fetch.py).
    """
    final = deb_cache_path(pkg, deb_arch)
    stamp = final.with_suffix(".deb.sha256")
    if cached_deb_ok(final):
        return final
    if final.exists() or stamp.exists():
        progress(f"cached {final.name} is partial or corrupt; fetching it again")
    for stale in (final, stamp):
        stale.unlink(missing_ok=True)
    method = _fetch_method()
    dest = final.parent
    if method == "apt":
        try:
            progress(f"download {pkg.package}={pkg.version} ({deb_arch}) with apt-get")
            got = debian.apt_download(pkg.package, pkg.version, deb_arch, dest)
            sha = sha256_file(got)
        except ConfigError as exc:
            if os.environ.get(FETCH_ENV) == "apt":
                raise
            progress(f"{exc}; trying HTTP")
            method = "http"
    if method == "http":
        from harness.building import fetch  # urllib and deb822: imported only when a download needs them

        sources = fetch.configured_sources(mirrors)
        got, sha = fetch.http_download(pkg.package, pkg.version, deb_arch, dest, sources,
                                       cache_root() / "indexes", progress)
    got.replace(final)
    stamp.write_text(sha + "\n")
    progress(f"cached {final.name}: {final.stat().st_size / 1e6:.1f} MB")
    return final


def recipe_command_name(recipe: Recipe) -> str:
    """How a command line names the recipe: its name when shipped in images/, else its path."""
    return recipe.path.stem if recipe.path.resolve().parent == IMAGES_DIR.resolve() else str(recipe.path)


def fetch_for(recipe: Recipe, pkg: DebianPackage, progress=print, mirrors: tuple[str, ...] | None = None) -> Path:
    """fetch_deb for a package the recipe pins, from the recipe's mirrors (or `mirrors`, e.g. a
    section's own); a pin that has left the archive names the command that moves it."""
    from harness.building import fetch

    try:
        return fetch_deb(pkg, recipe.deb_arch, progress, recipe.mirrors if mirrors is None else mirrors)
    except fetch.PinNotInArchive as exc:
        raise exc.for_recipe(recipe_command_name(recipe)) from None
