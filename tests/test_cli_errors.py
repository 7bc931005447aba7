"""Bad usage and configuration: exit 2 with one line naming the problem, no traceback."""
from __future__ import annotations

import pytest

from harness.images.build import build_image
from harness.images.recipes import recipe_for_arch
from tests.helpers import cli, one_error_line




def test_unknown_case(tmp_path):
    line = one_error_line(cli("run", "one_copy.nope", out=tmp_path))
    assert "unknown case 'one_copy.nope'" in line


def test_unknown_glob(tmp_path):
    assert "unknown case 'zzz.*'" in one_error_line(cli("run", "zzz.*", out=tmp_path))


def test_unknown_target(tmp_path):
    line = one_error_line(cli("run", "--target", "qemu:riscv64", out=tmp_path))
    assert "--target qemu:riscv64" in line


def test_unknown_target_kind(tmp_path):
    assert "unknown target" in one_error_line(cli("run", "--target", "telnet://x", out=tmp_path))


def test_missing_module_file(tmp_path):
    line = one_error_line(cli("run", "--binder-module", str(tmp_path / "nope.ko"), out=tmp_path / "o"))
    assert "nope.ko: no such file" in line


def test_unknown_option(tmp_path):
    assert "unrecognized arguments: --frobnicate" in one_error_line(cli("run", "--frobnicate", out=tmp_path))


def test_not_a_module(tmp_path):
    bogus = tmp_path / "binder_linux.ko"
    bogus.write_text("not an ELF file")
    line = one_error_line(cli("run", "one_copy.sync_sizes", "--binder-module", str(bogus), out=tmp_path / "o"))
    assert "not an ELF kernel module" in line


def test_wrong_arch_module_names_both(tmp_path):
    """The arm64 guest's stock binder_linux.ko given to the x86_64 guest."""
    arm = build_image(recipe_for_arch("arm64"), progress=lambda _: None)
    arm_ko = next((arm.kernel.parent / "lib").rglob("binder_linux.ko"))
    line = one_error_line(cli("run", "one_copy.sync_sizes", "--target", "qemu:x86_64",
                         "--binder-module", str(arm_ko), out=tmp_path / "o"))
    assert "built for arm64" in line and "kernel is x86_64" in line


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = one_error_line(cli("run", "one_copy.sync_sizes", out=blocker / "sub"))
    assert "--out" in line and "not writable" in line


@pytest.mark.parametrize("bad", ["0", "-3"])
def test_bad_timeout(tmp_path, bad):
    assert "--timeout" in one_error_line(cli("run", "--timeout", bad, out=tmp_path))
