"""`binder-harness images update RECIPE`: move a recipe's pins to what its suites have now.

A pin is a `debian_package` + `version` in the recipe: the kernel (with its
`modules_package`, which shares the version), busybox, and the packages of the
`ssh:` and `trace_cmd:` sections. Each is looked up in the suites the recipe's
mirrors name (BINDER_HARNESS_DEBIAN_MIRROR overrides them), through the same signed
indexes fetching uses. A pin still listed stays (unless --latest); one that has left
moves to the newest version the suites list. A Debian kernel's package name carries its
ABI (linux-image-6.12.117+deb13-amd64), so the kernel moves within its family: the same
name with another ABI of the same series (6.12), the same flavour (-amd64).

The recipe file is rewritten in place: only the scalars that change are replaced, so
comments, order and quoting stay as written. A pin inherited through `extends:` is
checked too, and its file named, but only the recipe's own file is written.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from debian.debian_support import Version

from harness.errors import ConfigError
from harness.files import atomic_write_text, cache_root
from harness.building import fetch
from harness.building.recipes import IMAGES_DIR, YamlMap, load_recipe, recipe_data

# linux-image-6.12.117+deb13-amd64, linux-image-6.1.0-57-cloud-amd64, linux-modules-7.2.13+deb14-arm64
_KERNEL_NAME = re.compile(r"(?P<prefix>[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*-)(?P<series>\d+\.\d+)"
                          r"(?P<abi>(?:\.\d+)*(?:-\d+)?(?:\+[a-z0-9.~]+)?)(?P<suffix>(?:-[a-z][a-z0-9]*)+)")


@dataclass
class Pin:
    label: str  # "kernel", "busybox", "ssh.packages[2]"
    package: str
    version: str
    file: Path  # the file that pins it
    line: int
    yaml_path: tuple  # where its mapping sits in that file: ("kernel",), ("ssh", "packages", 2)
    modules_package: str = ""
    new_package: str = ""
    new_version: str = ""
    new_modules: str = ""
    suite: str = ""
    status: str = ""  # kept | moved | gone


def _pins(path: Path) -> list[Pin]:
    data = recipe_data(path)
    pins = []

    def add(label: str, m, yaml_path: tuple) -> None:
        if isinstance(m, YamlMap) and "debian_package" in m and "version" in m:
            file, line = m.origin["version"]
            pins.append(Pin(label, str(m["debian_package"]), str(m["version"]), file, line, yaml_path,
                            modules_package=str(m.get("modules_package", ""))))

    add("kernel", data.get("kernel"), ("kernel",))
    add("busybox", data.get("busybox"), ("busybox",))
    for section in ("ssh", "trace_cmd"):
        packages = data.get(section, {}).get("packages") if isinstance(data.get(section), dict) else None
        for i, m in enumerate(packages or []):
            add(f"{section}.packages[{i}]", m, (section, "packages", i))
    return pins


def _kernel_family(name: str) -> tuple[str, re.Pattern] | None:
    """(the family's common prefix, a pattern for its names): the same series and flavour, any ABI."""
    m = _KERNEL_NAME.fullmatch(name)
    if m is None:
        return None
    prefix = m["prefix"] + m["series"]
    return prefix, re.compile(re.escape(prefix) + r"(?:\.\d+)*(?:-\d+)?(?:\+[a-z0-9.~]+)?" + re.escape(m["suffix"]))


def _abi_token(name: str) -> str:
    m = _KERNEL_NAME.fullmatch(name)
    return m["series"] + m["abi"] if m else ""


def _newest(indexes: list[fetch.SuiteIndex], names: set[str], arch: str) -> tuple[fetch.PackageEntry, str] | None:
    best: tuple[fetch.PackageEntry, str] | None = None
    for index in indexes:
        for name in names:
            entry = fetch.newest_in_index(index.text, name, arch)
            if entry is not None and (best is None or Version(entry.version) > Version(best[0].version)):
                best = (entry, index.suite)
    return best


def _listed(indexes: list[fetch.SuiteIndex], package: str, version: str, arch: str) -> str:
    """The suite that lists package=version, or ""."""
    return next((i.suite for i in indexes if fetch.find_in_index(i.text, package, version, arch)), "")


def plan(path: Path, latest: bool, progress=print) -> tuple[list[Pin], list[str]]:
    """Look every pin of the recipe up in its suites (freshly fetched InRelease, verified);
    return the pins with their new values, and notes (expired InRelease files)."""
    recipe = load_recipe(path)
    arch = recipe.deb_arch
    sources = fetch.configured_sources(recipe.mirrors)
    indexes = fetch.Indexes(cache_root() / "indexes", progress).all_suites(sources, arch, refresh=True)
    notes = [f"note: {i.source.url} {i.suite}: InRelease expired on {fetch.expired(i.release)} (Valid-Until); "
             "what it lists may be stale" for i in indexes if fetch.expired(i.release)]
    pins = _pins(path)
    for pin in pins:
        pin.suite = _listed(indexes, pin.package, pin.version, arch)
        if pin.modules_package and pin.suite:
            pin.suite = _listed(indexes, pin.modules_package, pin.version, arch)
        if pin.suite and not latest:
            pin.status = "kept"
            continue
        family = _kernel_family(pin.package) if pin.label == "kernel" else None
        if family is not None:
            prefix, pattern = family
            names = {n for i in indexes for n in fetch.package_names(i.text, prefix) if pattern.fullmatch(n)}
        else:
            names = {pin.package}
        found = _newest(indexes, names, arch)
        if found is None:
            pin.status = "gone"
            continue
        entry, pin.suite = found
        pin.new_package, pin.new_version = entry.package, entry.version
        if pin.modules_package:
            old, new = _abi_token(pin.package), _abi_token(entry.package)
            pin.new_modules = pin.modules_package.replace(old, new) if old else pin.modules_package
            if not _listed(indexes, pin.new_modules, entry.version, arch):
                pin.status = "gone"
                continue
        changed = (pin.new_package, pin.new_version, pin.new_modules) != (pin.package, pin.version,
                                                                          pin.modules_package)
        pin.status = "moved" if changed else "kept"
    return pins, notes


def describe(pin: Pin, recipe_path: Path) -> str:
    old = f"{pin.package}={pin.version}" + (f" (+ {pin.modules_package})" if pin.modules_package else "")
    where = "" if pin.file.resolve() == recipe_path.resolve() else f" [pinned in {_shown(pin.file)}:{pin.line}]"
    if pin.status == "kept":
        return f"  {pin.label}: {old} (in {pin.suite}){where}"
    if pin.status == "gone":
        what = "its modules package " if pin.new_package and pin.modules_package else ""
        return f"  {pin.label}: {old}: {what}not in any configured suite, and nothing to move it to{where}"
    new = f"{pin.new_package}={pin.new_version}" + (f" (+ {pin.new_modules})" if pin.new_modules else "")
    return f"  {pin.label}: {old} -> {new} (from {pin.suite}){where}"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- rewriting the file in place ------------------------------------------------------

def _node_at(root: yaml.Node, yaml_path: tuple) -> yaml.MappingNode | None:
    node = root
    for step in yaml_path:
        if isinstance(step, int):
            if not isinstance(node, yaml.SequenceNode) or step >= len(node.value):
                return None
            node = node.value[step]
        else:
            if not isinstance(node, yaml.MappingNode):
                return None
            found = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == step), None)
            if found is None:
                return None
            node = found
    return node if isinstance(node, yaml.MappingNode) else None


def _scalar(mapping: yaml.MappingNode, key: str) -> yaml.ScalarNode | None:
    return next((v for k, v in mapping.value if k.value == key and isinstance(v, yaml.ScalarNode)), None)


def _render(value: str, style: str | None, flow: bool = True) -> str:
    """value as a YAML scalar in the style it replaces; plain only when it reads back as this
    string where it stands (in a {flow: mapping} or a block one)."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style != '"':
        try:
            if yaml.safe_load(f"{{k: {value}}}" if flow else f"k: {value}\n") == {"k": value}:
                return value
        except yaml.YAMLError:
            pass
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rewrite(path: Path, pins: list[Pin]) -> int:
    """Replace the moved pins' scalars in path's own text; return how many scalars changed."""
    text = path.read_text()
    root = yaml.compose(text)
    edits: list[tuple[int, int, str]] = []
    for pin in pins:
        if pin.status != "moved" or pin.file.resolve() != path.resolve():
            continue
        mapping = _node_at(root, pin.yaml_path) if root is not None else None
        if mapping is None:
            raise ConfigError(f"{path}: cannot find the '{pin.label}' pin to rewrite; edit it by hand")
        for key, new in (("debian_package", pin.new_package), ("version", pin.new_version),
                         ("modules_package", pin.new_modules)):
            node = _scalar(mapping, key)
            if node is None or not new or node.value == new:
                continue
            edits.append((node.start_mark.index, node.end_mark.index,
                          _render(new, node.style, bool(mapping.flow_style))))
    for start, end, new_text in sorted(edits, reverse=True):
        text = text[:start] + new_text + text[end:]
    if edits:
        original = path.read_text()
        atomic_write_text(path, text)
        try:
            check = {p.label: p for p in _pins(path)}
            for pin in pins:
                if pin.status == "moved" and pin.file.resolve() == path.resolve():
                    got = check[pin.label]
                    if (got.package, got.version, got.modules_package) != (pin.new_package, pin.new_version,
                                                                            pin.new_modules):
                        raise ConfigError(f"{path}: rewriting '{pin.label}' did not read back as intended; "
                                          "the file is unchanged, edit it by hand")
        except ConfigError:
            atomic_write_text(path, original)
            raise
    return len(edits)


def command_name(path: Path) -> str:
    return path.stem if path.resolve().parent == IMAGES_DIR.resolve() else _shown(path)


def update(path: Path, dry_run: bool, latest: bool, progress=print) -> int:
    """Show every pin's change and rewrite the recipe; exit status: 0 done (or nothing to do),
    1 with --dry-run when one of the recipe's own pins would move, 2 when a pin has nothing to
    move to."""
    pins, notes = plan(path, latest, progress)
    mine = [p for p in pins if p.file.resolve() == path.resolve()]
    print(f"{_shown(path)}: {sum(p.status == 'moved' for p in mine)} of its {len(mine)} own pins move "
          f"({len(pins) - len(mine)} more inherited through extends:)")
    for line in notes:
        print(line)
    for pin in pins:
        print(describe(pin, path))
    inherited = [p for p in pins if p.status == "moved" and p.file.resolve() != path.resolve()]
    for pin in inherited:
        print(f"  {pin.label}: not rewritten: {_shown(pin.file)} pins it for every recipe that extends it; "
              f"override '{pin.yaml_path[0]}' in {_shown(path)}, or add the suite that lists "
              f"{pin.package}={pin.version} to its mirrors")
    gone = [p for p in pins if p.status == "gone"]
    moved = [p for p in pins if p.status == "moved" and p not in inherited]
    if dry_run:
        if moved:
            print(f"dry run: {_shown(path)} unchanged; apply with: binder-harness images update {command_name(path)}")
        return 2 if gone else 1 if moved else 0  # inherited pins are the base recipe's own run's business
    changed = rewrite(path, moved)
    if changed:
        print(f"rewrote {changed} field(s) of {_shown(path)}; review with git diff, then run the catalog on it")
    if gone:
        raise ConfigError(f"{_shown(path)}: {', '.join(p.label for p in gone)}: pinned "
                          f"{', '.join(p.package + '=' + p.version for p in gone)}, which no configured suite "
                          f"lists any more, nor a newer one of its family; point the recipe's mirrors at a suite "
                          f"that has it")
    return 0
