"""The kernel under test: a custom kernel and modules tree boots and passes, and
every mismatch is refused before boot with one line naming both sides.

The custom kernel is Debian's previous 6.1 ABI (6.1.0-56), taken out of its
.deb as a user would have it after `make`: a bzImage plus a modules tree.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.building import debian
from harness.building.build import build_image, ensure_kernel
from harness.building.packages import fetch_deb
from harness.building.recipes import find_recipe, load_recipe, recipe_for_arch
from tests.helpers import REPO, cli, one_error_line

QUIET = dict(progress=lambda _: None)
PREV = "6.1.0-56-amd64"
# Enough of the modules tree for binder and the 9p share, as `make modules_install` lays it out.
_KEEP = ("/kernel/drivers/android/", "/kernel/fs/9p/", "/kernel/net/9p/", "/kernel/drivers/virtio/",
         "/kernel/fs/netfs/", "/kernel/fs/fscache/")


@pytest.fixture(scope="session")
def prev_kernel_tree(tmp_path_factory) -> Path:
    """boot/vmlinuz-6.1.0-56-amd64 and lib/modules/6.1.0-56-amd64 from the real Debian package."""
    recipe = load_recipe(find_recipe("qemu-x86_64-6.1.0-56"))
    deb = fetch_deb(recipe.kernel, recipe.deb_arch, **QUIET)
    root = tmp_path_factory.mktemp("linux-6.1.0-56")

    def wanted(name: str) -> bool:
        return (name.startswith("boot/vmlinuz-") or name.startswith("lib/modules/") and
                (any(k in name for k in _KEEP) or name.rsplit("/", 1)[-1].startswith("modules.")))

    debian.extract_deb(deb, root, wanted)
    assert (root / "boot" / f"vmlinuz-{PREV}").is_file()
    return root


def _one_line_before_boot(run) -> str:
    line = one_error_line(run)
    assert not (run.out / "console.log").exists(), "QEMU was started"
    return line


def test_custom_kernel_and_modules_pass_sync_sizes(tmp_path, prev_kernel_tree):
    bz = prev_kernel_tree / "boot" / f"vmlinuz-{PREV}"
    run = cli("run", "one_copy.sync_sizes", "--kernel", str(bz), "--modules", str(prev_kernel_tree), out=tmp_path)
    assert run.status == 0, run.stderr
    target = run.report["target"]
    assert target["kernel_release"] == PREV
    assert target["kernel_source"] == str(bz)
    assert target["binder_module"] == "stock"
    assert run.case("one_copy.sync_sizes")["outcome"] == "passed"
    # booted now, or restored from the snapshot of an earlier boot of this very kernel (its key
    # covers the kernel's content)
    case = run.case("one_copy.sync_sizes")
    assert (f"READY {PREV}" in (tmp_path / "console.log").read_text(errors="replace")
            or case["guest_start"]["how"] == "restored"), case["guest_start"]


def test_pytest_plugin_takes_image_and_kernel_options(tmp_path, prev_kernel_tree):
    """pytest cases/ --image RECIPE, and --kernel/--modules, boot the previous 6.1 kernel."""
    bz = prev_kernel_tree / "boot" / f"vmlinuz-{PREV}"
    for name, extra in (("image", ["--image", "qemu-x86_64-6.1.0-56"]),
                        ("kernel", ["--kernel", str(bz), "--modules", str(prev_kernel_tree)])):
        out = tmp_path / name
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "cases/", "-q", "-p", "no:cacheprovider", "-k", "protocol.version",
             "--bh-out", str(out), *extra], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert json.loads((out / "report.json").read_text())["target"]["kernel_release"] == PREV
    bad = subprocess.run([sys.executable, "-m", "pytest", "cases/", "-q", "--modules", str(tmp_path / "none")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 4 and "--modules" in bad.stderr and "no such directory" in bad.stderr


def test_bzimage_boots_as_extracted_pvh_vmlinux(prev_kernel_tree):
    bz = prev_kernel_tree / "boot" / f"vmlinuz-{PREV}"
    image = build_image(recipe_for_arch("x86_64"), kernel=bz, modules=prev_kernel_tree, **QUIET)
    assert image.kernel.name == "vmlinux" and image.kernel.read_bytes()[:4] == b"\x7fELF"
    assert image.identity.release == PREV and image.identity.kind == "bzImage"
    assert "binder_linux.ko" in image.modules and "9p.ko" in image.modules


def test_arm64_kernel_refused_by_x86_64_guest(tmp_path):
    arm = ensure_kernel(recipe_for_arch("arm64"), **QUIET)
    line = _one_line_before_boot(cli("run", "one_copy.sync_sizes", "--target", "qemu:x86_64",
                                     "--kernel", str(arm.kernel), out=tmp_path))
    assert "is an arm64 kernel (6.1.0-57-arm64)" in line and "qemu:x86_64" in line


def test_amd64_module_refused_by_arm64_guest(tmp_path):
    x86 = ensure_kernel(recipe_for_arch("x86_64"), **QUIET)
    ko = next(x86.moddir.rglob("binder_linux.ko"))
    line = _one_line_before_boot(cli("run", "one_copy.sync_sizes", "--target", "qemu:arm64",
                                     "--binder-module", str(ko), out=tmp_path))
    assert "built for x86_64" in line and "kernel is arm64 (6.1.0-57-arm64)" in line


def test_module_for_another_release_refused(tmp_path, prev_kernel_tree):
    ko = next(prev_kernel_tree.rglob("binder_linux.ko"))
    line = _one_line_before_boot(cli("run", "one_copy.sync_sizes", "--binder-module", str(ko), out=tmp_path))
    assert f"vermagic says {PREV}" in line and "kernel is 6.1.0-57-amd64" in line


def test_modules_tree_for_another_release_refused(tmp_path, prev_kernel_tree):
    current = ensure_kernel(recipe_for_arch("x86_64"), **QUIET)
    bz = prev_kernel_tree / "boot" / f"vmlinuz-{PREV}"
    line = _one_line_before_boot(cli("run", "--kernel", str(bz), "--modules", str(current.moddir.parents[2]),
                                     out=tmp_path))
    assert "holds modules for 6.1.0-57-amd64" in line and f"kernel is {PREV}" in line
    line = _one_line_before_boot(cli("run", "--kernel", str(bz), "--modules", str(current.moddir),
                                     out=tmp_path / "b"))
    assert "vermagic says 6.1.0-57-amd64" in line and f"kernel is {PREV}" in line


@pytest.mark.parametrize("kind", ["bzImage", "vmlinux", "Image"])
def test_truncated_kernel_refused(tmp_path, prev_kernel_tree, kind):
    if kind == "bzImage":
        src, target = prev_kernel_tree / "boot" / f"vmlinuz-{PREV}", "qemu:x86_64"
    else:
        src = ensure_kernel(recipe_for_arch("x86_64" if kind == "vmlinux" else "arm64"), **QUIET).kernel
        target = "qemu:x86_64" if kind == "vmlinux" else "qemu:arm64"
    data = src.read_bytes()
    cut = tmp_path / f"cut-{kind}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    t0 = time.monotonic()
    line = _one_line_before_boot(cli("run", "--target", target, "--kernel", str(cut), out=tmp_path / "o"))
    assert f"truncated {kind if kind != 'Image' else 'arm64 Image'}" in line and str(cut) in line
    assert time.monotonic() - t0 < 20


def test_not_a_kernel_refused(tmp_path):
    junk = tmp_path / "bzImage"
    junk.write_bytes(b"\0" * 4096)
    line = _one_line_before_boot(cli("run", "--kernel", str(junk), out=tmp_path / "o"))
    assert "not a vmlinux, bzImage or arm64 Image" in line


def test_missing_modules_dir_refused(tmp_path, prev_kernel_tree):
    bz = prev_kernel_tree / "boot" / f"vmlinuz-{PREV}"
    line = _one_line_before_boot(cli("run", "--kernel", str(bz), "--modules", str(tmp_path / "nope"),
                                     out=tmp_path / "o"))
    assert "--modules" in line and "no such directory" in line
