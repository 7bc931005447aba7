"""run --trace-dat: each traced case also gets cases/<id>/trace.dat, written by Debian's
trace-cmd inside the guest and read back on the host by the host's `trace-cmd report`.
Without the flag nothing changes: no trace.dat, no trace-cmd in the initramfs."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from harness.building.guest_files import trace_cmd_files
from harness.building.build import build_image
from harness.building.recipes import recipe_for_arch
from harness.evidence.trace import collect_script, trace_dat_status
from tests.helpers import cli

CASE = "one_copy.sync_sizes"


def host_report(path) -> str:
    if shutil.which("trace-cmd") is None:
        pytest.fail("the host has no trace-cmd; scripts/setup --test installs Debian's")
    proc = subprocess.run(["trace-cmd", "report", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]
    return proc.stdout


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_trace_dat_opens_in_host_trace_cmd(tmp_path, arch):
    run = cli("run", CASE, "--target", f"qemu:{arch}", "--trace-dat", out=tmp_path / "run")
    assert run.status == 0, run.stderr[-1000:]
    case = run.case(CASE)
    assert case["outcome"] == "passed"
    assert "trace_dat" not in case["evidence"], case["evidence"]["trace_dat"]
    case_dir = tmp_path / "run" / "cases" / CASE
    dat = case_dir / "trace.dat"
    assert dat.read_bytes()[:10] == b"\x17\x08\x44tracing"  # trace-cmd's file magic
    text = host_report(dat)
    lines = text.splitlines()
    transactions = [l for l in lines if " binder_transaction: " in l]
    copies = [l for l in lines if " copy_user_to_buffer: " in l]
    begin = [l for l in lines if "tracing_mark_write: B|" in l and l.endswith(f"|{CASE}")]
    assert transactions and copies and len(begin) == 1, text[:2000]
    # the same events as the text trace, read before trace-cmd consumed the buffer
    txt = (case_dir / "trace.txt").read_text()
    assert len(transactions) == txt.count(" binder_transaction: ")
    assert len(copies) == txt.count(" copy_user_to_buffer: ")


def test_without_the_flag_there_is_no_trace_dat_nor_trace_cmd(tmp_path):
    run = cli("run", CASE, "--target", "qemu:x86_64", out=tmp_path / "run")
    assert run.status == 0, run.stderr[-1000:]
    case_dir = tmp_path / "run" / "cases" / CASE
    assert (case_dir / "trace.txt").is_file()
    assert not (case_dir / "trace.dat").exists()
    assert "trace_dat" not in run.case(CASE)["evidence"]
    recipe = recipe_for_arch("x86_64")
    quiet = lambda *a, **k: None  # noqa: E731
    default = build_image(recipe, None, quiet).initramfs.read_bytes()
    assert b"bin/trace-cmd\0" not in default and b"libtracefs.so" not in default
    files, modules = trace_cmd_files(recipe, quiet)
    with_tool = build_image(recipe, None, quiet, extra_files=tuple(files), extra_modules=modules).initramfs
    assert b"bin/trace-cmd\0" in with_tool.read_bytes()


def test_target_without_trace_cmd_says_so(tmp_path):
    """ssh/adb targets without trace-cmd: the collect step reports 'missing' and still saves trace.txt."""
    tracefs = tmp_path / "tracing"
    tracefs.mkdir()
    (tracefs / "tracing_on").write_text("1\n")
    (tracefs / "trace").write_text("# tracer: nop\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(shutil.which("cat"), bindir / "cat")
    script = collect_script(str(tracefs), str(tmp_path / "trace.txt"), 0, str(tmp_path / "trace.dat"))
    proc = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env={"PATH": str(bindir)})
    assert trace_dat_status(proc.stdout) == "missing", proc.stdout + proc.stderr
    assert (tmp_path / "trace.txt").read_text() == "# tracer: nop\n"
    assert not (tmp_path / "trace.dat").exists()
    assert "trace-cmd" not in collect_script(str(tracefs), "/x/trace.txt", 0)
    assert trace_dat_status("> > trace-dat=0\n") == "0" and trace_dat_status("") is None
