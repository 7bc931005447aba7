"""Bad input to the run and matrix commands: exit 2, one line naming file, line and field or
the argument, and the fix; never a traceback, and nothing booted."""
from __future__ import annotations

import pytest

from tests.helpers import cli, one_error_line




@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_bad_jobs(tmp_path, jobs):
    line = one_error_line(cli("run", "protocol.version", "-j", jobs, out=tmp_path))
    assert line == f"binder-harness: -j/--jobs {jobs}: must be at least 1 (the number of guests run at once)"


def test_jobs_not_a_number(tmp_path):
    assert "argument -j/--jobs: invalid int value: 'many'" in one_error_line(cli("run", "-j", "many", out=tmp_path))


def test_conflicting_image_and_target(tmp_path):
    line = one_error_line(cli("run", "--image", "qemu-arm64", "--target", "qemu:x86_64", out=tmp_path))
    assert "recipe qemu-arm64 is for arm64, but the target is qemu:x86_64" in line


def test_unknown_option_of_matrix(tmp_path):
    assert "unrecognized arguments: --target" in one_error_line(
        cli("matrix", "m.yaml", "--target", "qemu:x86_64", out=tmp_path))


def _matrix(tmp_path, text: str):
    path = tmp_path / "nightly.yaml"
    path.write_text(text)
    return path, one_error_line(cli("matrix", str(path), out=tmp_path / "out"))


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


GOOD = "targets: [qemu:x86_64]\nkernels: [default]\ncases: [protocol.version]\n"


@pytest.mark.parametrize("text, needle, message", [
    ("targets: [qemu:x86_64\nkernels: [default]\n", "kernels", "invalid YAML"),
    (GOOD.replace("qemu:x86_64", "qemu:riscv64"), "targets",
     "field 'targets' qemu:riscv64: unknown QEMU arch 'riscv64'"),
    (GOOD.replace("[default]", "[qemu-arm64]"), "kernels",
     "field 'kernels' qemu-arm64 is a arm64 kernel, and no target is qemu:arm64; add it to 'targets' or drop the kernel"),
    (GOOD.replace("[default]", "[nope]"), "kernels", "field 'kernels' nope: --image nope: no such recipe file or name"),
    (GOOD.replace("protocol.version", "zzz.*"), "cases", "field 'cases' unknown case 'zzz.*'"),
    (GOOD + "timeout: -1\n", "timeout", "field 'timeout' must be a positive number of seconds, got -1"),
    (GOOD + "jobs: 2\n", "jobs", "field 'jobs' is unknown; known fields here: cases, kernels, not_applicable, seed, targets, timeout"),
    (GOOD.replace("[qemu:x86_64]", "qemu:x86_64"), "targets",
     "field 'targets' must be a list, got str 'qemu:x86_64'"),
    (GOOD.replace("[default]", "[]"), "kernels", "field 'kernels' must be a non-empty list of strings"),
])
def test_bad_matrix_file(tmp_path, text, needle, message):
    path, line = _matrix(tmp_path, text)
    assert line.startswith(f"binder-harness: {path}:{_line_of(text, needle)}: "), line
    assert message in line, line


def test_matrix_not_a_mapping(tmp_path):
    path, line = _matrix(tmp_path, "- qemu:x86_64\n")
    assert line == (f"binder-harness: {path}:1: a matrix file is a YAML mapping with 'targets', 'kernels' "
                    "and 'cases'")


def test_missing_matrix_file(tmp_path):
    line = one_error_line(cli("matrix", str(tmp_path / "nope.yaml"), out=tmp_path / "out"))
    assert line == f"binder-harness: {tmp_path / 'nope.yaml'}: cannot read matrix file (No such file or directory)"


def test_bad_extra_case_module(tmp_path):
    (tmp_path / "mine.py").write_text("from harness.judging.catalog import case\n\n@case('mine.x'\ndef x(ctx): pass\n")
    from tests.helpers import cli_env

    run = cli("list", env=cli_env(BINDER_HARNESS_EXTRA_CASES=str(tmp_path)))
    line = one_error_line(run)
    assert line.startswith(f"binder-harness: {tmp_path / 'mine.py'}:3: case module does not parse"), line


@pytest.mark.parametrize("args, needle", [
    (["--resident-context-manager"], "guest --resident-context-manager: goes with --adb-port"),
    (["--adb-port", "5600", "--ssh-port", "5601"], "guest: give --ssh-port or --adb-port, not both"),
    (["--adb-port", "-1"], "--adb-port -1: not a TCP port"),
])
def test_bad_guest_options(args, needle):
    line = one_error_line(cli("guest", "--target", "qemu:x86_64", *args))
    assert needle in line, line
