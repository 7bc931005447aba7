"""Guest images: a recipe in images/*.yaml becomes a bootable kernel + initramfs.

Everything fetched or built is cached under the cache root, keyed by content,
and written atomically, so an interrupted build never leaves a half file that a
later run would trust.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness.building import debian, module_btf
from harness.evidence import trace as tracing
from harness.building.cpio import CpioWriter
from harness.errors import ConfigError
from harness.arches import GUEST_ARCHES
from harness.files import atomic_dir, atomic_write_bytes, atomic_write_text, cache_root, sha256_file
from harness.building.kernel import (KernelIdentity, extract_vmlinux, has_pvh_note, identify_kernel, plan_modules, unpack_modules,
                            read_modinfo)
from harness.building.packages import fetch_for
from harness.building.recipes import IMAGES_DIR, Recipe

@dataclass(frozen=True)
class KernelFiles:
    kernel: Path  # bootable: vmlinux (x86_64, PVH), bzImage (no PVH possible) or Image (arm64)
    moddir: Path | None  # lib/modules/<release>; None when every module is built in
    identity: KernelIdentity
    source: str = ""  # "debian PACKAGE=VERSION" or the kernel file given


def _cached_identity(kernel: Path) -> KernelIdentity:
    """identify_kernel for a kernel in the package cache, remembered beside it: the directory
    is content-keyed and never changes, and reading a 66 MB vmlinux costs ~0.05 s a run."""
    memo = kernel.with_name("identity.json")
    st = kernel.stat()
    try:
        data = json.loads(memo.read_text())
        if data.pop("size") == st.st_size and data.pop("mtime_ns") == st.st_mtime_ns:
            return KernelIdentity(**data)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    ident = identify_kernel(kernel, "kernel package")
    try:
        atomic_write_text(memo, json.dumps({"arch": ident.arch, "release": ident.release, "kind": ident.kind,
                                            "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    except OSError:
        pass
    return ident


def ensure_kernel(recipe: Recipe, progress=print) -> KernelFiles:
    """Extract the boot image and modules of the recipe's Debian kernel package (cached)."""
    pkg = recipe.kernel
    key = f"{pkg.package}_{pkg.version}_{recipe.deb_arch}".replace(":", "%3a")
    final = cache_root() / "kernels" / key

    def build(tmp: Path) -> None:
        files = []
        for p in (pkg, recipe.kernel_source.debian_modules):
            if p is None:
                continue
            deb = fetch_for(recipe, p, progress)
            progress(f"extract {deb.name}")
            files += debian.extract_deb(deb, tmp, lambda n: n.startswith(("boot/vmlinuz-", "lib/modules/",
                                                                            "usr/lib/modules/"))
                                        and not n.endswith(".map"))
        # bookworm and trixie: boot/vmlinuz-RELEASE; sid: usr/lib/modules/RELEASE/vmlinuz
        vmlinuz = next((f for f in files if f.name.startswith("vmlinuz-") or f.name == "vmlinuz"), None)
        if vmlinuz is None:
            raise ConfigError(f"{pkg.package}={pkg.version}: no vmlinuz inside; is it a kernel image package?")
        ident = identify_kernel(vmlinuz, "kernel package")
        if ident.kind == "bzImage":
            (tmp / "kernel").write_bytes(extract_vmlinux(vmlinuz.read_bytes()))
            vmlinuz.unlink()
        else:
            vmlinuz.replace(tmp / "kernel")
        if (tmp / "usr" / "lib" / "modules").is_dir():  # merged /usr (trixie on): one place in the cache
            (tmp / "lib").mkdir(exist_ok=True)
            (tmp / "usr" / "lib" / "modules").rename(tmp / "lib" / "modules")
            shutil.rmtree(tmp / "usr")
        if (tmp / "lib" / "modules").is_dir():
            unpack_modules(tmp / "lib" / "modules")

    final = atomic_dir(final, build)
    ident = _cached_identity(final / "kernel")
    if ident.arch != recipe.arch:
        raise ConfigError(f"{recipe.path}: kernel {pkg.package} is {ident.arch}, recipe arch is {recipe.arch}")
    return KernelFiles(final / "kernel", final / "lib" / "modules" / ident.release, ident, f"debian {pkg.package}={pkg.version}")


def _is_release_dir(path: Path) -> bool:
    return path.is_dir() and any((path / n).exists() for n in ("modules.dep", "modules.order", "modules.builtin"))


def resolve_moddir(modules: Path, release: str, flag: str = "--modules") -> Path:
    """The modules directory for `release` inside `modules`: a tree holding lib/modules/RELEASE,
    lib/modules itself, lib/modules/RELEASE, or any directory holding .ko files."""
    if not modules.is_dir():
        raise ConfigError(f"{flag} {modules}: not a directory; pass a modules tree (lib/modules/RELEASE) or a directory holding binder_linux.ko")
    for candidate in (modules / "lib" / "modules" / release, modules / release):
        if candidate.is_dir():
            return candidate
    for parent in (modules / "lib" / "modules", modules):
        others = sorted(p.name for p in parent.iterdir() if _is_release_dir(p)) if parent.is_dir() else []
        if others:
            raise ConfigError(f"{flag} {modules}: holds modules for {', '.join(others)}, but the kernel is {release}; "
                              f"pass the modules built with this kernel")
    if next(modules.rglob("*.ko"), None) is None:
        raise ConfigError(f"{flag} {modules}: no lib/modules/{release} and no .ko files inside")
    return modules


def _bootable_x86(path: Path, ident: KernelIdentity, flag: str, progress) -> Path:
    """A bzImage becomes its extracted vmlinux (PVH boot, ~3 s faster) when it can; cached by content."""
    data = path.read_bytes()
    if ident.kind == "vmlinux":
        if not has_pvh_note(data):
            raise ConfigError(f"{flag} {path}: this vmlinux has no PVH entry note (CONFIG_PVH=n); pass its bzImage instead")
        return path
    digest = hashlib.sha256(data).hexdigest()[:16]
    final = cache_root() / "custom-kernels" / digest
    if (final / "vmlinux").is_file():
        return final / "vmlinux"
    if (final / "bzImage").is_file():
        return final / "bzImage"
    try:
        elf = extract_vmlinux(data)
    except ConfigError as exc:
        if "compressed;" not in str(exc):
            raise ConfigError(f"{flag} {path}: {exc}") from None
        elf = None
    pvh = elf is not None and has_pvh_note(elf)
    if not pvh:
        progress(f"{flag} {path}: {'no PVH entry note' if elf else 'payload cannot be unpacked here'}; booting the bzImage itself")

    def build(tmp: Path) -> None:
        if pvh and elf is not None:  # has a PVH note, so it was unpacked
            (tmp / "vmlinux").write_bytes(elf)
        else:
            shutil.copyfile(path, tmp / "bzImage")

    atomic_dir(final, build)
    return final / ("vmlinux" if pvh else "bzImage")


def custom_kernel(path: Path, modules: Path | None, arch: str, progress=print,
                  flag: str = "--kernel", mod_flag: str = "--modules") -> KernelFiles:
    """A kernel file given by the user (or a recipe): identified, arch-checked, made bootable."""
    if not path.is_file():
        raise ConfigError(f"{flag} {path}: no such file")
    ident = identify_kernel(path, flag)
    if ident.arch != arch:
        raise ConfigError(f"{flag} {path}: is an {ident.arch} kernel ({ident.release}), but the target is qemu:{arch}; "
                          f"pass --target qemu:{ident.arch} or an {arch} kernel")
    boots = GUEST_ARCHES[arch].kernel_kind  # what QEMU boots for this arch
    if boots == "Image" and ident.kind != "Image":
        raise ConfigError(f"{flag} {path}: an {arch} {ident.kind} cannot boot on -M virt here; pass arch/{arch}/boot/Image")
    # x86: a vmlinux boots through PVH; a bzImage is unpacked to one when it can
    bootable = _bootable_x86(path, ident, flag, progress) if boots == "vmlinux" else path
    moddir = resolve_moddir(modules, ident.release, mod_flag) if modules is not None else None
    return KernelFiles(bootable, moddir, ident, str(path))


def ensure_busybox(recipe: Recipe, progress=print) -> Path:
    key = f"{recipe.busybox.package}_{recipe.busybox.version}_{recipe.deb_arch}".replace(":", "%3a")

    def build(tmp: Path) -> None:
        deb = fetch_for(recipe, recipe.busybox, progress)
        debian.extract_deb(deb, tmp, lambda n: n == "bin/busybox")

    return atomic_dir(cache_root() / "busybox" / key, build) / "bin" / "busybox"


def check_module(module: Path, kernel: KernelIdentity, flag: str = "--binder-module") -> None:
    """Refuse a module built for another arch or kernel release, naming both."""
    info = read_modinfo(module)
    if info.arch != kernel.arch:
        raise ConfigError(f"{flag} {module}: built for {info.arch}, but the kernel is {kernel.arch} ({kernel.release})")
    if info.release != kernel.release:
        raise ConfigError(
            f"{flag} {module}: vermagic says {info.release or 'nothing'}, but the kernel is {kernel.release}; "
            f"rebuild the module against this kernel's headers"
        )


@dataclass(frozen=True)
class GuestImage:
    recipe: Recipe
    kernel: Path
    initramfs: Path
    identity: KernelIdentity
    binder_module: str  # "stock" or the path given
    binder_module_sha256: str = ""
    modules: tuple[str, ...] = field(default=())
    kernel_source: str = ""  # "debian PACKAGE=VERSION" or the kernel file given
    builtin: tuple[str, ...] = ()  # wanted modules that are built into the kernel


_APPLET_NAME = re.compile(rb"[a-z0-9_.\[\]-]+")


def busybox_applets(binary: bytes) -> list[str]:
    """Applet names in a busybox binary, read from its sorted applet name table.

    The table is one run of NUL-separated names in strict order, starting
    "[", "[[". Linking them in the image at build time spares the guest
    `busybox --install` (about 0.15 s under TCG). An empty list means the table
    was not found; the guest init then installs the links itself.
    """
    start = binary.find(b"\0[\0[[\0")
    if start < 0:
        return []
    names: list[bytes] = []
    pos = start + 1
    while True:
        end = binary.find(b"\0", pos)
        name = binary[pos:end] if end > pos else b""
        if not _APPLET_NAME.fullmatch(name) or (names and name <= names[-1]):
            break
        names.append(name)
        pos = end + 1
    return [n.decode() for n in names] if len(names) >= 50 else []


def _init_script(module_files: list[str]) -> bytes:
    template = (IMAGES_DIR / "guest-init.sh").read_text()
    return (template.replace("@MODULES@", " ".join(module_files))
            .replace("@TRACE_BUFFER_KB@", str(tracing.BUFFER_KB)).encode())


def select_kernel(recipe: Recipe, kernel: Path | None, modules: Path | None, progress=print) -> KernelFiles:
    """--kernel/--modules, else the recipe's local kernel file, else its Debian package."""
    if kernel is not None:
        return custom_kernel(kernel, modules, recipe.arch, progress)
    src = recipe.kernel_source
    if src.file is not None:
        kern = custom_kernel(src.file, src.modules, recipe.arch, progress,
                             f"{recipe.path}: kernel.file", f"{recipe.path}: kernel.modules")
    elif src.build is not None:  # built from Debian's source by the harness, once per cache
        from harness.building.kernel_build import ensure_built

        built = ensure_built(recipe, progress)
        kern = custom_kernel(built.kernel, built.modules, recipe.arch, progress,
                             f"{recipe.path}: built kernel", f"{recipe.path}: built modules")
        kern = KernelFiles(kern.kernel, kern.moddir, kern.identity,
                           f"built from {src.build.source.package}={src.build.source.version} ({built.dir.name})")
    else:
        kern = ensure_kernel(recipe, progress)
    if modules is not None:
        kern = KernelFiles(kern.kernel, resolve_moddir(modules, kern.identity.release), kern.identity, kern.source)
    return kern


def build_image(recipe: Recipe, binder_module: Path | None = None, progress=print, *,
                kernel: Path | None = None, modules: Path | None = None,
                extra_files: tuple[tuple[str, bytes, int], ...] = (),
                extra_modules: tuple[str, ...] = ()) -> GuestImage:
    """Return a bootable image for the recipe.

    kernel/modules replace the recipe's kernel and its modules tree; binder_module
    replaces binder_linux.ko. A kernel without a modules tree must have every
    module the recipe lists built in; nothing is loaded then. extra_files (path,
    content, mode) and extra_modules are added for guests that need more than the
    console, e.g. an ssh server and a network driver.
    """
    kern = select_kernel(recipe, kernel, modules, progress)
    busybox = ensure_busybox(recipe, progress)
    mod_sha = ""
    guest_module: Path | None = None
    if binder_module is not None:
        if not binder_module.is_file():
            raise ConfigError(f"--binder-module {binder_module}: no such file")
        check_module(binder_module, kern.identity)
        mod_sha = sha256_file(binder_module)
        guest_module = module_btf.for_guest(binder_module, kern.kernel)  # with BTF made from its DWARF if it has none
    ordered: list[Path] = []
    wanted = list(recipe.modules) + [m for m in extra_modules if m not in recipe.modules]
    builtin: tuple[str, ...] = tuple(m.replace("-", "_") for m in wanted)
    if kern.moddir is not None:
        plan = plan_modules(kern.moddir, wanted)
        ordered, builtin = list(plan.load), plan.builtin + plan.assumed_builtin
        if plan.assumed_builtin:
            progress(f"{kern.moddir}: no {', '.join(m + '.ko' for m in plan.assumed_builtin)}; "
                     f"assuming the kernel has {'it' if len(plan.assumed_builtin) == 1 else 'them'} built in")
        mod_flag = "--modules" if modules is not None else "module"
        for ko in ordered:
            if not (binder_module is not None and ko.name == "binder_linux.ko"):
                check_module(ko, kern.identity, mod_flag)
    if guest_module is not None and not any(ko.name == "binder_linux.ko" for ko in ordered):
        ordered.insert(0, guest_module)
        builtin = tuple(m for m in builtin if m != "binder_linux")
    busybox_bin = busybox.read_bytes()
    contents: list[tuple[str, bytes, int]] = [("bin/busybox", busybox_bin, 0o755)]
    names = []
    for ko in ordered:
        data = guest_module.read_bytes() if (guest_module and ko.name == "binder_linux.ko") else ko.read_bytes()
        contents.append((f"lib/modules/{ko.name}", data, 0o644))
        names.append(ko.name)
    for guest_path, host in recipe.files:
        contents.append((guest_path, host.read_bytes(), 0o755 if os.access(host, os.X_OK) else 0o644))
    contents.append(("init", _init_script(names), 0o755))
    contents.extend(extra_files)
    applets = [a for a in busybox_applets(busybox_bin) if a not in ("busybox", "sh")]
    digest = hashlib.sha256(b"layout 2: applet links\n")
    for name, data, mode in contents:
        digest.update(f"{name}:{mode}:{len(data)}:".encode())
        digest.update(data)
    path = cache_root() / "initramfs" / f"{recipe.name}-{digest.hexdigest()[:16]}.cpio"
    if not path.exists():
        writer = CpioWriter()
        for d in ("bin", "dev", "proc", "sys", "tmp", "mnt/host", "lib/modules"):
            writer.directory(d)
        writer.symlink("bin/sh", "busybox")
        for applet in applets:
            writer.symlink(f"bin/{applet}", "busybox")
        for name, data, mode in contents:
            writer.file(name, data, mode)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, writer.render())
    return GuestImage(
        recipe=recipe,
        kernel=kern.kernel,
        initramfs=path,
        identity=kern.identity,
        binder_module=str(binder_module) if binder_module else "stock",
        binder_module_sha256=mod_sha,
        modules=tuple(names),
        kernel_source=kern.source,
        builtin=builtin,
    )
