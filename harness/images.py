"""Guest images: a recipe in images/*.yaml becomes a bootable kernel + initramfs.

Everything fetched or built is cached under the cache root, keyed by content,
and written atomically, so an interrupted build never leaves a half file that a
later run would trust.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness import debian
from harness.cpio import CpioWriter
from harness.errors import ConfigError
from harness.kernel import KernelIdentity, extract_vmlinux, identify_kernel, module_load_order, read_modinfo

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO_ROOT / "images"
DEB_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


def cache_root() -> Path:
    root = Path(os.environ.get("BINDER_HARNESS_CACHE", Path.home() / ".cache" / "binder-harness"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass(frozen=True)
class QemuSettings:
    binary: str
    machine: str
    cpu: str
    memory_mb: int
    smp: int


@dataclass(frozen=True)
class DebianPackage:
    package: str
    version: str


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    arch: str
    kernel: DebianPackage
    busybox: DebianPackage
    modules: tuple[str, ...]
    cmdline: str
    qemu: QemuSettings

    @property
    def deb_arch(self) -> str:
        return DEB_ARCH[self.arch]


def _field(data: dict, key: str, kind: type, where: str):
    if not isinstance(data, dict) or key not in data:
        raise ConfigError(f"{where}: missing field '{key}'")
    value = data[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: field '{key}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


def load_recipe(path: Path) -> Recipe:
    """Read and validate one image recipe; every problem is one line naming the field."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read recipe ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    where = str(path)
    arch = _field(data, "arch", str, where)
    if arch not in DEB_ARCH:
        raise ConfigError(f"{where}: field 'arch' is {arch!r}; use one of {', '.join(DEB_ARCH)}")

    def package(key: str) -> DebianPackage:
        sub = _field(data, key, dict, where)
        return DebianPackage(
            _field(sub, "debian_package", str, f"{where}: {key}"),
            str(_field(sub, "version", (str, int, float), f"{where}: {key}")),
        )

    q = _field(data, "qemu", dict, where)
    modules = _field(data, "modules", list, where)
    if not all(isinstance(m, str) for m in modules):
        raise ConfigError(f"{where}: field 'modules' must be a list of module names")
    return Recipe(
        name=_field(data, "name", str, where),
        path=path,
        arch=arch,
        kernel=package("kernel"),
        busybox=package("busybox"),
        modules=tuple(modules),
        cmdline=_field(data, "cmdline", str, where),
        qemu=QemuSettings(
            binary=_field(q, "binary", str, f"{where}: qemu"),
            machine=_field(q, "machine", str, f"{where}: qemu"),
            cpu=_field(q, "cpu", str, f"{where}: qemu"),
            memory_mb=_field(q, "memory_mb", int, f"{where}: qemu"),
            smp=_field(q, "smp", int, f"{where}: qemu"),
        ),
    )


def recipe_for_arch(arch: str) -> Recipe:
    return load_recipe(IMAGES_DIR / f"qemu-{arch}.yaml")


def fetch_deb(pkg: DebianPackage, deb_arch: str, progress=print) -> Path:
    """Return the cached .deb for pkg, downloading it when absent or damaged."""
    dest = cache_root() / "debs"
    final = dest / f"{pkg.package}_{pkg.version.replace(':', '%3a')}_{deb_arch}.deb"
    stamp = final.with_suffix(".deb.sha256")
    if final.exists() and stamp.exists() and stamp.read_text().strip() == debian.sha256_file(final):
        return final
    for stale in (final, stamp):
        stale.unlink(missing_ok=True)
    progress(f"download {pkg.package}={pkg.version} ({deb_arch})")
    got = debian.apt_download(pkg.package, pkg.version, deb_arch, dest)
    got.replace(final)
    stamp.write_text(debian.sha256_file(final) + "\n")
    progress(f"downloaded {final.name}: {final.stat().st_size / 1e6:.1f} MB")
    return final


def _atomic_dir(final: Path, build) -> Path:
    """Build a directory in a temp sibling with build(tmp), then rename it into place."""
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
    try:
        build(tmp)
        try:
            tmp.rename(final)
        except OSError:  # another process won the race; theirs is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


@dataclass(frozen=True)
class KernelFiles:
    kernel: Path  # bootable: vmlinux (x86_64, PVH) or Image (arm64)
    moddir: Path  # lib/modules/<release>
    identity: KernelIdentity


def ensure_kernel(recipe: Recipe, progress=print) -> KernelFiles:
    """Extract the boot image and modules of the recipe's kernel package (cached)."""
    key = f"{recipe.kernel.package}_{recipe.kernel.version}_{recipe.deb_arch}".replace(":", "%3a")
    final = cache_root() / "kernels" / key

    def build(tmp: Path) -> None:
        deb = fetch_deb(recipe.kernel, recipe.deb_arch, progress)
        files = debian.extract_deb(deb, tmp, lambda n: n.startswith(("boot/vmlinuz-", "lib/modules/")) and not n.endswith(".map"))
        vmlinuz = next((f for f in files if f.name.startswith("vmlinuz-")), None)
        if vmlinuz is None:
            raise ConfigError(f"{deb.name}: no boot/vmlinuz-* inside; is {recipe.kernel.package} a kernel image package?")
        ident = identify_kernel(vmlinuz)
        if ident.kind == "bzImage":
            (tmp / "kernel").write_bytes(extract_vmlinux(vmlinuz.read_bytes()))
            vmlinuz.unlink()
        else:
            vmlinuz.replace(tmp / "kernel")

    final = _atomic_dir(final, build)
    ident = identify_kernel(final / "kernel")
    if ident.arch != recipe.arch:
        raise ConfigError(f"{recipe.path}: kernel {recipe.kernel.package} is {ident.arch}, recipe arch is {recipe.arch}")
    return KernelFiles(final / "kernel", final / "lib" / "modules" / ident.release, ident)


def ensure_busybox(recipe: Recipe, progress=print) -> Path:
    key = f"{recipe.busybox.package}_{recipe.busybox.version}_{recipe.deb_arch}".replace(":", "%3a")

    def build(tmp: Path) -> None:
        deb = fetch_deb(recipe.busybox, recipe.deb_arch, progress)
        debian.extract_deb(deb, tmp, lambda n: n == "bin/busybox")

    return _atomic_dir(cache_root() / "busybox" / key, build) / "bin" / "busybox"


def check_module(module: Path, kernel: KernelIdentity) -> None:
    """Refuse a binder module built for another arch or kernel release, naming both."""
    info = read_modinfo(module)
    if info.arch != kernel.arch:
        raise ConfigError(f"--binder-module {module}: built for {info.arch}, but the kernel is {kernel.arch} ({kernel.release})")
    if info.release != kernel.release:
        raise ConfigError(
            f"--binder-module {module}: vermagic says {info.release or 'nothing'}, but the kernel is {kernel.release}"
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


def _init_script(module_files: list[str]) -> bytes:
    template = (IMAGES_DIR / "guest-init.sh").read_text()
    return template.replace("@MODULES@", " ".join(module_files)).encode()


def build_image(recipe: Recipe, binder_module: Path | None = None, progress=print,
                extra_files: tuple[tuple[str, bytes, int], ...] = (),
                extra_modules: tuple[str, ...] = ()) -> GuestImage:
    """Return a bootable image for the recipe, with binder_module replacing the stock driver.

    extra_files (path, content, mode) and extra_modules are added for guests
    that need more than the console, e.g. an ssh server and a network driver.
    """
    kern = ensure_kernel(recipe, progress)
    busybox = ensure_busybox(recipe, progress)
    mod_sha = ""
    if binder_module is not None:
        if not binder_module.is_file():
            raise ConfigError(f"--binder-module {binder_module}: no such file")
        check_module(binder_module, kern.identity)
        mod_sha = debian.sha256_file(binder_module)
    ordered = module_load_order(kern.moddir, list(recipe.modules) + [m for m in extra_modules if m not in recipe.modules])
    contents: list[tuple[str, bytes, int]] = [("bin/busybox", busybox.read_bytes(), 0o755)]
    names = []
    for ko in ordered:
        data = binder_module.read_bytes() if (binder_module and ko.name == "binder_linux.ko") else ko.read_bytes()
        contents.append((f"lib/modules/{ko.name}", data, 0o644))
        names.append(ko.name)
    contents.append(("init", _init_script(names), 0o755))
    contents.extend(extra_files)
    digest = hashlib.sha256()
    for name, data, mode in contents:
        digest.update(f"{name}:{mode}:{len(data)}:".encode())
        digest.update(data)
    path = cache_root() / "initramfs" / f"{recipe.name}-{digest.hexdigest()[:16]}.cpio"
    if not path.exists():
        writer = CpioWriter()
        for d in ("bin", "dev", "proc", "sys", "tmp", "mnt/host", "lib/modules"):
            writer.directory(d)
        writer.symlink("bin/sh", "busybox")
        for name, data, mode in contents:
            writer.file(name, data, mode)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(writer.render())
        tmp.replace(path)
    return GuestImage(
        recipe=recipe,
        kernel=kern.kernel,
        initramfs=path,
        identity=kern.identity,
        binder_module=str(binder_module) if binder_module else "stock",
        binder_module_sha256=mod_sha,
        modules=tuple(names),
    )
