"""What the image cache holds, prefetching recipes for offline CI, and cleaning it.

The cache (BINDER_HARNESS_CACHE, default ~/.cache/binder-harness) has one
directory per kind of thing; each entry is a file or a directory built atomically.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.files import cache_root
from harness.building import module_btf
from harness.building.build import ensure_busybox, ensure_kernel
from harness.building.packages import cached_deb_ok, deb_cache_path, fetch_for
from harness.building.recipes import Recipe, find_recipe, load_recipe, shipped_recipes

PARTS = {
    "debs": "downloaded Debian packages (.deb, with SHA256 stamps)",
    "kernels": "kernels and modules extracted from those packages",
    "busybox": "busybox extracted from its package",
    "custom-kernels": "vmlinux extracted from --kernel bzImages, by content",
    module_btf.CACHE_PART: "copies of --binder-module files given BTF made from their DWARF (harness/building/module_btf.py)",
    "initramfs": "built guest initramfs images",
    "indexes": "signed InRelease files and the Packages indexes they vouch for, fetched over HTTP (verified on every read)",
    "probe": "cross-built binder-probe binaries",
    "uapi": "binder's uapi header (binder.h) of each recipe kernel's source version, with its command codes",
    "seeded": "deliberately broken modules built by the harness's own tests",
    "snapshots": "saved QEMU guests, restored instead of booted (harness/targets/snapshots.py)",
    "built-kernels": "kernels built by the harness for recipes with kernel.build, by every input; logs/ holds "
                     "each build's full log (harness/building/kernel_build.py)",
    "kernel-source": "Debian linux-source-X trees, unpacked once for kernel.build",
    "kernel-work": "build directories of kernel.build (removed when a build succeeds)",
    "toolchains": "Debian roots made by debootstrap for kernel.build, keyed by their pinned packages",
}


@dataclass(frozen=True)
class CacheEntry:
    part: str
    name: str
    size: int
    note: str = ""


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def list_cache() -> list[CacheEntry]:
    root = cache_root()
    entries = []
    for part in PARTS:
        base = root / part
        if not base.is_dir():
            continue
        for item in sorted(base.iterdir()):
            if item.name.endswith((".sha256", ".tmp", ".part")):
                continue
            note = ""
            if part == "debs" and item.suffix == ".deb":
                note = "verified" if cached_deb_ok(item) else "CORRUPT or partial: fetched again on next use"
            entries.append(CacheEntry(part, item.name, _size(item), note))
    return entries


def _extracted(recipe: Recipe, pkg) -> Path:
    key = f"{pkg.package}_{pkg.version}_{recipe.deb_arch}".replace(":", "%3a")
    return cache_root() / ("busybox" if pkg == recipe.busybox else "kernels") / key


def recipe_status(recipe: Recipe) -> str:
    """'ready' when every package of the recipe is extracted (or verified) in the cache, else what is missing."""
    missing = [f"{p.package}={p.version}" for p in recipe.debian_packages()
               if not _extracted(recipe, p).is_dir() and not cached_deb_ok(deb_cache_path(p, recipe.deb_arch))]
    if recipe.kernel_source.build is not None:
        from harness.building.kernel_build import cached_build

        if cached_build(recipe) is None:
            missing.append(f"the kernel (binder-harness images build {recipe.name})")
    return "ready" if not missing else "missing " + ", ".join(missing)


def recipes_named(names: list[str]) -> list[Recipe]:
    return [load_recipe(find_recipe(n)) for n in names] if names else [load_recipe(p) for p in shipped_recipes()]


def prefetch(recipe: Recipe, progress=print) -> None:
    """Download and extract everything the recipe needs, so later runs work offline."""
    for pkg in recipe.debian_packages():
        fetch_for(recipe, pkg, progress)
    if recipe.kernel_source.build is not None:  # the source only: `images build` builds
        fetch_for(recipe, recipe.kernel_source.build.source, progress)
    if recipe.kernel_source.debian is not None:
        ensure_kernel(recipe, progress)
    ensure_busybox(recipe, progress)


def _snapshots_of(root: Path, image: str) -> list[Path]:
    """Snapshot directories of guests booted from this recipe's image."""
    found = []
    for meta in (root / "snapshots").glob("*/meta.json"):
        try:
            if json.loads(meta.read_text()).get("image") == image:
                found.append(meta.parent)
        except (OSError, ValueError, AttributeError):
            found.append(meta.parent)  # unreadable: nothing can vouch for it
    return found


def clean(targets: list[str], progress=print) -> int:
    """Remove cache parts (PARTS names) or a recipe's files (its name or path); return bytes freed."""
    root = cache_root()
    doomed: list[Path] = []
    if not targets:
        doomed = [root / part for part in PARTS] + [root / "kvm-probe.json"]
    for target in targets:
        if target in PARTS:
            doomed.append(root / target)
            continue
        try:
            recipe = load_recipe(find_recipe(target))
        except ConfigError:
            raise ConfigError(f"images clean {target}: not a cache part ({', '.join(PARTS)}) nor a recipe") from None
        for pkg in recipe.debian_packages():
            deb = deb_cache_path(pkg, recipe.deb_arch)
            doomed += [deb, deb.with_suffix(".deb.sha256")]
            doomed.append(_extracted(recipe, pkg))
        doomed += list((root / "initramfs").glob(f"{recipe.name}-*.cpio"))
        if recipe.kernel_source.build is not None:  # its built kernels, their logs and build directories
            for part in ("built-kernels", "built-kernels/logs", "kernel-work"):
                doomed += [p for p in (root / part).glob(f"{recipe.name}-*") if p.name != "logs"]
        doomed += _snapshots_of(root, recipe.name)
    freed = 0
    for path in doomed:
        if not path.exists():
            continue
        size = _size(path)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        freed += size
        progress(f"removed {path} ({size / 1e6:.1f} MB)")
    return freed
