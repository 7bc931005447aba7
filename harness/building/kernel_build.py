"""A kernel built by the harness from Debian's source, for a recipe with `kernel.build`.

The steps: the toolchain root (harness/building/toolchain.py), the `linux-source-X` package
through the signed chain (packages.fetch_for: InRelease by gpgv, Packages hash, .deb hash), its
tarball unpacked once per source package, `make allnoconfig` with the recipe's config fragment
(KCONFIG_ALLCONFIG) and `make olddefconfig` (then every option of the fragment is checked:
Kconfig drops an option whose dependencies are unmet without a word), and `make bzImage
modules` with every core. The build runs inside the root with chroot, in a private mount
namespace, with the source and the build directory bind-mounted (build_steps.py).

The result (bzImage, System.map, .config, lib/modules/RELEASE) is cached in
`built-kernels/NAME-KEY`, keyed by every input: the build section, the fragment's content,
the source .deb's SHA256, the toolchain's package list and the build commands below. The full
log stays in `built-kernels/logs/NAME-KEY.log`. One kernel build runs at a time per cache
(a lock): a second process waits for it and then finds the result cached.

A seeded kernel (`ensure_seeded`, below) is the same build with one edit in
drivers/android/binder/: how the Rust driver, which is built in, gets its seeded bugs.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from harness.errors import ConfigError
from harness.files import atomic_dir, cache_root
from harness.building.build_steps import Bind, BuildLog
from harness.building.recipes import KernelBuild, Recipe
from harness.building.toolchain import ensure_toolchain, toolchain_key

CACHE_PART = "built-kernels"
SOURCE_PART = "kernel-source"
WORK_PART = "kernel-work"
# Inside the root: the unpacked source, and the build directory (make O=) with the fragment.
_SRC, _OUT = "/src", "/build"
# The build itself; part of the cache key, so a change here rebuilds.
_MAKE = "make -C {src} O={out} ARCH={arch} -j{jobs}"
BUILD_STEPS = (
    "{make} KCONFIG_ALLCONFIG={out}/fragment.config allnoconfig",
    "{make} olddefconfig",
    "{make} bzImage modules",
    "{make} modules_install INSTALL_MOD_PATH={out}/modroot INSTALL_MOD_STRIP=1",
)
# The harness's arch name -> (kernel ARCH, the boot image under arch/*/boot)
_KERNEL_ARCH = {"x86_64": ("x86_64", "x86/boot/bzImage")}


@dataclass(frozen=True)
class BuiltKernel:
    """A built kernel in the cache: its files, and the log of the build that made it."""

    dir: Path
    kernel: Path  # the bzImage
    modules: Path  # holds lib/modules/RELEASE
    config: Path
    system_map: Path
    log: Path


# -- the config fragment ---------------------------------------------------------------

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse_config(text: str) -> dict[str, str]:
    """A .config or a fragment as {CONFIG_X: value}; `# CONFIG_X is not set` is 'n'."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _SET.match(line):
            out[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            out[m.group(1)] = "n"
    return out


def unstuck_options(fragment: dict[str, str], config: dict[str, str]) -> list[str]:
    """'CONFIG_X=y (got n)' for every fragment option the final .config does not hold."""
    return [f"{name}={want} (got {config.get(name, 'n')})" for name, want in fragment.items()
            if config.get(name, "n") != want]


# -- keys and places -------------------------------------------------------------------

def build_key(recipe: Recipe, build: KernelBuild, source_sha256: str) -> str:
    """Every input of the build: section, fragment content, source .deb, toolchain, commands."""
    inputs = {
        "arch": recipe.arch,
        "source": [build.source.package, build.source.version, source_sha256],
        # the options the fragment sets, not its bytes: a comment edit does not rebuild the kernel
        "fragment": parse_config(build.config.read_text()),
        "toolchain": toolchain_key(build.toolchain),
        "steps": list(BUILD_STEPS),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def _kernel_arch(recipe: Recipe) -> tuple[str, str]:
    if recipe.arch not in _KERNEL_ARCH:
        raise ConfigError(f"{recipe.path}: field 'kernel.build': builds for {recipe.arch} are not supported yet "
                          f"(only {', '.join(_KERNEL_ARCH)}); use a Debian kernel package for {recipe.arch}")
    return _KERNEL_ARCH[recipe.arch]


def _built(final: Path, log: Path) -> BuiltKernel:
    return BuiltKernel(final, final / "bzImage", final, final / "config", final / "System.map", log)


def cached_build(recipe: Recipe) -> BuiltKernel | None:
    """The recipe's built kernel when the cache holds it (no network, nothing built)."""
    build = recipe.kernel_source.build
    key = _stock_key(recipe, build) if build is not None else None
    if key is None:
        return None
    final = cache_root() / CACHE_PART / f"{recipe.name}-{key}"
    return _built(final, cache_root() / CACHE_PART / "logs" / f"{recipe.name}-{key}.log") if final.is_dir() else None


# -- the steps -------------------------------------------------------------------------

def _source_dir(build: KernelBuild, sha: str) -> Path:
    return cache_root() / SOURCE_PART / f"{build.source.package}_{build.source.version}-{sha[:16]}".replace(":", "%3a")


def _unpack(deb: Path, sha: str, build: KernelBuild, log: BuildLog) -> Path:
    """The source tree of a linux-source-X .deb (its usr/src/linux-source-X.tar.xz), unpacked once."""
    from harness.building import debian

    final = _source_dir(build, sha)

    def unpack(tmp: Path) -> None:
        tarballs = debian.extract_deb(deb, tmp, lambda n: n.startswith("usr/src/") and n.endswith(".tar.xz"))
        if len(tarballs) != 1:
            raise log.fail("unpack", f"{deb.name} holds {len(tarballs)} usr/src/*.tar.xz, expected one; "
                                     f"is {build.source.package} a linux-source package?")
        log.run("unpack", ["tar", "-xJf", str(tarballs[0]), "-C", str(tmp)])
        tarballs[0].unlink()
        shutil.rmtree(tmp / "usr", ignore_errors=True)
        trees = [p for p in tmp.iterdir() if (p / "Makefile").is_file() and (p / "Kconfig").is_file()]
        if len(trees) != 1:
            raise log.fail("unpack", f"{tarballs[0].name} holds no single kernel tree (found {len(trees)})")
        trees[0].rename(tmp / "linux")

    return atomic_dir(final, unpack) / "linux"


def _steps(arch: str) -> list[list[str]]:
    make = _MAKE.format(src=_SRC, out=_OUT, arch=arch, jobs=os.cpu_count() or 1)
    return [s.format(make=make, out=_OUT).split() for s in BUILD_STEPS]


def _collect(work: Path, image: str, tmp: Path) -> None:
    for src, name in ((work / "arch" / image, "bzImage"), (work / "System.map", "System.map"), (work / ".config", "config")):
        shutil.copyfile(src, tmp / name)
    mods = work / "modroot" / "lib" / "modules"
    if mods.is_dir():
        shutil.copytree(mods, tmp / "lib" / "modules", symlinks=True, ignore=shutil.ignore_patterns("build", "source"))


@contextlib.contextmanager
def _build_lock(progress) -> Iterator[None]:
    """The one kernel build of this cache at a time (built-kernels/.lock): waits, saying so."""
    base = cache_root() / CACHE_PART
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"another kernel build is running (lock {base / '.lock'}); waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@dataclass(frozen=True)
class _Prepared:
    """What every build of the recipe starts from: the source .deb's SHA256, the stock build's
    key, the toolchain root and the unpacked source tree."""

    sha: str
    stock_key: str
    root: Path
    src: Path


def _prepare(recipe: Recipe, build: KernelBuild, log: BuildLog) -> _Prepared:
    """Fetch the source (signed chain), make or reuse the toolchain root, unpack the source: each a
    logged step."""
    from harness.building.packages import fetch_for

    with log.step("fetch source"):
        deb = fetch_for(recipe, build.source, lambda msg: log.note(msg))
    sha = deb.with_suffix(".deb.sha256").read_text().split()[0]
    root = ensure_toolchain(build.toolchain, log)
    with log.step("unpack"):
        src = _unpack(deb, sha, build, log)
    return _Prepared(sha, build_key(recipe, build, sha), root, src)


def _configure(log: BuildLog, root: Path, binds: tuple[Bind, ...], build: KernelBuild, out: Path,
               steps: list[list[str]]) -> None:
    """allnoconfig plus the fragment, then olddefconfig, in `out`; fails naming the first fragment
    option that did not stick."""
    allno, olddef = steps[:2]
    shutil.copyfile(build.config, out / "fragment.config")
    with log.step("config"):
        log.run_in_root("config", root, binds, allno)
        log.run_in_root("config", root, binds, olddef)
        lost = unstuck_options(parse_config(build.config.read_text()), parse_config((out / ".config").read_text()))
        if lost:
            raise log.fail("config", f"{build.config.name}: {lost[0]} did not stick after olddefconfig "
                                     f"(an unmet dependency{f'; {len(lost) - 1} more' if len(lost) > 1 else ''}); "
                                     f"add what it depends on to the fragment")


def ensure_built(recipe: Recipe, progress=print) -> BuiltKernel:
    """The recipe's kernel, built when the cache does not hold it; every step is logged."""
    build = recipe.kernel_source.build
    if build is None:
        raise ConfigError(f"{recipe.path}: kernel is not built by the harness (no 'kernel.build')")
    arch, image = _kernel_arch(recipe)
    cached = cached_build(recipe)
    if cached is not None:
        return cached
    with _build_lock(progress):
        return _build_locked(recipe, build, arch, image, progress)


def _build_locked(recipe: Recipe, build: KernelBuild, arch: str, image: str, progress) -> BuiltKernel:
    cached = cached_build(recipe)  # built by the process we waited for
    if cached is not None:
        return cached
    t0 = time.monotonic()
    logs = cache_root() / CACHE_PART / "logs"
    pending = logs / f"{recipe.name}-pending-{os.getpid()}.log"
    log = BuildLog(pending, f"build {recipe.name}", progress)
    progress(f"build {recipe.name}: full log in {pending}")
    try:
        prep = _prepare(recipe, build, log)
        key, root = prep.stock_key, prep.root
        final = cache_root() / CACHE_PART / f"{recipe.name}-{key}"
        work = cache_root() / WORK_PART / f"{recipe.name}-{key}"
        shutil.rmtree(work, ignore_errors=True)  # a build that died half way starts clean
        work.mkdir(parents=True)
        binds = (Bind(prep.src, _SRC), Bind(work, _OUT))
        steps = _steps(arch)
        _, _, make, install = steps
        _configure(log, root, binds, build, work, steps)
        with log.step("make"):
            log.run_in_root("make", root, binds, make)
            log.run_in_root("make", root, binds, install)
        atomic_dir(final, lambda tmp: _collect(work, image, tmp))
        shutil.rmtree(work, ignore_errors=True)
        total = time.monotonic() - t0
        log.note(f"built {final} in {total:.0f} s; steps: {json.dumps({k: round(v, 1) for k, v in log.times.items()})}")
    except BaseException:
        log.note("build failed")
        raise
    final_log = logs / f"{recipe.name}-{key}.log"
    pending.replace(final_log)
    progress(f"build {recipe.name}: {final} ({total:.0f} s); log {final_log}")
    return _built(final, final_log)


# -- seeded kernels: the same build with one edit in the built-in driver ------------------
#
# The Rust driver is built in (a bool Kconfig), so a seeded bug in it is a seeded kernel. A
# seeded kernel is the recipe's build with one SourceEdit in drivers/android/binder/, cached in
# `built-kernels/NAME-seed-SEED-KEY` (KEY: the stock key plus the edit). Seeded builds share one
# build tree per stock key, `kernel-work/NAME-KEY-seeds/` (build/ is make's O=, binder/ a copy of
# the driver's directory, bind-mounted over the read-only source's): the first seed costs a full
# build, each one after only what the edit touches (the rust_binder crate, the vmlinux link).
# Each build applies its edit, runs make, keeps the result and writes the original back (with a
# fresh mtime, so the next build recompiles what this one changed). The stock kernel's tree and
# cache entry are never touched.

SEED_DIR = "drivers/android/binder"
SEED_LAYOUT = "seeds 1: one edit in a copy of drivers/android/binder bind-mounted over the source"


@dataclass(frozen=True)
class SourceEdit:
    """One edit of the driver: in `path` (relative to drivers/android/binder/), the text `old`,
    found exactly once, becomes `new`."""

    path: str
    old: str
    new: str


def seeded_key(stock_key: str, edit: SourceEdit) -> str:
    """A seeded kernel's key: the stock build's key and the edit."""
    inputs = {"stock": stock_key, "layout": SEED_LAYOUT, "edit": [edit.path, edit.old, edit.new]}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def apply_edit(text: str, edit: SourceEdit, where: str) -> str:
    """`text` with the edit applied; a ConfigError in one line unless `old` occurs exactly once."""
    count = text.count(edit.old)
    if count != 1:
        first = (edit.old.strip().splitlines() or [""])[0].strip()
        raise ConfigError(f"{where}: edit of {SEED_DIR}/{edit.path}: old text {first!r} found {count} times, "
                          f"expected exactly once; fix the edit's old text to match the source")
    return text.replace(edit.old, edit.new)


def _seeded_dir(recipe: Recipe, seed: str, stock_key: str, edit: SourceEdit) -> Path:
    return cache_root() / CACHE_PART / f"{recipe.name}-seed-{seed}-{seeded_key(stock_key, edit)}"


def _stock_key(recipe: Recipe, build: KernelBuild) -> str | None:
    from harness.building.packages import cached_deb_ok, deb_cache_path

    deb = deb_cache_path(build.source, recipe.deb_arch)
    if not cached_deb_ok(deb):
        return None
    return build_key(recipe, build, deb.with_suffix(".deb.sha256").read_text().split()[0])


def _cached_source(recipe: Recipe, build: KernelBuild) -> Path | None:
    """The unpacked source tree when the cache holds it (no network, nothing unpacked)."""
    from harness.building.packages import cached_deb_ok, deb_cache_path

    deb = deb_cache_path(build.source, recipe.deb_arch)
    if not cached_deb_ok(deb):
        return None
    src = _source_dir(build, deb.with_suffix(".deb.sha256").read_text().split()[0]) / "linux"
    return src if src.is_dir() else None


def _edited(src: Path, seed: str, edit: SourceEdit) -> tuple[str, str]:
    """(the pristine text, the edited text) of the file the edit names in the source tree."""
    pristine = src / SEED_DIR / edit.path
    if not pristine.is_file():
        raise ConfigError(f"seed {seed}: edit of {SEED_DIR}/{edit.path}: no such file in {src}; "
                          f"name a file under {SEED_DIR}/")
    original = pristine.read_text()
    return original, apply_edit(original, edit, f"seed {seed}")


def cached_seeded_build(recipe: Recipe, seed: str, edit: SourceEdit) -> BuiltKernel | None:
    """The seeded kernel when the cache holds it (no network, nothing built)."""
    build = recipe.kernel_source.build
    key = _stock_key(recipe, build) if build is not None else None
    if key is None:
        return None
    final = _seeded_dir(recipe, seed, key, edit)
    return _built(final, cache_root() / CACHE_PART / "logs" / f"{final.name}.log") if final.is_dir() else None


def ensure_seeded(recipe: Recipe, seed: str, edit: SourceEdit, progress=print) -> BuiltKernel:
    """The recipe's kernel with one edit in its binder driver, built incrementally when not cached."""
    build = recipe.kernel_source.build
    if build is None:
        raise ConfigError(f"{recipe.path}: kernel is not built by the harness (no 'kernel.build'); "
                          f"a seeded kernel needs a recipe with 'kernel.build'")
    if not re.fullmatch(r"[a-z0-9_]+", seed):
        raise ConfigError(f"seed name {seed!r}: use lowercase letters, digits and _")
    arch, image = _kernel_arch(recipe)
    cached = cached_seeded_build(recipe, seed, edit)
    if cached is not None:
        return cached
    source = _cached_source(recipe, build)
    if source is not None:  # a bad edit is refused at once, not after waiting for another build
        _edited(source, seed, edit)
    with _build_lock(progress):
        cached = cached_seeded_build(recipe, seed, edit)
        return cached or _seeded_locked(recipe, build, seed, edit, arch, image, progress)


def _seeded_locked(recipe: Recipe, build: KernelBuild, seed: str, edit: SourceEdit, arch: str, image: str,
                   progress) -> BuiltKernel:
    t0 = time.monotonic()
    logs = cache_root() / CACHE_PART / "logs"
    pending = logs / f"{recipe.name}-seed-{seed}-pending-{os.getpid()}.log"
    log = BuildLog(pending, f"build {recipe.name} seed {seed}", progress)
    progress(f"build {recipe.name} seed {seed}: full log in {pending}")
    try:
        prep = _prepare(recipe, build, log)
        stock, root, src = prep.stock_key, prep.root, prep.src
        final = _seeded_dir(recipe, seed, stock, edit)
        original, edited = _edited(src, seed, edit)
        seeds = cache_root() / WORK_PART / f"{recipe.name}-{stock}-seeds"
        out, driver = seeds / "build", seeds / "binder"
        if not driver.is_dir():  # the driver's pristine sources, their mtimes kept
            shutil.copytree(src / SEED_DIR, driver, copy_function=shutil.copy2)
        out.mkdir(parents=True, exist_ok=True)
        binds = (Bind(src, _SRC), Bind(driver, f"{_SRC}/{SEED_DIR}"), Bind(out, _OUT))
        steps = _steps(arch)
        _, _, make, install = steps
        configured = out / ".seeds-configured"
        if not configured.is_file():
            _configure(log, root, binds, build, out, steps)
            configured.write_text(stock + "\n")
        target = driver / edit.path
        try:
            target.write_text(edited)
            log.note(f"edit {SEED_DIR}/{edit.path}: {edit.old!r} -> {edit.new!r}")
            with log.step("make"):
                log.run_in_root("make", root, binds, make)
                shutil.rmtree(out / "modroot", ignore_errors=True)
                log.run_in_root("make", root, binds, install)
            atomic_dir(final, lambda tmp: _collect(out, image, tmp))
        finally:
            target.write_text(original)  # a fresh mtime: the next build recompiles what this one changed
        total = time.monotonic() - t0
        log.note(f"built {final} in {total:.0f} s; steps: {json.dumps({k: round(v, 1) for k, v in log.times.items()})}")
    except BaseException:
        log.note("build failed")
        raise
    pending.replace(logs / f"{final.name}.log")
    progress(f"build {recipe.name} seed {seed}: {final} ({total:.0f} s); log {logs / f'{final.name}.log'}")
    return _built(final, logs / f"{final.name}.log")
