"""The BTF parser (harness/evidence/btf.py) on BTF captured from Debian's kernels
(tests/data/btf/), and kprobes placed with the offsets it finds."""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.evidence import kprobes
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
    assert kprobes.COPY_USER_TO_BUFFER.struct_fields == ("binder_buffer.user_data",)
    placed = kprobes.COPY_USER_TO_BUFFER.with_offsets({"binder_buffer.user_data": 96})
    assert "user_data=+96($arg2):x64" in placed.definition()
    assert placed.struct_fields == ()
    with pytest.raises(KeyError):
        kprobes.COPY_TO_BUFFER.with_offsets({})


def test_arm_script_refuses_an_unplaced_kprobe():
    with pytest.raises(ValueError, match="no offset yet"):
        trace.arm_script("/sys/kernel/tracing", (kprobes.COPY_USER_TO_BUFFER,), "one_copy.sync_sizes")
    placed = kprobes.COPY_USER_TO_BUFFER.with_offsets({"binder_buffer.user_data": 88})
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


# --- a module without BTF: its BTF made on the host from its DWARF (harness/building/module_btf.py) ---

def test_pahole_flags_are_kbuilds():
    """The flags are what the headers' own scripts/pahole-flags.sh gives for the same pahole."""
    import os
    import subprocess

    from harness.building import module_btf

    assert module_btf.pahole_flags(124) == ["--btf_gen_floats", "-j", "--lang_exclude=rust"]
    assert module_btf.pahole_flags(120) == ["--skip_encoding_btf_vars"]
    assert module_btf.pahole_flags(117) == []
    script = Path("/usr/src/linux-headers-6.1.0-57-common/scripts/pahole-flags.sh")
    version = module_btf.pahole_version()
    assert version is not None, "pahole (Debian's dwarves) is part of scripts/setup"
    if script.exists():  # Debian's 6.1 headers, when installed (the seeded builder installs them)
        r = subprocess.run(["sh", str(script)], env=dict(os.environ, PAHOLE="pahole"), capture_output=True,
                           text=True, check=True)
        assert r.stdout.split() == module_btf.pahole_flags(version)


@pytest.fixture(scope="module")
def control_ko() -> Path:
    """The unmodified driver built out of tree against Debian's headers: DWARF, no .BTF."""
    from tests.seeded_bugs import build

    build.ensure_build_deps(build.DEFAULT_RELEASE)
    return build.build_module(None)


@pytest.fixture(scope="module")
def amd64_kernel() -> Path:
    from harness.building.build import ensure_kernel
    from harness.building.recipes import recipe_for_arch

    return ensure_kernel(recipe_for_arch("x86_64"), progress=lambda _: None).kernel


def test_module_btf_is_made_from_dwarf_on_a_copy(control_ko, amd64_kernel, tmp_path):
    import hashlib
    import subprocess

    from harness.building import module_btf

    before = control_ko.read_bytes()
    assert btf.elf_section(before, ".BTF") is None and btf.elf_section(before, ".debug_info") is not None
    made = module_btf.for_guest(control_ko, amd64_kernel)
    assert made != control_ko and made.name == "binder_linux.ko"
    assert control_ko.read_bytes() == before, "the user's file is never changed"
    assert module_btf.made_on_host(str(control_ko))
    base = btf.kernel_btf(amd64_kernel.read_bytes())
    split = btf.elf_section(made.read_bytes(), ".BTF")
    assert split and btf.member_offset(split, "binder_buffer", "user_data", base) == 88
    # the DWARF says the same: pahole's own reading of the module's debug info
    dwarf = subprocess.run(["pahole", "-C", "binder_buffer", str(control_ko)], capture_output=True, text=True,
                           check=True).stdout
    assert re.search(r"\buser_data;\s+/\*\s+88\s", dwarf), dwarf
    assert module_btf.for_guest(control_ko, amd64_kernel) == made  # kept in the cache by content
    # A raw BTF base (what an arm64 Image holds) makes the same bytes as the ELF vmlinux it came from
    (tmp_path / "vmlinux.btf").write_bytes(base)
    for name, base_file in (("raw", tmp_path / "vmlinux.btf"), ("elf", amd64_kernel)):
        ko = tmp_path / f"{name}.ko"
        ko.write_bytes(before)
        subprocess.run(["pahole", "-J", *module_btf.pahole_flags(module_btf.pahole_version() or 0),
                        "--btf_base", str(base_file), str(ko)], check=True, capture_output=True)
    assert (hashlib.sha256(btf.elf_section((tmp_path / "raw.ko").read_bytes(), ".BTF") or b"").digest()
            == hashlib.sha256(btf.elf_section((tmp_path / "elf.ko").read_bytes(), ".BTF") or b"-").digest())


def test_arm64_image_carries_a_raw_btf_base():
    """The base an arm64 module's BTF is split on: the raw BTF inside Debian's arm64 Image."""
    from harness.building.build import ensure_kernel
    from harness.building.module_btf import kernel_base_btf
    from harness.building.recipes import recipe_for_arch

    image = ensure_kernel(recipe_for_arch("arm64"), progress=lambda _: None).kernel
    assert image.read_bytes()[:4] != b"\x7fELF"
    base = kernel_base_btf(image)
    assert base is not None
    assert btf.find_struct(base, "file").size > 0


def test_module_with_btf_is_used_as_it_is(amd64_kernel):
    from harness.building import module_btf
    from harness.building.build import ensure_kernel
    from harness.building.recipes import recipe_for_arch

    stock = next(ensure_kernel(recipe_for_arch("x86_64"), progress=lambda _: None).moddir.rglob("binder_linux.ko"))
    assert module_btf.for_guest(stock, amd64_kernel) == stock
    assert not module_btf.made_on_host(str(stock))


def _stripped(ko: Path, dest: Path) -> Path:
    import subprocess

    subprocess.run(["objcopy", "--strip-debug", "--remove-section", ".BTF", str(ko), str(dest)], check=True)
    data = dest.read_bytes()
    assert btf.elf_section(data, ".BTF") is None and btf.elf_section(data, ".debug_info") is None
    return dest


def test_module_without_btf_or_dwarf_is_refused(control_ko, amd64_kernel, tmp_path):
    from harness.errors import ConfigError
    from harness.building import module_btf

    bare = _stripped(control_ko, tmp_path / "bare.ko")
    with pytest.raises(ConfigError) as exc:
        module_btf.for_guest(bare, amd64_kernel)
    line = str(exc.value)
    assert "\n" not in line and str(bare) in line and "no BTF and no DWARF" in line
    assert "CONFIG_DEBUG_INFO" in line and "pahole -J --btf_base" in line


def test_one_copy_passes_with_offsets_from_the_modules_dwarf(control_ko, tmp_path):
    """The headline: a module built against Debian's headers (no BTF) gets every one-copy verdict."""
    from tests.helpers import cli

    run = cli("run", "one_copy.*", "--binder-module", str(control_ko), out=tmp_path)
    cases = run.report["cases"]
    assert [(c["id"], c["outcome"]) for c in cases if c["outcome"] != "passed"] == [], \
        [(c["id"], c["reason"]) for c in cases if c["outcome"] != "passed"]
    assert run.status == 0, run.stderr
    assert len(cases) == 6 and run.report["summary"]["passed"] == 6 and run.report["summary"]["skipped"] == 0
    assert run.report["target"]["binder_module"] == str(control_ko)
    placed = [c for c in cases if "struct_offsets" in c["evidence"]]
    assert len(placed) == 5, [c["id"] for c in placed]
    for c in placed:
        o = c["evidence"]["struct_offsets"]["binder_buffer.user_data"]
        assert o["offset"] == 88
        assert o["from"] == "BTF /sys/kernel/btf/binder_linux (module BTF made on the host from its DWARF by pahole)"


def test_stripped_module_is_one_line_before_boot(control_ko, tmp_path):
    from tests.helpers import cli, one_error_line

    bare = _stripped(control_ko, tmp_path / "binder_linux.ko")
    run = cli("run", "one_copy.*", "--binder-module", str(bare), out=tmp_path / "run")
    line = one_error_line(run)
    assert line.startswith(f"binder-harness: --binder-module {bare}: has no BTF and no DWARF"), line
    assert not (tmp_path / "run" / "console.log").exists(), "QEMU was started"
