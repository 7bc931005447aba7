"""`binder-harness images update RECIPE`, on copies of the shipped 6.12 and 7.2 recipes
whose kernel pins are moved back to versions the archive no longer lists, against a
local mirror serving Debian's real signed trixie, sid and bookworm indexes."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from debian.debian_support import Version

from harness.building import fetch, update
from harness.building.recipes import IMAGES_DIR
from tests.helpers import one_error_line
from tests.test_fetch import Mirror, _cli, _real_suite

DEBIAN = fetch.Source("http://deb.debian.org/debian", ("trixie", "sid", "bookworm"))


@pytest.fixture
def mirror(tmp_path):
    m = Mirror(tmp_path / "www")
    yield m
    m.close()


def _serve(mirror: Mirror, *suites: str) -> dict[str, str]:
    """Publish real suites; return each suite's Packages text."""
    texts = {}
    for suite in suites:
        folder = _real_suite(DEBIAN, suite)
        mirror.publish_suite(DEBIAN, suite, folder)
        texts[suite] = fetch.decompress_index("Packages.xz", (folder / "Packages.xz").read_bytes())
    return texts


def _recipe_copy(tmp_path: Path, name: str, pins: dict[str, str]) -> Path:
    """images/NAME.yaml copied out, extending the shipped base by path, with pin lines replaced."""
    text = (IMAGES_DIR / f"{name}.yaml").read_text()
    text = re.sub(r"^extends: (\S+)$", lambda m: f"extends: {IMAGES_DIR / m[1]}.yaml", text, flags=re.M)
    for old, new in pins.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "recipes" / f"{name}.yaml"
    path.parent.mkdir()
    path.write_text(text)
    return path


def _newest_of_family(text: str, prefix: str, pattern: str) -> fetch.PackageEntry:
    names = {n for n in fetch.package_names(text, prefix) if re.fullmatch(pattern, n)}
    entries = [fetch.newest_in_index(text, n, "amd64") for n in names]
    return max((e for e in entries if e), key=lambda e: Version(e.version))


def test_a_pin_that_left_trixie_is_one_line_then_moved_in_place(tmp_path, mirror):
    texts = _serve(mirror, "trixie", "bookworm")
    recipe = _recipe_copy(tmp_path, "qemu-x86_64-6.12", {
        "debian_package: linux-image-6.12.117+deb13-amd64": "debian_package: linux-image-6.12.100+deb13-amd64",
        "version: 6.12.117-1": 'version: "6.12.100-1"  # quoted on purpose: the quotes stay'})
    before = recipe.read_text()
    env = {"BINDER_HARNESS_CACHE": str(tmp_path / "cache"), fetch.MIRROR_ENV: mirror.sources,
           "BINDER_HARNESS_FETCH": "http"}

    line = one_error_line(_cli(["images", "fetch", str(recipe)], env))
    assert line == (f"binder-harness: linux-image-6.12.100+deb13-amd64=6.12.100-1 (amd64) is not in the Packages "
                    f"index of {mirror.url} trixie bookworm (any more); move the pin to what the suites have now: "
                    f"binder-harness images update {recipe}"), line

    want = _newest_of_family(texts["trixie"], "linux-image-6.12.", r"linux-image-6\.12\.\d+\+deb13-amd64")
    arrow = (f"kernel: linux-image-6.12.100+deb13-amd64=6.12.100-1 -> {want.package}={want.version} "
             f"(from trixie)")
    dry = _cli(["images", "update", "--dry-run", str(recipe)], env)
    assert dry.status == 1, dry.stdout + dry.stderr
    assert arrow in dry.stdout and "dry run:" in dry.stdout and recipe.read_text() == before
    assert "busybox: busybox-static=" in dry.stdout and "(in bookworm) [pinned in" in dry.stdout

    done = _cli(["images", "update", str(recipe)], env)
    assert done.status == 0, done.stdout + done.stderr
    assert arrow in done.stdout and "rewrote 2 field(s)" in done.stdout
    after = recipe.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before.splitlines(), after) if a != b]
    assert len(after) == len(before.splitlines())  # comments and every other line as written
    assert changed == [("  debian_package: linux-image-6.12.100+deb13-amd64", f"  debian_package: {want.package}"),
                       ('  version: "6.12.100-1"  # quoted on purpose: the quotes stay',
                        f'  version: "{want.version}"  # quoted on purpose: the quotes stay')]
    again = _cli(["images", "update", "--dry-run", str(recipe)], env)
    assert again.status == 0 and f"kernel: {want.package}={want.version} (in trixie)" in again.stdout


def test_sid_kernel_moves_with_its_modules_package(tmp_path, mirror):
    texts = _serve(mirror, "sid", "bookworm")
    recipe = _recipe_copy(tmp_path, "qemu-x86_64-7.2", {
        "linux-binary-7.2.13+deb14-amd64": "linux-binary-7.2.1+deb14-amd64",
        "linux-modules-7.2.13+deb14-amd64": "linux-modules-7.2.1+deb14-amd64",
        "version: 7.2.13-1": "version: 7.2.1-1"})
    env = {"BINDER_HARNESS_CACHE": str(tmp_path / "cache"), fetch.MIRROR_ENV: mirror.sources}
    want = _newest_of_family(texts["sid"], "linux-binary-7.2.", r"linux-binary-7\.2\.\d+\+deb14-amd64")
    abi = want.package.removeprefix("linux-binary-").removesuffix("-amd64")
    modules = f"linux-modules-{abi}-amd64"
    assert fetch.find_in_index(texts["sid"], modules, want.version, "amd64"), "sid lists the modules package"

    done = _cli(["images", "update", str(recipe)], env)
    assert done.status == 0, done.stdout + done.stderr
    assert (f"kernel: linux-binary-7.2.1+deb14-amd64=7.2.1-1 (+ linux-modules-7.2.1+deb14-amd64) -> "
            f"{want.package}={want.version} (+ {modules}) (from sid)") in done.stdout
    text = recipe.read_text()
    assert f"  debian_package: {want.package}\n  modules_package: {modules}\n  version: {want.version}\n" in text
    assert text.startswith("# Debian sid's 7.2 kernel on x86_64")


def test_update_refuses_an_unknown_recipe_in_one_line(tmp_path):
    line = one_error_line(_cli(["images", "update", str(tmp_path / "nope.yaml")],
                               {"BINDER_HARNESS_CACHE": str(tmp_path / "cache")}))
    assert line.startswith(f"binder-harness: --image {tmp_path}/nope.yaml: no such recipe file or name"), line


def test_kernel_families_and_yaml_rendering():
    for name, other, same in [
        ("linux-image-6.12.117+deb13-amd64", "linux-image-6.12.140+deb13-amd64", True),
        ("linux-image-6.12.117+deb13-amd64", "linux-image-6.12.117+deb13-cloud-amd64", False),
        ("linux-image-6.12.117+deb13-amd64", "linux-image-6.12.117+deb13-amd64-dbg", False),
        ("linux-image-6.12.117+deb13-amd64", "linux-image-6.13.2+deb13-amd64", False),
        ("linux-image-6.1.0-57-amd64", "linux-image-6.1.0-58-amd64", True),
        ("linux-binary-7.2.13+deb14-arm64", "linux-binary-7.2.20+deb14-arm64", True),
    ]:
        family = update._kernel_family(name)
        assert family is not None and bool(family[1].fullmatch(other)) is same, (name, other)
    assert update._kernel_family("busybox-static") is None
    assert update._render("1.2.3-1", None) == "1.2.3-1"
    assert update._render("1:1.37.0-6+b9", None, flow=False) == "1:1.37.0-6+b9"  # fine in a block mapping
    assert update._render("1:20", None, flow=False) == '"1:20"'  # YAML 1.1 reads a plain 1:20 as 80
    assert update._render("6.12", None) == '"6.12"'  # a float, plain
    assert update._render("2.0-1", "'") == "'2.0-1'"
