"""Image recipes: images/*.yaml, read and validated into a Recipe.

A recipe names the kernel (a Debian package and version, or a local file with
its modules tree), the modules to load, extra guest files, the kernel command
line and the QEMU machine. `extends: OTHER` starts from another recipe and
overrides fields; nested mappings merge, except that a `kernel` naming its
source (`file` or `debian_package`) replaces the base's kernel. Every problem is reported as one line,
`FILE:LINE: field 'a.b' ...`, naming the fix.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import overload

import yaml

from harness.arches import DEFAULT_ARCH, GUEST_ARCHES
from harness.errors import ConfigError
from harness.files import REPO_ROOT

IMAGES_DIR = REPO_ROOT / "images"


@dataclass(frozen=True)
class QemuSettings:
    binary: str
    machine: str
    cpu: str
    memory_mb: int
    smp: int
    bios: str = ""  # firmware file name in QEMU's data directory (e.g. qboot.rom); "" = QEMU's default


@dataclass(frozen=True)
class DebianPackage:
    package: str
    version: str


@dataclass(frozen=True)
class Toolchain:
    """A Debian root made by debootstrap to build a kernel in: the suite, its mirror, and
    every package the build needs, each pinned to a version (checked after installing)."""

    suite: str
    mirror: str
    packages: tuple[DebianPackage, ...]


@dataclass(frozen=True)
class KernelBuild:
    """A kernel built by the harness (harness/building/kernel_build.py): Debian's
    linux-source-X package, the config fragment applied on `make allnoconfig`, and the
    toolchain root the build runs in."""

    source: DebianPackage
    config: Path
    toolchain: Toolchain


@dataclass(frozen=True)
class KernelSource:
    """Exactly one of `debian`, `file` or `build`; `modules` only with `file` (None: all built in).
    `debian_modules`: the package that holds a Debian kernel's modules when its image package
    does not (sid from 7.x ships linux-binary-* and linux-modules-* apart)."""

    debian: DebianPackage | None = None
    file: Path | None = None
    modules: Path | None = None
    debian_modules: DebianPackage | None = None
    build: KernelBuild | None = None

    def describe(self) -> str:
        if self.debian is not None:
            return f"{self.debian.package}={self.debian.version}"
        if self.build is not None:
            return f"built from {self.build.source.package}={self.build.source.version}"
        return str(self.file)


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    arch: str
    kernel_source: KernelSource
    busybox: DebianPackage
    modules: tuple[str, ...]
    cmdline: str
    qemu: QemuSettings
    files: tuple[tuple[str, Path], ...] = ()  # (guest path, host file)
    mirrors: tuple[str, ...] = ()  # "URL SUITE [SUITE ...]" entries for HTTP fetching

    @property
    def deb_arch(self) -> str:
        return GUEST_ARCHES[self.arch].debian_arch

    @property
    def kernel(self) -> DebianPackage:
        """The Debian kernel package (recipes with a local kernel file have none)."""
        if self.kernel_source.debian is None:
            kind = "built by the harness" if self.kernel_source.build is not None else "a local file"
            raise ConfigError(f"{self.path}: kernel is {kind}, not a Debian package")
        return self.kernel_source.debian

    @property
    def source_version(self) -> str:
        """The Debian source version of the kernel: its package's, or the built source's."""
        build = self.kernel_source.build
        return build.source.version if build is not None else self.kernel.version

    def debian_packages(self) -> list[DebianPackage]:
        kernel = [self.kernel_source.debian, self.kernel_source.debian_modules]
        return [p for p in kernel if p is not None] + [self.busybox]


# -- YAML with line numbers ---------------------------------------------------------

class YamlMap(dict):
    """A mapping that remembers where each key was written: {key: (file, line)}."""

    where: tuple[Path, int]
    origin: dict


class _Loader(yaml.SafeLoader):
    """A safe loader that knows which file it reads, for the file:line of every key."""

    def __init__(self, text: str, recipe_path: Path) -> None:
        super().__init__(text)
        self.recipe_path = recipe_path


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> YamlMap:
    loader.flatten_mapping(node)
    out = YamlMap()
    out.where = (loader.recipe_path, node.start_mark.line + 1)
    out.origin = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.origin[key] = (loader.recipe_path, key_node.start_mark.line + 1)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


def read_yaml_map(path: Path, what: str, shape: str) -> YamlMap:
    """Read a YAML mapping that remembers the file and line of every key.

    `what` names the file in errors ("recipe", "matrix file"); `shape` says what it
    must hold when it is not a mapping.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    loader = _Loader(text, path)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"{path}:{mark.line + 1 if mark else 1}: invalid YAML "
                          f"({getattr(exc, 'problem', None) or exc})") from None
    finally:
        loader.dispose()
    if not isinstance(data, YamlMap):
        raise ConfigError(f"{path}:1: {shape}")
    return data


def _read_yaml(path: Path) -> YamlMap:
    return read_yaml_map(path, "recipe", "a recipe is a YAML mapping of fields (name, arch, kernel, ...)")


def _merge(base: YamlMap, over: YamlMap) -> YamlMap:
    out = YamlMap(base)
    out.where, out.origin = over.where, {**base.origin}
    for key, value in over.items():
        names_source = key == "kernel" and isinstance(value, YamlMap) and ({"file", "debian_package", "build"} & set(value))
        if isinstance(value, YamlMap) and isinstance(base.get(key), YamlMap) and not names_source:
            value = _merge(base[key], value)
        out[key] = value
        out.origin[key] = over.origin[key]
    return out


def find_recipe(name: str, near: Path | None = None) -> Path:
    """A recipe path from a NAME (images/NAME.yaml) or a PATH."""
    candidates = [Path(name)] if name.endswith((".yaml", ".yml")) or "/" in name else []
    if near is not None:
        candidates.append(near / f"{name}.yaml")
    candidates.append(IMAGES_DIR / f"{name}.yaml")
    for path in candidates:
        if path.is_file():
            return path
    shipped = ", ".join(p.stem for p in shipped_recipes())
    raise ConfigError(f"--image {name}: no such recipe file or name; shipped recipes: {shipped}")


def shipped_recipes() -> list[Path]:
    return sorted(IMAGES_DIR.glob("*.yaml"))


def recipe_data(path: Path) -> dict:
    """A recipe's fields with its `extends:` chain applied, before validation."""
    return _resolve_extends(path)


def _resolve_extends(path: Path, chain: tuple[Path, ...] = ()) -> YamlMap:
    data = _read_yaml(path)
    if "extends" not in data:
        return data
    file, line = data.origin["extends"]
    parent_name = data.pop("extends")
    if not isinstance(parent_name, str):
        raise ConfigError(f"{file}:{line}: field 'extends' must be a recipe name or path")
    try:
        parent = find_recipe(parent_name, path.parent).resolve()
    except ConfigError:
        raise ConfigError(f"{file}:{line}: field 'extends': no recipe {parent_name!r} next to it or in images/") from None
    if parent in chain or parent == path.resolve():
        raise ConfigError(f"{file}:{line}: field 'extends' makes a loop through {parent.name}")
    base = _resolve_extends(parent, (*chain, path.resolve()))
    base.pop("name", None)  # a name belongs to its own file
    return _merge(base, data)


# -- validation ----------------------------------------------------------------------

class YamlFields:
    """Typed access to one mapping of a recipe, with errors naming file, line and field."""

    def __init__(self, data: YamlMap, prefix: str = "", where: tuple[Path, int] | None = None):
        self.data, self.prefix, self.where = data, prefix, where or data.where

    def _at(self, key: str | None = None) -> str:
        file, line = self.data.origin.get(key, self.where) if key else self.where
        return f"{file}:{line}"

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self._at(key)}: field '{self.prefix}{key}' {problem}")

    def check_known(self, known: set[str]) -> None:
        for key in self.data:
            if key not in known:
                raise self.error(str(key), f"is unknown; known fields here: {', '.join(sorted(known))}")

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, kind: type | tuple, default=...):
        if key not in self.data:
            if default is not ...:
                return default
            raise ConfigError(f"{self._at()}: missing field '{self.prefix}{key}'")
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join({str: "a string", int: "an integer", list: "a list", YamlMap: "a mapping",
                                 float: "a number"}.get(k, k.__name__) for k in kinds)
            raise self.error(key, f"must be {names}, got {type(value).__name__} {value!r}"[:160])
        return value

    @overload
    def sub(self, key: str) -> YamlFields: ...
    @overload
    def sub(self, key: str, default: None) -> YamlFields | None: ...

    def sub(self, key: str, default=...) -> YamlFields | None:
        """The nested mapping at `key`; with default None, None when it is absent."""
        value = self.get(key, YamlMap, default)
        return None if value is None else YamlFields(value, f"{self.prefix}{key}.", self.data.origin[key])

    def path(self, key: str) -> Path:
        value = Path(self.get(key, str)).expanduser()
        file, _ = self.data.origin[key]
        return value if value.is_absolute() else (file.parent / value)

    def positive(self, key: str) -> int:
        value = self.get(key, int)
        if value <= 0:
            raise self.error(key, f"must be a positive integer, got {value}")
        return value


def _package(f: YamlFields) -> DebianPackage:
    version = f.get("version", (str, int, float))
    return DebianPackage(f.get("debian_package", str), str(version))


def _toolchain(f: YamlFields) -> Toolchain:
    f.check_known({"suite", "mirror", "packages"})
    mirror = f.get("mirror", str)
    if not mirror.startswith(("http://", "https://")):
        raise f.error("mirror", f"is {mirror!r}; write a Debian archive URL, e.g. http://deb.debian.org/debian")
    packages = []
    for item in f.get("packages", list):
        if not isinstance(item, YamlMap):
            raise f.error("packages", "must be a list of {debian_package: NAME, version: VERSION} mappings")
        pf = YamlFields(item, f"{f.prefix}packages.", item.where)
        pf.check_known({"debian_package", "version"})
        packages.append(_package(pf))
    if not packages:
        raise f.error("packages", "is empty; list the build's Debian packages (rustc, bindgen, gcc, make, ...)")
    return Toolchain(f.get("suite", str), mirror.rstrip("/"), tuple(packages))


def _kernel_build(f: YamlFields) -> KernelBuild:
    f.check_known({"source", "config", "toolchain"})
    source = f.sub("source")
    source.check_known({"debian_package", "version"})
    config = f.path("config")
    if not config.is_file():
        raise f.error("config", f"names {config}, which does not exist")
    return KernelBuild(_package(source), config, _toolchain(f.sub("toolchain")))


def _kernel_source(f: YamlFields) -> KernelSource:
    f.check_known({"debian_package", "version", "file", "modules", "modules_package", "build"})
    if f.has("build"):
        other = next((k for k in ("file", "debian_package", "modules", "modules_package") if f.has(k)), None)
        if other is not None:
            raise f.error(other, "and 'kernel.build' exclude each other; a built kernel brings its own modules")
        return KernelSource(build=_kernel_build(f.sub("build")))
    if f.has("file"):
        if f.has("debian_package"):
            raise f.error("file", "and 'kernel.debian_package' exclude each other; keep one kernel source")
        path = f.path("file")
        if not path.is_file():
            raise f.error("file", f"names {path}, which does not exist")
        modules = f.path("modules") if f.has("modules") else None
        if modules is not None and not modules.is_dir():
            raise f.error("modules", f"names {modules}, which is not a directory")
        return KernelSource(file=path, modules=modules)
    if f.has("modules"):
        raise f.error("modules", "only goes with 'kernel.file'; a Debian kernel brings its own modules")
    if not f.has("debian_package"):
        raise ConfigError(f"{f._at()}: field 'kernel' needs 'debian_package' and 'version', 'file', or 'build'")
    image = _package(f)
    mods = DebianPackage(f.get("modules_package", str), image.version) if f.has("modules_package") else None
    return KernelSource(debian=image, debian_modules=mods)


def _files(f: YamlFields | None) -> tuple[tuple[str, Path], ...]:
    if f is None:
        return ()
    out = []
    for guest in f.data:
        if not isinstance(guest, str) or not guest.startswith("/") or ".." in guest.split("/"):
            raise f.error(str(guest), "must be an absolute guest path without '..', e.g. /etc/motd")
        host = f.path(guest)
        if not host.is_file():
            raise f.error(guest, f"names {host}, which does not exist")
        out.append((guest.lstrip("/"), host))
    return tuple(out)


def load_recipe(path: Path) -> Recipe:
    """Read and validate one image recipe; every problem is one line naming file, line and field."""
    f = YamlFields(_resolve_extends(path))
    # 'ssh' (packages for an ssh-reachable guest) and 'trace_cmd' (trace-cmd for run --trace-dat)
    # are validated by harness/guest.py when used
    f.check_known({"name", "arch", "kernel", "busybox", "modules", "files", "cmdline", "qemu", "mirrors", "ssh", "adb",
                   "trace_cmd"})
    arch = f.get("arch", str)
    if arch not in GUEST_ARCHES:
        raise f.error("arch", f"is {arch!r}; use one of {', '.join(GUEST_ARCHES)}")
    modules = f.get("modules", list)
    if not all(isinstance(m, str) and m for m in modules):
        raise f.error("modules", "must be a list of module names, e.g. [binder_linux, 9p]")
    mirrors = f.get("mirrors", list, [])
    if not all(isinstance(m, str) and len(m.split()) >= 2 for m in mirrors):
        raise f.error("mirrors", "must be a list of 'URL SUITE [SUITE ...]' strings")
    q = f.sub("qemu")
    if "binary" in q.data:
        raise q.error("binary", "is not a recipe's to say: the QEMU binary follows the arch "
                      "(harness/arches.py qemu_binary); remove this field")
    q.check_known({"machine", "cpu", "memory_mb", "smp", "bios"})
    busybox = f.sub("busybox")
    busybox.check_known({"debian_package", "version"})
    return Recipe(
        name=f.get("name", str, path.stem),
        path=path,
        arch=arch,
        kernel_source=_kernel_source(f.sub("kernel")),
        busybox=_package(busybox),
        modules=tuple(modules),
        cmdline=f.get("cmdline", str),
        qemu=QemuSettings(GUEST_ARCHES[arch].qemu_binary, q.get("machine", str), q.get("cpu", str),
                          q.positive("memory_mb"), q.positive("smp"), q.get("bios", str, "")),
        files=_files(f.sub("files", None)),
        mirrors=tuple(mirrors),
    )


def resolve_recipe(image: str | None, arch: str | None) -> Recipe:
    """The recipe for `--image NAME|PATH`, or the default qemu-ARCH one."""
    if image is None:
        return load_recipe(IMAGES_DIR / f"qemu-{arch or DEFAULT_ARCH}.yaml")
    recipe = load_recipe(find_recipe(image))
    if arch is not None and recipe.arch != arch:
        raise ConfigError(f"--image {image}: recipe {recipe.name} is for {recipe.arch}, but the target is qemu:{arch}; "
                          f"use --target qemu:{recipe.arch} or an {arch} recipe")
    return recipe


def recipe_for_arch(arch: str) -> Recipe:
    return resolve_recipe(None, arch)
