"""Pure parsers and writers, on real output captured from Debian 6.1 guests."""
from __future__ import annotations

import io
import json
import subprocess
import tarfile

import pytest

from harness.building import debian
from harness.errors import ConfigError
from harness.building.cpio import CpioWriter
from harness.evidence.probe import parse_probe_output
from harness.evidence.trace import binder_transactions, parse_ftrace, usercopies_in_binder_ioctl
from harness.evidence.kprobes import COPY_USER_TO_BUFFER
from harness.judging.verdicts import CaseResult, Check, judge, scan_dmesg
from tests.helpers import DATA, host_tool, read_newc


def test_cpio_roundtrip_and_parents():
    w = CpioWriter()
    w.file("a/b/c.txt", b"hello", 0o600)
    w.symlink("bin/sh", "busybox")
    entries = read_newc(w.render())
    assert set(entries) == {"a", "a/b", "a/b/c.txt", "bin", "bin/sh"}
    assert entries["a/b/c.txt"] == (0o100600, b"hello")
    assert entries["bin/sh"] == (0o120777, b"busybox")


def test_cpio_is_readable_by_gnu_cpio(tmp_path):
    host_tool("cpio", "cpio")
    w = CpioWriter()
    w.file("init", b"#!/bin/sh\n", 0o755)
    listing = subprocess.run(["cpio", "-t"], input=w.render(), capture_output=True, check=True).stdout
    assert listing.split() == [b"init"]


def _deb(members: list[tuple[str, bytes]]) -> bytes:
    def member(name: str, data: bytes) -> bytes:
        head = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        return head + data + (b"\n" if len(data) % 2 else b"")

    return b"!<arch>\n" + b"".join(member(n, d) for n, d in members)


def test_deb_data_tar_streams_members_and_names_damage(tmp_path):
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:xz") as tar:
        for name, data in (("./boot/x", b"abc"), ("./lib/y", b"hello")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    deb = tmp_path / "p.deb"
    deb.write_bytes(_deb([("debian-binary", b"2.0\n"), ("control.tar.xz", b"x"), ("data.tar.xz", tar_bytes.getvalue())]))
    assert [p.name for p in debian.extract_deb(deb, tmp_path / "out", lambda n: n.startswith("lib/"))] == ["y"]
    assert (tmp_path / "out" / "lib" / "y").read_bytes() == b"hello"
    for damaged, why in ((deb.read_bytes()[:-40], "truncated"), (b"garbage", "magic"),
                         (_deb([("debian-binary", b"2.0\n")]), "no data.tar")):
        deb.write_bytes(damaged)
        with pytest.raises(ConfigError, match=f"p.deb: not a valid .deb .*{why}.*fetched again"):
            debian.extract_deb(deb, tmp_path / "out2")


def test_deb_data_tar_streams_zstd(tmp_path):
    """Ubuntu-style data.tar.zst streams through zstandard, as xz does through tarfile."""
    import zstandard

    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        info = tarfile.TarInfo("./lib/modules/z.ko")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\x7fELF"))
    deb = tmp_path / "z.deb"
    deb.write_bytes(_deb([("debian-binary", b"2.0\n"), ("control.tar.zst", b"x"),
                          ("data.tar.zst", zstandard.ZstdCompressor().compress(tar_bytes.getvalue()))]))
    (ko,) = debian.extract_deb(deb, tmp_path / "out")
    assert ko.read_bytes() == b"\x7fELF"


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_trace_groups_copies_per_transaction(arch):
    trace = parse_ftrace((DATA / f"trace-sync_sizes-{arch}.txt").read_text())
    probe = parse_probe_output((DATA / f"probe-sync-{arch}.jsonl").read_text())
    assert trace.bad_lines == []
    assert any(l.startswith("# tracer: nop") for l in trace.header)
    roles = probe.one("roles")
    calls = [t for t in binder_transactions(trace) if t.pid == roles["client_pid"] and not t.reply]
    rx = probe.events("rx", role="server") or probe.events("rx")
    assert [t.data_size for t in calls] == [8, 4096, 10000, 65536, 1040384]
    assert [t.copied_bytes for t in calls] == [8, 4096, 10000, 65536, 1040384]
    for txn, r in zip(calls, rx):
        assert txn.copy_targets == {r["buffer"]}
    assert all(c.name == COPY_USER_TO_BUFFER.name for t in calls for c in t.copies)
    assert max(usercopies_in_binder_ioctl(trace, roles["server_pid"]), default=0) <= 64


def test_trace_bad_lines_are_kept_not_raised():
    text = "# tracer: nop\n   sh-1  ( 1) [000] ..... 1.5: tracing_mark_write: B|1|x.y\nnot a trace line\n"
    trace = parse_ftrace(text)
    assert [e.name for e in trace.events] == ["tracing_mark_write"]
    assert trace.bad_lines == ["not a trace line"]


def test_probe_output_keeps_bad_lines():
    out = parse_probe_output('{"ev":"done","ok":true,"pid":1}\nSegmentation fault\n[1,2]\n')
    assert out.done == {"ev": "done", "ok": True, "pid": 1}
    assert out.bad_lines == ["Segmentation fault", "[1,2]"]


def test_scan_dmesg_health_and_binder_lines():
    text = ("[ 1.0] binder: 120:121 transaction failed 29201/-28, size 4194312-0 line 3215\n"
            "[ 1.1] binder_alloc: 125: binder_alloc_buf size 4194312 failed, no address space\n"
            "[ 2.0] WARNING: CPU: 1 PID: 99 at binder.c:3278 binder_transaction+0x673\n"
            "[ 2.1] Call Trace:\n"
            "[ 2.2] binder_debug: 132 callbacks suppressed\n")
    health = scan_dmesg(text, expected=(r"no address space",))
    assert len(health.bad_lines) == 2
    assert health.expected_binder_lines == [text.splitlines()[1].strip()]
    assert health.unexpected_binder_lines == [text.splitlines()[0].strip()]


def test_judge_names_first_failed_check():
    result = CaseResult("x.y", checks=[
        Check("a", 1, 1, True, "f"), Check("copies per byte", 1.0, 2.0, False, "binder_transaction")])
    judge(result)
    assert result.outcome == "failed"
    assert result.reason == "copies per byte: expected 1.0, measured 2.0 (binder_transaction)"
    empty = CaseResult("x.z")
    judge(empty)
    assert empty.outcome == "error"


def test_captured_probe_lines_are_json_objects():
    for arch in ("x86_64", "arm64"):
        for line in (DATA / f"probe-sync-{arch}.jsonl").read_text().splitlines():
            assert isinstance(json.loads(line), dict)
