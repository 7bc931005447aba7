"""Image recipes: the shipped ones load, `extends` merges, and every mistake in a
recipe is one line naming the file, the line and the field."""
from __future__ import annotations

import textwrap

import pytest

from harness.errors import ConfigError
from harness.building.build import build_image, ensure_kernel
from harness.building.recipes import IMAGES_DIR, find_recipe, load_recipe, recipe_for_arch, resolve_recipe, shipped_recipes
from tests.helpers import cli, read_newc

GOOD = IMAGES_DIR / "qemu-x86_64.yaml"


def test_shipped_recipes_cover_two_abis_on_both_arches():
    recipes = {p.stem: load_recipe(p) for p in shipped_recipes()}
    assert {"qemu-x86_64", "qemu-arm64", "qemu-x86_64-6.1.0-56", "qemu-arm64-6.1.0-56"} <= set(recipes)
    for name, r in recipes.items():
        assert r.name == name
    assert recipes["qemu-x86_64"].kernel.package == "linux-image-6.1.0-57-amd64"
    assert recipes["qemu-arm64"].kernel.package == "linux-image-6.1.0-57-arm64"
    prev = recipes["qemu-arm64-6.1.0-56"]
    assert (prev.kernel.package, prev.kernel.version) == ("linux-image-6.1.0-56-arm64", "6.1.192-2")
    assert prev.qemu == recipes["qemu-arm64"].qemu and prev.cmdline == recipes["qemu-arm64"].cmdline


def _write(tmp_path, text: str, name: str = "bad.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


BASE = GOOD.read_text()


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("edit, at, expected", [
    (("memory_mb: 512", "memory_mb: lots"), "memory_mb:", "field 'qemu.memory_mb' must be an integer, got str 'lots'"),
    (("smp: 1", "smp: 0"), "smp:", "field 'qemu.smp' must be a positive integer"),
    (("arch: x86_64", "arch: riscv64"), "arch:", "field 'arch' is 'riscv64'; use one of x86_64, arm64"),
    (("cmdline: ", "cmdlin: "), "cmdlin:", "field 'cmdlin' is unknown"),
    (("  version: 6.1.192-3\n", ""), "kernel:", "missing field 'kernel.version'"),
    (("modules: [binder_linux", "modules: [[binder_linux]"), "modules: [", "field 'modules' must be a list of module names"),
    (("name: qemu-x86_64", "name: [unclosed"), "arch:", "invalid YAML"),
    (("  version: 6.1.192-3\n", "  version: 6.1.192-3\n  file: vmlinuz\n"), "file:",
     "field 'kernel.file' and 'kernel.debian_package' exclude each other"),
    (("  machine: pc\n", "  binary: qemu-system-x86_64\n  machine: pc\n"), "binary:",
     "field 'qemu.binary' is not a recipe's to say: the QEMU binary follows the arch"),
])
def test_bad_recipe_is_one_line_with_file_line_field(tmp_path, edit, at, expected):
    old, new = edit
    assert old in BASE
    text = BASE.replace(old, new, 1)
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    assert str(err.value).startswith(f"{path}:{_line(text, at)}:"), err.value
    assert expected in str(err.value), err.value
    assert "\n" not in str(err.value)


def test_bad_recipe_through_the_cli(tmp_path):
    text = BASE.replace("memory_mb: 512", "memory_mb: true")
    path = _write(tmp_path, text)
    run = cli("run", "one_copy.sync_sizes", "--image", str(path), out=tmp_path / "o")
    assert run.status == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert f"{path}:{_line(text, 'memory_mb')}: field 'qemu.memory_mb' must be an integer" in run.stderr


def test_extends_names_the_file_where_the_field_was_written(tmp_path):
    base = BASE.replace("smp: 1", "smp: -1")
    _write(tmp_path, base, "base.yaml")
    child = _write(tmp_path, "extends: base\nkernel:\n  version: 6.1.192-2\n", "child.yaml")
    with pytest.raises(ConfigError, match=rf"base\.yaml:{_line(base, 'smp:')}: field 'qemu\.smp'"):
        load_recipe(child)
    loop = _write(tmp_path, "extends: loop\n", "loop.yaml")
    with pytest.raises(ConfigError, match=r"loop\.yaml:1: field 'extends' makes a loop"):
        load_recipe(loop)
    missing = _write(tmp_path, "extends: nowhere\n", "m.yaml")
    with pytest.raises(ConfigError, match=r"m\.yaml:1: field 'extends': no recipe 'nowhere'"):
        load_recipe(missing)


def test_image_arch_must_match_target():
    with pytest.raises(ConfigError, match="recipe qemu-arm64 is for arm64, but the target is qemu:x86_64"):
        resolve_recipe("qemu-arm64", "x86_64")
    assert resolve_recipe("qemu-arm64-6.1.0-56", None).arch == "arm64"


def test_local_kernel_file_recipe_with_extra_files(tmp_path):
    """A recipe may name a local kernel and modules tree, and carry extra guest files."""
    stock = ensure_kernel(recipe_for_arch("x86_64"), progress=lambda _: None)
    (tmp_path / "motd.txt").write_text("hello from the recipe\n")
    path = _write(tmp_path, f"""\
        extends: qemu-x86_64
        name: local-kernel
        kernel:
          file: {stock.kernel}
          modules: {stock.moddir.parents[2]}
        files:
          /etc/motd: motd.txt
        """, "local.yaml")
    recipe = load_recipe(path)
    assert recipe.kernel_source.file == stock.kernel and recipe.kernel_source.debian is None
    image = build_image(recipe, progress=lambda _: None)
    assert image.identity == stock.identity and image.kernel_source == str(stock.kernel)
    entries = read_newc(image.initramfs.read_bytes())
    assert entries["etc/motd"][1] == b"hello from the recipe\n"
    assert "lib/modules/binder_linux.ko" in entries


def test_local_kernel_without_modules_loads_nothing(tmp_path):
    """No modules tree: every module the recipe lists must be built in, so none is packed."""
    stock = ensure_kernel(recipe_for_arch("x86_64"), progress=lambda _: None)
    image = build_image(recipe_for_arch("x86_64"), kernel=stock.kernel, progress=lambda _: None)
    assert image.modules == () and "binder_linux" in image.builtin
    entries = read_newc(image.initramfs.read_bytes())
    assert not [n for n in entries if n.endswith(".ko")]


def test_ssh_section_is_inherited_through_extends():
    """A recipe that extends another gets its pinned ssh packages for an ssh-reachable guest."""
    from harness.building.guest_files import load_ssh_recipe

    base = load_ssh_recipe(load_recipe(find_recipe("qemu-arm64")))
    child = load_ssh_recipe(load_recipe(find_recipe("qemu-arm64-6.1.0-56")))
    assert child == base and any(p.package == "dropbear-bin" for p in child.packages)
