"""End to end on real guests: boot Debian's kernel under QEMU, run the probe
against the real binder driver, and read the verdict from report.json."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.helpers import cli, qemu_processes

SCHEMA_KEYS = {"schema", "target", "cases", "summary", "timings"}


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_sync_sizes_passes_on_stock_driver(tmp_path, arch):
    before = qemu_processes()
    run = cli("run", "one_copy.sync_sizes", "--target", f"qemu:{arch}", out=tmp_path)
    assert run.status == 0, run.stderr
    report = run.report
    assert SCHEMA_KEYS <= set(report) and report["schema"] == 2
    assert report["target"]["arch"] == arch
    assert report["target"]["kernel_release"].startswith("6.1.0-")
    assert report["target"]["accel"] in ("tcg", "kvm")
    assert report["target"]["binder_module"] == "stock"
    assert report["summary"] == {"passed": 1, "failed": 0, "error": 0, "skipped": 0, "not_applicable": 0}
    case = run.case("one_copy.sync_sizes")
    assert case["outcome"] == "passed"
    sizes = [t["size"] for t in case["evidence"]["transactions"]]
    assert sizes == [8, 4096, 10000, 65536, 1040384]
    assert [t["copied_bytes"] for t in case["evidence"]["transactions"]] == sizes
    assert {t["copies_per_byte"] for t in case["evidence"]["transactions"]} == {1.0}
    for name in ("console.log", "dmesg.txt", "probe.jsonl", "trace.txt", "junit.xml"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "B|" in (tmp_path / "trace.txt").read_text()
    ET.parse(tmp_path / "junit.xml")
    assert qemu_processes() <= before, "a QEMU process was left behind"


def test_list_shows_the_case():
    run = cli("list")
    assert run.status == 0
    assert "one_copy.sync_sizes" in run.stdout.split()
