"""The one-copy evidence on the Rust binder driver: its kprobes placed by the mangled names the
target's /proc/kallsyms gives, and its traced copies grouped and located, on output captured from
the qemu-x86_64-7.3-rust build (tests/data/rust_binder/, tests/data/run-rust-x86_64/, both
2026-12-07). No guest: these are the pure parsers and `binder-harness judge` on a recorded run."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.evidence import kprobes
from harness.evidence import trace as tracing
from harness.evidence.drivers import C_DRIVER, RUST_DRIVER
from harness.evidence.probe import parse_probe_output
from harness.targets.binder_driver import match_rust_symbol, resolve_rust_symbols, rust_symbols_script
from tests.helpers import cli

DATA = Path(__file__).parent / "data"
RUN = DATA / "run-rust-x86_64"
COPY_INTO = kprobes.RUST_COPY_INTO.rust_path
USE_PAGE_SLOW = kprobes.RUST_USE_PAGE_SLOW.rust_path
COPY_INTO_SYMBOL = "_RNvMNtCsbFXD6CMuNu5_11rust_binder10allocationNtB2_10Allocation9copy_into"


# -- kallsyms ---------------------------------------------------------------------------------
def test_the_lookup_is_one_fixed_string_grep_over_kallsyms():
    script = rust_symbols_script((COPY_INTO, USE_PAGE_SLOW, COPY_INTO))
    assert script == "grep -F -e 9copy_into -e 13use_page_slow /proc/kallsyms 2>/dev/null; echo kallsyms=$?"


def test_the_target_answer_names_each_function_once():
    """What the guest answered to rust_symbols_script (captured with the build's KASLR off)."""
    answer = (DATA / "rust_binder" / "kallsyms-rust_symbols_script.txt").read_text()
    found = resolve_rust_symbols(answer, (COPY_INTO, USE_PAGE_SLOW))
    assert found[COPY_INTO].symbol == COPY_INTO_SYMBOL
    assert found[USE_PAGE_SLOW].symbol == ("_RNvMs3_NtCsbFXD6CMuNu5_11rust_binder10page_rangeNtB5_"
                                           "19ShrinkablePageRange13use_page_slow")
    assert found[COPY_INTO].as_evidence() == {"path": "rust_binder::allocation::Allocation::copy_into",
                                              "symbol": COPY_INTO_SYMBOL, "found": "/proc/kallsyms"}


def test_neighbours_of_the_name_are_not_taken_for_it():
    """The build's symbols of allocation.rs and page_range.rs (System.map, kallsyms' format):
    generic instances (Allocation::write<u64> ends `writeyEB5_`), AllocationView's methods and
    closures are not Allocation::copy_into or Allocation::write."""
    lines = (DATA / "rust_binder" / "system-map-allocation-page_range.txt").read_text()
    assert match_rust_symbol(lines, COPY_INTO) == [COPY_INTO_SYMBOL]
    assert match_rust_symbol(lines, ("11rust_binder", "10allocation", "10Allocation", "5write")) == []
    assert match_rust_symbol(lines, ("11rust_binder", "10allocation", "14AllocationView", "9copy_into")) == []
    # a piece must start at a length prefix: "9copy_into" is not the tail of "19copy_into"
    assert match_rust_symbol("ffffffff814ba160 t _RNvMNtCsX_11rust_binder10allocationNtB2_10Allocation19copy_into",
                             COPY_INTO) == []


def test_a_function_that_is_not_there_says_why():
    found = resolve_rust_symbols("kallsyms=1\n", (COPY_INTO,))
    assert found[COPY_INTO].symbol is None
    assert found[COPY_INTO].why == "no such function in /proc/kallsyms (inlined, or another build)"
    assert resolve_rust_symbols("", (COPY_INTO,))[COPY_INTO].why == "/proc/kallsyms was not read"


def test_a_rust_kprobe_is_armed_only_once_looked_up():
    with pytest.raises(ValueError, match="copy_user_to_buffer are on Rust functions not looked up yet"):
        tracing.arm_script("/sys/kernel/tracing", (kprobes.RUST_COPY_INTO,), "one_copy.sync_sizes")
    placed = kprobes.RUST_COPY_INTO.with_symbol(COPY_INTO_SYMBOL)
    assert placed.definition() == (
        f"p:binder_harness/copy_user_to_buffer {COPY_INTO_SYMBOL} offset=$arg3:u64 bytes=$arg4:u64 "
        "buffer_offset=+136($arg1):u64 buffer_size=+144($arg1):u64 ptr=+152($arg1):x64 debug_id=+160($arg1):u64")
    script = tracing.arm_script("/sys/kernel/tracing", (placed,), "one_copy.sync_sizes",
                                binder_events=RUST_DRIVER.trace_events)
    assert "events/rust_binder/binder_transaction/enable" in script
    assert "events/binder/" not in script


# -- what each driver arms ----------------------------------------------------------------------
def test_the_c_driver_arms_what_the_case_declared():
    from cases.one_copy import DELIVERY_PROBES, PAGE_EVENTS
    assert C_DRIVER.kprobes(DELIVERY_PROBES) == (DELIVERY_PROBES, ())
    assert C_DRIVER.events(PAGE_EVENTS) == (PAGE_EVENTS, (), ())
    assert C_DRIVER.trace_events == kprobes.BINDER_EVENTS


def test_the_rust_driver_arms_its_own_functions_for_the_same_events():
    from cases.one_copy import DELIVERY_PROBES, PAGE_EVENTS
    probes, missing = RUST_DRIVER.kprobes(DELIVERY_PROBES + (kprobes.COPY_TO_BUFFER,))
    assert [(k.name, k.function) for k in probes] == [
        ("copy_user_to_buffer", "rust_binder::allocation::Allocation::copy_into"),
        ("usercopy", "rust_helper_copy_to_user"), ("usercopy_raw", "_copy_to_user"),
        ("copy_to_buffer", "kernel::page::Page::write_raw")]
    assert missing == ()
    events, instead, none = RUST_DRIVER.events(PAGE_EVENTS)
    assert events == () and none == ("binder/binder_update_page_range",)
    assert [k.name for k in instead] == ["use_page_slow", "lru_del"]


def test_an_optional_kprobe_the_kernel_lacks_is_reported_not_fatal():
    from cases.one_copy import LOAD_MSG
    script = tracing.arm_script("/t", (LOAD_MSG,), "one_copy.vs_pipe")
    assert "|| echo kprobe-missing=load_msg" in script
    assert tracing.missing_kprobes("marker-pid=12\nkprobe-missing=load_msg\nkprobe-missing=usercopy_big\n") == \
        ["load_msg", "usercopy_big"]


# -- grouping and locating the traced copies ----------------------------------------------------
def _case(case_id: str):
    d = RUN / "cases" / case_id
    return tracing.parse_ftrace((d / "trace.txt").read_text()), parse_probe_output((d / "probe-1.jsonl").read_text())


def test_rust_copies_belong_to_the_binder_transaction_that_follows_them():
    trace, out = _case("one_copy.sync_sizes")
    client = out.one("roles")["client_pid"]
    calls = [t for t in tracing.binder_transactions(trace, copies_first=True) if t.pid == client and not t.reply]
    rx = out.events("rx", role="server")
    assert [t.copied_bytes for t in calls] == [r["data_size"] for r in rx] == [8, 4096, 10000, 65536, 1040384]
    assert [len(t.copies) for t in calls] == [1] * 5
    # the destination: the receiver's mmap base + Allocation.offset is the buffer it got ...
    assert [{r["map_start"] + a for a in t.copy_targets} for t, r in zip(calls, rx)] == [{r["buffer"]} for r in rx]
    # ... and the Allocation's own ptr and debug_id say the same
    assert [{c.int("ptr") for c in t.copies} for t in calls] == [{r["buffer"]} for r in rx]
    assert all({c.int("debug_id") for c in t.copies} == {t.debug_id} for t in calls)
    assert trace.bad_lines == []


def test_grouped_as_the_c_driver_would_the_rust_copies_go_to_the_wrong_transaction():
    """Why copies_first exists: the Rust driver traces binder_transaction after the copy."""
    trace, out = _case("one_copy.sync_sizes")
    client = out.one("roles")["client_pid"]
    calls = [t for t in tracing.binder_transactions(trace) if t.pid == client and not t.reply]
    assert [t.copied_bytes for t in calls] == [0, 0, 0, 0, 0]


def test_rust_pages_fresh_then_from_the_lru():
    trace, out = _case("one_copy.lazy_pages")
    client = out.one("roles")["client_pid"]
    calls = [t for t in tracing.binder_transactions(trace, copies_first=True) if t.pid == client and not t.reply]
    assert [(t.pages_allocated, t.pages_from_lru) for t in calls] == [(3, 0), (0, 3)]


def test_a_list_lru_del_outside_the_rust_driver_is_not_its_page():
    trace, out = _case("one_copy.lazy_pages")
    for ev in trace.events:
        if ev.name == "lru_del":
            object.__setattr__(ev, "body", ev.body.replace(kprobes.RUST_CRATE, "9some_fs"))
    client = out.one("roles")["client_pid"]
    calls = [t for t in tracing.binder_transactions(trace, copies_first=True) if t.pid == client and not t.reply]
    assert [t.pages_from_lru for t in calls] == [0, 0]


def test_rust_scatter_gather_bytes_user_and_kernel():
    trace, out = _case("objects.scatter_gather")
    client = out.one("roles")["client_pid"]
    (t,) = [t for t in tracing.binder_transactions(trace, copies_first=True) if t.pid == client and not t.reply]
    assert [c.int("bytes") for c in t.copies] == [16, 8, 16, 40, 100]  # data between objects, then sg buffers
    assert [c.int("bytes") for c in t.kernel_copies] == [8, 40, 8, 40, 8]  # offset, object, offset, object, fixup
    assert t.copied_bytes + t.kernel_copied_bytes == 104 + 16 + 164  # data + offsets + sg buffers, once


# -- the verdict, replayed ------------------------------------------------------------------------
def _copy_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    return run


def test_judge_replays_the_rust_run_as_it_passed(tmp_path):
    run = _copy_run(tmp_path)
    judged = cli("judge", str(run))
    assert judged.status == 0, judged.stderr
    report = json.loads((run / "report.json").read_text())
    assert [(c["id"], c["outcome"]) for c in report["cases"]] == [
        ("one_copy.sync_sizes", "passed"), ("one_copy.lazy_pages", "passed"), ("objects.scatter_gather", "passed")]


def test_a_payload_copied_twice_on_rust_measures_two_copies_per_byte(tmp_path):
    """The copy count comes from the trace: each Allocation::copy_into line doubled (what a Rust
    driver that copied the payload twice would record) fails the case with 2.0 per byte."""
    run = _copy_run(tmp_path)
    path = run / "cases" / "one_copy.sync_sizes" / "trace.txt"
    lines = []
    for line in path.read_text().splitlines():
        lines.append(line)
        if "copy_user_to_buffer:" in line and " bytes=0 " not in line:
            lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    judged = cli("judge", str(run))
    assert judged.status == 1
    case = json.loads((run / "report.json").read_text())["cases"][0]
    assert case["outcome"] == "failed"
    assert ("kernel copies per payload byte (traced Allocation::copy_into): expected 1.0, measured 2.0"
            in case["reason"]), case["reason"]


def test_a_copy_elsewhere_in_the_receivers_mapping_fails_the_destination(tmp_path):
    run = _copy_run(tmp_path)
    path = run / "cases" / "one_copy.sync_sizes" / "trace.txt"
    path.write_text(path.read_text().replace("buffer_offset=0 buffer_size=4096", "buffer_offset=4096 buffer_size=4096"))
    judged = cli("judge", str(run))
    assert judged.status == 1
    case = json.loads((run / "report.json").read_text())["cases"][0]
    failed = [c for c in case["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == [
        "size 4096: copies land at the receiver's buffer (map_start + traced buffer_offset)"]
    (buffer,) = failed[0]["expected"]
    assert failed[0]["measured"] == [f"{int(buffer, 16) + 4096:#x}"]


def test_the_seeded_rust_double_copy_kernel_measures_two_copies_per_byte(tmp_path):
    """A recorded run of one_copy.sync_sizes on the seeded Rust kernel rust_double_copy (thread.rs
    Thread::copy_transaction_data calls alloc.copy_into twice for the data after the last object;
    built 2026-12-07 as qemu-x86_64-7.3-rust-seed-rust_double_copy-bb8a2c889b674622): two traced
    Allocation::copy_into per transaction, both into the receiver's buffer, twice the bytes."""
    run = tmp_path / "run"
    shutil.copytree(DATA / "run-rust-double_copy-x86_64", run)
    trace, out = tracing.parse_ftrace((run / "cases/one_copy.sync_sizes/trace.txt").read_text()), \
        parse_probe_output((run / "cases/one_copy.sync_sizes/probe-1.jsonl").read_text())
    client = out.one("roles")["client_pid"]
    calls = [t for t in tracing.binder_transactions(trace, copies_first=True) if t.pid == client and not t.reply]
    assert [(len(t.copies), t.copied_bytes) for t in calls] == [
        (2, 16), (2, 8192), (2, 20000), (2, 131072), (2, 2080768)]
    judged = cli("judge", str(run))
    assert judged.status == 1
    case = json.loads((run / "report.json").read_text())["cases"][0]
    failed = {c["name"]: c["measured"] for c in case["checks"] if not c["passed"]}
    assert failed == {**{f"size {n}: kernel copies per payload byte (traced Allocation::copy_into)": 2.0
                         for n in (8, 4096, 10000, 65536, 1040384)},
                      **{f"size {n}: user->buffer bytes": 2 * n for n in (8, 4096, 10000, 65536, 1040384)}}
