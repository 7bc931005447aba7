"""The BTF parser (harness/evidence/btf.py) on BTF captured from Debian's kernels
(tests/data/btf/), and kprobes placed with the offsets it finds."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.evidence import btf, trace

DATA = Path(__file__).parent / "data" / "btf"
KERNELS = ("6.1-amd64", "6.1-arm64", "6.12-amd64", "6.12-arm64", "7.2-amd64", "7.2-arm64")


def captured(name: str) -> tuple[bytes, bytes]:
    return ((DATA / f"{name}.binder_linux.btf").read_bytes(),
            gzip.decompress((DATA / f"{name}.vmlinux-strings.btf.gz").read_bytes()))


@pytest.mark.parametrize("name", KERNELS)
def test_binder_buffer_layout_on_each_debian_kernel(name):
    module, base = captured(name)
    s = btf.find_struct(module, "binder_buffer", base)
    assert s.size == 104
    assert s.offset_of("user_data") == 88
    assert s.offset_of("data_size") == 64 and s.offset_of("pid") == 96
    # the flag bits share one word with debug_id: bitfields, found as such
    bits = {m.name: m.bitfield_size for m in s.members}
    assert bits["free"] == 1 and bits["debug_id"] == 27


def test_split_btf_names_come_from_the_base():
    # "user_data" is a vmlinux string: the module's split BTF names it by a base offset
    module, base = captured("6.12-amd64")
    s = btf.find_struct(module, "binder_buffer", base)
    assert "user_data" in [m.name for m in s.members]
    with pytest.raises(btf.BTFError):  # without the base those offsets point past its own strings
        btf.find_struct(module, "binder_buffer")


def test_struct_defined_in_the_module_is_found_with_others():
    module, base = captured("6.1-amd64")
    assert btf.member_offset(module, "binder_alloc", "buffer_size", base) >= 0


def test_missing_member_names_what_there_is():
    module, base = captured("6.1-amd64")
    with pytest.raises(btf.BTFError, match="struct binder_buffer has no member 'nope' .*user_data"):
        btf.member_offset(module, "binder_buffer", "nope", base)


def test_missing_struct():
    module, base = captured("6.1-amd64")
    with pytest.raises(btf.BTFError, match="no struct no_such_struct"):
        btf.find_struct(module, "no_such_struct", base)


@pytest.mark.parametrize("cut", [0, 10, 24, 1000])
def test_truncated_btf_is_one_line(cut):
    module, base = captured("6.1-amd64")
    with pytest.raises(btf.BTFError) as exc:
        btf.find_struct(module[:cut], "binder_buffer", base, what="/sys/kernel/btf/binder_linux")
    assert "\n" not in str(exc.value) and "/sys/kernel/btf/binder_linux" in str(exc.value)


def test_not_btf():
    with pytest.raises(btf.BTFError, match="magic"):
        btf.find_struct(b"\x7fELF" + bytes(60), "binder_buffer")


def test_elf_section_is_none_for_non_elf():
    assert btf.elf_section(b"not an elf", ".BTF") is None


def test_kprobe_is_placed_with_the_offset():
    assert trace.COPY_USER_TO_BUFFER.struct_fields == ("binder_buffer.user_data",)
    placed = trace.COPY_USER_TO_BUFFER.with_offsets({"binder_buffer.user_data": 96})
    assert "user_data=+96($arg2):x64" in placed.definition()
    assert placed.struct_fields == ()
    with pytest.raises(KeyError):
        trace.COPY_TO_BUFFER.with_offsets({})


def test_arm_script_refuses_an_unplaced_kprobe():
    with pytest.raises(ValueError, match="no offset yet"):
        trace.arm_script("/sys/kernel/tracing", (trace.COPY_USER_TO_BUFFER,), "one_copy.sync_sizes")
    placed = trace.COPY_USER_TO_BUFFER.with_offsets({"binder_buffer.user_data": 88})
    assert "+88($arg2)" in trace.arm_script("/sys/kernel/tracing", (placed,), "one_copy.sync_sizes")


def test_build_id_from_kernel_notes():
    # the .notes section of Debian's 6.1.0-57-amd64 vmlinux, what /sys/kernel/notes serves
    notes = (DATA / "6.1-amd64.notes").read_bytes()
    assert btf.gnu_build_id(notes) == "6a2b4ac77585b8cf102cba771300e573c8489b69"
    assert btf.gnu_build_id(notes[:10]) is None
    assert btf.gnu_build_id(b"") is None


_MODULE, _BASE = captured("6.12-amd64")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(_MODULE) - 1), st.binary(min_size=1, max_size=16), st.integers(0, len(_MODULE)))
def test_damaged_btf_gives_an_answer_or_a_btf_error(at, junk, cut):
    """Whatever the bytes, the parser returns a struct or raises BTFError, nothing else."""
    data = (_MODULE[:at] + junk + _MODULE[at + len(junk):])[:cut]
    try:
        btf.find_struct(data, "binder_buffer", _BASE)
    except btf.BTFError as exc:
        assert "\n" not in str(exc)
