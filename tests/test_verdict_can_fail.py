"""The verdict can fail: seeded-bug modules built from Debian's linux-source-6.1 and -6.12
are caught by the case meant to catch them; an unmodified rebuild passes."""
from __future__ import annotations

import pytest

from tests.helpers import cli
from tests.seeded_bugs import build


@pytest.fixture(scope="module")
def modules():
    build.ensure_build_deps(build.DEFAULT_RELEASE)
    return {name: build.build_module(name) for name in ("double_copy", "warn_on_transaction", None)}


def test_double_copy_fails_sync_sizes_naming_the_copy_count(tmp_path, modules):
    run = cli("run", "one_copy.sync_sizes", "--binder-module", str(modules["double_copy"]), out=tmp_path)
    assert run.status == 1, run.stderr
    case = run.case("one_copy.sync_sizes")
    assert case["outcome"] == "failed"
    assert "kernel copies per payload byte" in case["reason"]
    assert "expected 1.0, measured 2.0" in case["reason"]
    assert run.report["target"]["binder_module"] == str(modules["double_copy"])
    assert len(run.report["target"]["binder_module_sha256"]) == 64
    copied = [t["copied_bytes"] for t in case["evidence"]["transactions"]]
    assert copied == [2 * s for s in (8, 4096, 10000, 65536, 1040384)]


def test_warning_fails_the_case_through_health(tmp_path, modules):
    run = cli("run", "one_copy.sync_sizes", "--binder-module", str(modules["warn_on_transaction"]), out=tmp_path)
    assert run.status == 1
    case = run.case("one_copy.sync_sizes")
    assert case["outcome"] == "failed"
    assert "kernel health" in case["reason"] and "WARNING:" in case["reason"]
    failing = [c for c in case["checks"] if not c["passed"]]
    assert [c["name"] for c in failing] == ["kernel health: dmesg delta free of WARNING/BUG/Oops/KASAN/Call Trace"]


def test_unmodified_rebuild_passes(tmp_path, modules):
    run = cli("run", "one_copy.sync_sizes", "--binder-module", str(modules[None]), out=tmp_path)
    assert run.status == 0, run.stderr
    assert run.case("one_copy.sync_sizes")["outcome"] == "passed"


# --- Debian trixie's 6.12: the module built from linux-source-6.12 (see tests/seeded_bugs/README.md)
RELEASE_6_12 = "6.12.117+deb13-amd64"


@pytest.fixture(scope="module")
def modules_6_12():
    build.ensure_build_deps(RELEASE_6_12)
    return {name: build.build_module(name, RELEASE_6_12) for name in ("double_copy", None)}


def test_double_copy_fails_sync_sizes_on_6_12(tmp_path, modules_6_12):
    run = cli("run", "one_copy.sync_sizes", "--image", "qemu-x86_64-6.12",
              "--binder-module", str(modules_6_12["double_copy"]), out=tmp_path)
    assert run.status == 1, run.stderr
    assert run.report["target"]["kernel_release"] == RELEASE_6_12
    case = run.case("one_copy.sync_sizes")
    assert case["outcome"] == "failed"
    assert "kernel copies per payload byte" in case["reason"]
    assert "expected 1.0, measured 2.0" in case["reason"]
    assert case["evidence"]["struct_offsets"]["binder_buffer.user_data"]["from"] == "BTF /sys/kernel/btf/binder_linux"
    copied = [t["copied_bytes"] for t in case["evidence"]["transactions"]]
    assert copied == [2 * s for s in (8, 4096, 10000, 65536, 1040384)]


def test_unmodified_6_12_rebuild_passes(tmp_path, modules_6_12):
    run = cli("run", "one_copy.sync_sizes", "--image", "qemu-x86_64-6.12",
              "--binder-module", str(modules_6_12[None]), out=tmp_path)
    assert run.status == 0, run.stderr
    assert run.case("one_copy.sync_sizes")["outcome"] == "passed"
