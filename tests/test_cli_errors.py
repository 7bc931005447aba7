"""Bad usage and configuration: exit 2 with one line naming the problem, no traceback."""
from __future__ import annotations

import pytest

from harness.building.build import build_image
from harness.building.recipes import recipe_for_arch
from tests.helpers import cli, cli_env, one_error_line




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


@pytest.mark.parametrize("command", ["run", "lava"])
@pytest.mark.parametrize("bad", ["0", "-3"])
def test_bad_timeout_for_every_command(tmp_path, command, bad):
    """--timeout comes from the one option table, with its check, for run and lava alike."""
    line = one_error_line(cli(command, "--timeout", bad, out=tmp_path / "o"))
    assert line == f"binder-harness: --timeout {float(bad)}: must be a positive number of seconds"


@pytest.mark.parametrize("target, options, line", [
    ("adb", ["--binder-module", "{ko}"],
     "--binder-module: not supported on adb targets (adb); Android kernels carry binder built in"),
    ("adb:emulator-5554", ["--binder-module", "{ko}"],
     "--binder-module: not supported on adb targets (adb:emulator-5554); Android kernels carry binder built in"),
    ("local", ["--binder-module", "{ko}"],
     "local: --binder-module is not supported on this host's running kernel; load it yourself (insmod) and run "
     "without --binder-module"),
    ("adb", ["--image", "qemu-x86_64-6.12"],
     "--target adb: --kernel, --modules and --image choose a QEMU guest's kernel; they do not apply to adb targets"),
    ("ssh://root@127.0.0.1:1", ["--kernel", "{ko}"], "--target ssh://root@127.0.0.1:1: --kernel, --modules and "
     "--image choose a QEMU guest's kernel; they do not apply to ssh targets"),
    ("local", ["--insecure-accept-host-key"], "--target local: --identity, --known-hosts and "
     "--insecure-accept-host-key apply to ssh:// targets only"),
])
def test_option_the_target_kind_cannot_honour(tmp_path, target, options, line):
    """One check of every per-kind option against the spec, before anything connects: no adb
    binary (ADB points nowhere), an ssh port nothing listens on, and no run directory made yet."""
    ko = tmp_path / "binder_linux.ko"
    ko.write_bytes(b"\x7fELF")
    args = [a.format(ko=ko) for a in options]
    run = cli("run", "protocol.version", "--target", target, *args, out=tmp_path / "o",
              env=cli_env(ADB=str(tmp_path / "no-adb")))
    assert one_error_line(run) == f"binder-harness: {line}"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, line", [
    (("guest", "--target", "ssh://root@127.0.0.1"),
     "guest --target ssh://root@127.0.0.1: a guest is a QEMU target; use qemu:x86_64 or qemu:arm64"),
    (("guest", "--image", "qemu-arm64-6.12", "--target", "qemu:x86_64"),
     "--image qemu-arm64-6.12: recipe qemu-arm64-6.12 is for arm64, but the target is qemu:x86_64; "
     "use --target qemu:arm64 or an x86_64 recipe"),
    (("guest", "--kernel", "/nonexistent/bzImage"), "--kernel /nonexistent/bzImage: no such file"),
    (("guest", "--modules", "/nonexistent"), "--modules /nonexistent: no such directory; pass a modules tree "
     "(lib/modules/RELEASE) or a directory holding binder_linux.ko"),
    (("guest", "--image", "no-such-recipe"), "--image no-such-recipe: no such recipe file or name"),
])
def test_guest_takes_the_run_options_that_shape_a_guest(args, line):
    """`guest` takes --target, --image, --kernel, --modules and --binder-module from the one option
    table, with the same checks as `run`, before anything boots."""
    assert one_error_line(cli(*args)).startswith(f"binder-harness: {line}")
