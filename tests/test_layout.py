"""Kprobe offsets follow the module under test: a rebuilt binder_linux.ko whose struct
binder_buffer has an extra field before user_data (seeded layout shifted_user_data, built
from Debian's linux-source-6.1 and -6.12 with BTF) still gives correct copy evidence, while
the same case with the old fixed +88 reads the wrong field."""
from __future__ import annotations

import pytest

from tests.helpers import REPO, cli, cli_env, offsets_as_read
from tests.seeded_bugs import build


KERNELS = {build.DEFAULT_RELEASE: "qemu-x86_64", "6.12.117+deb13-amd64": "qemu-x86_64-6.12"}


@pytest.mark.parametrize("release", sorted(KERNELS))
def test_shifted_user_data_passes_with_btf_offsets_and_fails_at_88(tmp_path, release):
    build.ensure_build_deps(release)
    shifted = build.build_module("shifted_user_data", release)
    env = cli_env(BINDER_HARNESS_EXTRA_CASES=str(REPO / "tests" / "layout_cases"))
    run = cli("run", "one_copy.sync_sizes", "layout.fixed_offset_88", "--image", KERNELS[release],
              "--binder-module", str(shifted), out=tmp_path, env=env)
    assert run.report["target"]["kernel_release"] == release
    placed = run.case("one_copy.sync_sizes")
    assert placed["outcome"] == "passed", placed["reason"]
    # against Debian's 6.1 headers (no vmlinux) kbuild makes no module BTF: the harness makes it from
    # the module's DWARF (harness/building/module_btf.py); the 6.12 tree has a vmlinux, so kbuild's own
    made = " (module BTF made on the host from its DWARF by pahole)" if release == build.DEFAULT_RELEASE else ""
    assert offsets_as_read(placed["evidence"]["struct_offsets"], run) == {
        "binder_buffer.user_data": {"offset": 96, "from": "BTF /sys/kernel/btf/binder_linux" + made}}
    assert [t["copied_bytes"] for t in placed["evidence"]["transactions"]] == [8, 4096, 10000, 65536, 1040384]

    fixed = run.case("layout.fixed_offset_88")
    assert fixed["outcome"] == "failed"
    assert "copies land at the receiver's buffer" in fixed["reason"]
    assert "measured ['0x0']" in fixed["reason"]  # +88 is now the zeroed pad field
    assert run.status == 1


def test_stock_module_offset_comes_from_its_btf(tmp_path):
    run = cli("run", "one_copy.sync_sizes", out=tmp_path)
    assert run.status == 0, run.stderr
    assert offsets_as_read(run.case("one_copy.sync_sizes")["evidence"]["struct_offsets"], run) == {
        "binder_buffer.user_data": {"offset": 88, "from": "BTF /sys/kernel/btf/binder_linux"}}


def test_offsets_are_kept_per_guest_build(tmp_path):
    """A second guest of the same files reuses the offsets the first read from its sysfs,
    and says so; another build (a rebuilt module) reads its own."""
    first = cli("run", "one_copy.sync_sizes", out=tmp_path / "first")
    second = cli("run", "one_copy.sync_sizes", out=tmp_path / "second")
    build_id = second.report["target"]["build_id"]
    assert len(build_id) == 24 and build_id == first.report["target"]["build_id"]
    assert second.case("one_copy.sync_sizes")["evidence"]["struct_offsets"] == {
        "binder_buffer.user_data": {"offset": 88, "from": "BTF /sys/kernel/btf/binder_linux",
                                    "kept_for_build": build_id}}
    assert second.status == 0
