"""limits: the binder buffer area's limits (DESIGN §4), asserted exactly.

Kernel references (drivers/android, Linux 6.1): binder_mmap and
binder_alloc_mmap_handler (clamp, read-only, one mapping), binder_alloc_new_buf_locked
(ENOSPC, async half-space, spam detection via debug_low_async_space_locked),
binder_vm_fault (SIGBUS), binder_alloc_free_page / binder_shrink_scan (shrinker).
"""
from __future__ import annotations

from cases._expect import (BR_DEAD_REPLY, BR_FAILED_REPLY, PAGE_FUNCTIONS, call_outcome, errno_name, note_dmesg,
                           probe_completed, result, rust_alloc_failed, rust_copy_failed, rust_line, rust_txn_failed,
                           txn_error, txn_failed)
from harness.evidence.drivers import NOT_COUNTED
from harness.judging.catalog import case
from harness.judging.context import CaseContext
from harness.judging.verdicts import ByKernel, Line

MiB = 1024 * 1024


# -- the lines these cases provoke (binder_alloc_debug: 10 per 5 s per call site; binder_debug:
# 10 per 5 s for all its callers together) --------------------------------------------------------
def no_address_space(size: int, count: int | None, allocated: str) -> tuple[Line, ...]:
    """binder_alloc_new_buf_locked's ENOSPC: "P: binder_alloc_buf size SIZE failed, no address space"
    and "allocated: ..." with the area's use (`allocated`, a regex), two call sites of
    binder_alloc_debug. binder_transaction then logs no_space_left()."""
    ref = "binder_alloc_new_buf_locked (binder_alloc_debug)"
    return (Line(rf"\d+: binder_alloc_buf size {size} failed, no address space", count, ref),
            Line(rf"allocated: {allocated}", count, ref))


def no_space_left(count: int | None) -> Line:
    return txn_error("cannot allocate buffer: no space left", count)


# An empty 4 MiB area, and a 1 MiB one holding 16 buffers of 64 KiB
EMPTY_4M = r"0 \(num: 0 largest: 0\), free: 4194304 \(num: 1 largest: 4194304\)"
FULL_1M = r"1048576 \(num: 16 largest: 65536\), free: 0 \(num: 0 largest: 0\)"
CLAMP_LINES = (*no_address_space(4 * MiB + 8, 1, EMPTY_4M), no_space_left(1), txn_failed("call", BR_FAILED_REPLY, -28, 1),
               rust_alloc_failed(4 * MiB + 8, False, 1), rust_copy_failed(28, 1), rust_txn_failed("call", 28, 1))
# binder_mmap's pr_err for PROT_WRITE; binder_alloc_mmap_handler's binder_alloc_debug for the
# second mmap on the fd, before and after munmap
MMAP_FLAGS_LINES = (
    Line(r"binder_mmap: \d+ [0-9a-f]+-[0-9a-f]+ bad vm_flags failed -1", 1, "binder_mmap (pr_err)"),
    Line(r"binder_alloc_mmap_handler: \d+ [0-9a-f]+-[0-9a-f]+ already mapped failed -16", 2,
         "binder_alloc_mmap_handler (binder_alloc_debug)"))


def _spam(counted: range, size: int) -> tuple[Line, ...]:
    return tuple(Line(rf"\d+: pid \d+ spamming oneway\? {n} buffers allocated for a total size of {n * size}", 1,
                      "debug_low_async_space_locked (binder_alloc_debug)") for n in counted)


def spam_lines(size: int) -> ByKernel:
    """debug_low_async_space_locked's binder_alloc_debug, once per oneway of `size` bytes from the
    26th to the 32nd into a 4 MiB area nobody frees (below a tenth of it free for async, the sender
    holding more than a quarter): "P: pid SENDER spamming oneway? N buffers allocated for a total
    size of N * size". 6.1 counts the new buffer in N (26 to 32); 6.12 (measured, 6.12.117) calls it
    before the new buffer is on the allocated tree (25 to 31)."""
    return ByKernel({(6, 1): _spam(range(26, 33), size), (6, 12): _spam(range(25, 32), size)})


def rust_flood_lines(size: int, refused: int, queued: int) -> tuple[Line, ...]:
    """The Rust driver's lines for `refused` oneways of `size` bytes that found no oneway space
    (no rate limit: each counted), and the `queued` ones still undelivered when the receiver exits
    (transaction.rs Transaction::cancel, binder_debug! DeadTransaction)."""
    return (rust_alloc_failed(size, True, refused), rust_copy_failed(28, refused),
            rust_txn_failed("async", 28, refused),
            rust_line(r"\d+: undelivered transaction \d+, process died", queued,
                      "transaction.rs Transaction::cancel (binder_debug! DeadTransaction)"))


# 40 oneways of 64 KiB to a 4 MiB area that nobody frees: 26 to 32 are spam, 33 to 40 fail
# (16 binder_debug lines: more than the rate limit lets through). On the Rust driver the 8 refused
# are counted, and 31 of the 32 accepted are still queued when the receiver exits (it reads one).
FLOOD_LINES: tuple[Line | ByKernel, ...] = (spam_lines(65536), no_space_left(None),
               txn_failed("async", BR_FAILED_REPLY, -28, None), *rust_flood_lines(65536, 8, 31))


@case("limits.mmap_clamp_4m", expected_dmesg=CLAMP_LINES)
def mmap_clamp_4m(ctx: CaseContext) -> None:
    """An 8 MiB mapping gives a 4 MiB area: 4 MiB and 4 MiB-4 fit, 4 MiB+8 gets ENOSPC, beyond 4 MiB is SIGBUS."""
    sizes = (4 * MiB, 4 * MiB - 4, 4 * MiB + 8)
    out = ctx.run_probe("clamp", sizes=",".join(map(str, sizes)), map=8 * MiB,
                        touch=f"0,{4 * MiB - 1},{4 * MiB + 4096},{8 * MiB - 1}")
    probe_completed(ctx, out)
    server_map = out.one("map", role="server") or {}
    ctx.evidence["requested_map"] = server_map.get("size")
    ctx.evidence["vma_size"] = server_map.get("vma_size")
    tx = {t["seq"]: t for t in out.events("tx")}
    ctx.evidence["calls"] = {str(size): call_outcome(tx.get(i)) for i, size in enumerate(sizes)}
    ctx.check("4 MiB transaction into an 8 MiB mapping", call_outcome(tx.get(0)), "ok",
              "binder_alloc_mmap_handler (buffer_size = min(vma size, SZ_4M))")
    ctx.check("4 MiB - 4 transaction", call_outcome(tx.get(1)), "ok", "binder_alloc_new_buf_locked")
    ctx.check("4 MiB + 8 transaction", call_outcome(tx.get(2)), "BR_FAILED_REPLY -28",
              "binder_alloc_new_buf_locked (no address space -> -ENOSPC)")
    touches = {t["offset"]: t.get("signal") for t in out.events("touch")}
    ctx.evidence["touches"] = {str(k): v for k, v in touches.items()}
    ctx.check("read at 4 MiB - 1 (filled by the 4 MiB buffer)", touches.get(4 * MiB - 1, "missing"), None,
              "binder_vm_fault")
    ctx.check("read beyond the 4 MiB area (4 MiB + 4 KiB)", touches.get(4 * MiB + 4096, "missing"), "SIGBUS",
              "binder_vm_fault (VM_FAULT_SIGBUS)")
    ctx.check("read at the end of the 8 MiB mapping", touches.get(8 * MiB - 1, "missing"), "SIGBUS",
              "binder_vm_fault (VM_FAULT_SIGBUS)")
    note_dmesg(ctx, f"binder_alloc_buf size {4 * MiB + 8} failed, no address space", "binder_alloc_new_buf_locked",
               rf"\d+: binder_alloc_buf size {4 * MiB + 8} failed, no address space")


@case("limits.mmap_readonly", expected_dmesg=MMAP_FLAGS_LINES)
def mmap_readonly(ctx: CaseContext) -> None:
    """mmap with PROT_WRITE is refused (EPERM) and mprotect(PROT_WRITE) later fails (EACCES)."""
    out = ctx.run_probe("mmap_flags")
    probe_completed(ctx, out)
    rw = out.one("mmap", step="rw") or {}
    ro = out.one("mmap", step="ro") or {}
    mprotect = out.one("mprotect") or {}
    ctx.check("mmap(PROT_READ|PROT_WRITE)", errno_name(rw), "EPERM", "binder_mmap (FORBIDDEN_MMAP_FLAGS)")
    ctx.check("mmap(PROT_READ)", errno_name(ro), "0", "binder_mmap")
    ctx.check("the mapping as /proc/self/maps shows it", " r--p " in ro.get("maps_line", ""), True,
              "binder_mmap (VM_MAYWRITE cleared)")
    ctx.check("mprotect(PROT_READ|PROT_WRITE)", errno_name(mprotect), "EACCES",
              "binder_mmap (clears VM_MAYWRITE); mprotect_fixup (refuses)")
    note_dmesg(ctx, "bad vm_flags", "binder_mmap",
               r"binder_mmap: \d+ [0-9a-f]+-[0-9a-f]+ bad vm_flags failed -1")


@case("limits.mmap_twice", expected_dmesg=MMAP_FLAGS_LINES)
def mmap_twice(ctx: CaseContext) -> None:
    """A second mmap on the same fd is EBUSY, even after munmap; a new fd maps again."""
    out = ctx.run_probe("mmap_flags")
    probe_completed(ctx, out)
    steps = {m["step"]: errno_name(m) for m in out.events("mmap")}
    ctx.evidence["mmap_errnos"] = steps
    ctx.check("second mmap on the same fd", steps.get("second"), "EBUSY",
              "binder_alloc_mmap_handler (already mapped)")
    ctx.check("munmap", errno_name(out.one("munmap") or {}), "0", "__vm_munmap")
    ctx.check("mmap again after munmap, same fd", steps.get("after_munmap"), "EBUSY",
              "binder_alloc_mmap_handler (alloc->buffer stays set)")
    ctx.check("mmap on a new fd", steps.get("new_fd"), "0", "binder_open + binder_alloc_mmap_handler")


def _one_based(seq) -> int | None:
    """The probe counts calls from 0 and says -1 for none; people count from 1."""
    return seq + 1 if isinstance(seq, int) and seq >= 0 else None


def _flood_summary(ctx: CaseContext, out) -> dict:
    probe_completed(ctx, out)
    summary = out.one("summary") or {}
    ctx.evidence["summary"] = {k: summary.get(k) for k in
                               ("count", "ok_count", "first_fail_seq", "spam_suspect_count", "first_spam_seq")}
    return summary


@case("limits.async_half", expected_dmesg=FLOOD_LINES)
def async_half(ctx: CaseContext) -> None:
    """Oneway space is half the area: 32 oneway 64 KiB calls fit in 4 MiB, the 33rd gets ENOSPC."""
    out = ctx.run_probe("async_flood", count=40, size=65536, map=4 * MiB, free=0)
    summary = _flood_summary(ctx, out)
    ctx.check("oneway 64 KiB calls accepted by a non-freeing receiver", summary.get("ok_count"), 32,
              "binder_alloc_mmap_handler (free_async_space = buffer_size / 2)")
    ctx.check("first refused call (1-based)", _one_based(summary.get("first_fail_seq")), 33,
              "binder_alloc_new_buf_locked (no async space left)")
    ctx.check("first refused call's error", call_outcome(out.one("tx", seq=32)), "BR_FAILED_REPLY -28",
              "binder_alloc_new_buf_locked (-ENOSPC)")


# the calls past the 16th that fit: more failures than the rate limits let through
@case("limits.free_reuse", expected_dmesg=(
        *no_address_space(65536, None, FULL_1M), no_space_left(None), txn_failed("call", BR_FAILED_REPLY, -28, None),
        # the Rust driver: each of the 24 calls past the 16th
        rust_line("ENOSPC from range_alloc.reserve_new - size: 65536", 24,
                  "range_alloc/tree.rs TreeRangeAllocator::reserve_new (pr_warn!)"),
        rust_alloc_failed(65536, False, 24), rust_copy_failed(28, 24), rust_txn_failed("call", 28, 24)), timeout=120)
def free_reuse(ctx: CaseContext) -> None:
    """1000 freed 64 KiB calls go through a 1 MiB area; without BC_FREE_BUFFER exactly 16 fit."""
    freed = ctx.run_probe("free_reuse", count=1000, size=65536, map=MiB, free=1)
    kept = ctx.run_probe("free_reuse", count=40, size=65536, map=MiB, free=0)
    s_freed = _flood_summary(ctx, freed)
    s_kept = (kept.one("summary") or {})
    probe_completed(ctx, kept)
    ctx.evidence["freed"] = {"count": 1000, "ok": s_freed.get("ok_count")}
    ctx.evidence["not_freed"] = {"count": 40, "ok": s_kept.get("ok_count"), "first_fail_seq": s_kept.get("first_fail_seq")}
    ctx.check("1000 calls of 64 KiB with BC_FREE_BUFFER", s_freed.get("ok_count"), 1000,
              "binder_free_buf (BC_FREE_BUFFER returns the space)")
    ctx.check("64 KiB calls that fit a 1 MiB area without freeing", s_kept.get("ok_count"), 16,
              "binder_alloc_new_buf_locked")
    ctx.check("the 17th call's error", call_outcome(kept.one("tx", seq=16)), "BR_FAILED_REPLY -28",
              "binder_alloc_new_buf_locked (-ENOSPC)")


# How often a sender filling the oneway space hears BR_ONEWAY_SPAM_SUSPECT (calls 26 to 32 are
# suspect). binder.c reports it once per episode (alloc->oneway_spam_detected stays set until a
# oneway finds enough space again); the Rust driver on every suspect call. The uapi says only
# "detects that a process is sending too many oneway transactions": a difference to report.
SPAM_REPORTS = {
    "c": (1, "binder_transaction (oneway_spam_suspect reported once: alloc->oneway_spam_detected)"),
    "rust": (7, "range_alloc/array.rs ArrayRangeAllocator::reserve_new (oneway_spam_detected for each suspect "
                "call, no episode flag) -> thread.rs Thread::transaction_inner (BR_ONEWAY_SPAM_SUSPECT)"),
}


@case("limits.oneway_spam", expected_dmesg=FLOOD_LINES)
def oneway_spam(ctx: CaseContext) -> None:
    """With spam detection on, the sender gets BR_ONEWAY_SPAM_SUSPECT first on call 26: once on
    binder.c, on each of calls 26 to 32 on the Rust driver (SPAM_REPORTS)."""
    out = ctx.run_probe("spam", count=40, size=65536, map=4 * MiB)
    summary = _flood_summary(ctx, out)
    enable = out.one("spam_detection") or {}
    ctx.check("BINDER_ENABLE_ONEWAY_SPAM_DETECTION", errno_name(enable), "0", "binder_ioctl")
    count, ref = ctx.by_driver(SPAM_REPORTS)
    ctx.check("BR_ONEWAY_SPAM_SUSPECT count", summary.get("spam_suspect_count"), count, ref)
    ctx.check("call that got BR_ONEWAY_SPAM_SUSPECT (1-based)", _one_based(summary.get("first_spam_seq")), 26,
              "debug_low_async_space_locked (> 50 buffers or > buffer_size/4 bytes, below buffer_size/10 free)")
    note_dmesg(ctx, "spamming oneway?", "debug_low_async_space_locked",
               r"\d+: pid \d+ spamming oneway\? 26 buffers allocated for a total size of 1703936")


# A call to a process that unmapped its binder area. Both drivers fail it with -ESRCH; binder.c
# turns that into BR_DEAD_REPLY ("vma cleared, target dead or dying"), the Rust driver's error
# keeps BR_FAILED_REPLY. The uapi's BR_DEAD_REPLY is for a target "no longer with us", which this
# one (alive, unmapped) is not quite: a difference to report, neither is wrong by the uapi.
MUNMAPPED_CALL = {
    "c": ("BR_DEAD_REPLY -3", "binder_alloc_new_buf_locked (no vma -> -ESRCH) -> binder_transaction (BR_DEAD_REPLY)"),
    "rust": ("BR_FAILED_REPLY -3", "page_range.rs ShrinkablePageRange::use_page_slow (no vma: ESRCH) -> "
                                   "process.rs Process::buffer_alloc -> thread.rs Thread::copy_transaction_data"),
}


@case("limits.munmap_dead", expected_dmesg=(
        Line(r"\d+: binder_alloc_buf, no vma", 3, "binder_alloc_new_buf_locked (binder_alloc_debug)"),
        txn_error("cannot allocate buffer: vma cleared, target dead or dying", 3),
        txn_failed("call", BR_DEAD_REPLY, -3, 2),
        txn_failed("async", BR_DEAD_REPLY, -3, 1),
        rust_line(r"Error in use_page_slow: Error\(3\)", 3, "page_range.rs ShrinkablePageRange::use_range (pr_warn!)"),
        rust_line(r"use_range failure Error\(3\)", 3, "process.rs Process::buffer_alloc (pr_warn!)"),
        rust_alloc_failed(64, False, 2), rust_alloc_failed(64, True, 1), rust_copy_failed(3, 3),
        rust_txn_failed("call", 3, 2), rust_txn_failed("async", 3, 1)))
def munmap_dead(ctx: CaseContext) -> None:
    """After the receiver munmaps its area, calls to it fail with -ESRCH: BR_DEAD_REPLY from binder.c,
    BR_FAILED_REPLY from the Rust driver (MUNMAPPED_CALL)."""
    out = ctx.run_probe("munmap_dead")
    probe_completed(ctx, out)
    ctx.check("receiver munmap", errno_name(out.one("munmap") or {}), "0", "__vm_munmap")
    outcomes = [call_outcome(t) for t in out.events("tx")]
    ctx.evidence["calls"] = outcomes
    expected, ref = ctx.by_driver(MUNMAPPED_CALL)
    ctx.check("calls after munmap (call, oneway, call)", outcomes, [expected] * 3, ref)
    note_dmesg(ctx, "binder_alloc_buf, no vma", "binder_alloc_new_buf_locked",
               r"\d+: binder_alloc_buf, no vma")


@case("limits.shrinker")
def shrinker(ctx: CaseContext) -> None:
    """drop_caches moves freed binder pages from the LRU to free (debugfs pages: active:lru:free);
    where binder's stats count no pages (the Rust driver), the kernel's own count of the binder
    shrinker's objects (debugfs shrinker/android-binder-ID/count, CONFIG_SHRINKER_DEBUG) says it."""
    if not ctx.driver.counts_pages:
        _shrinker_count(ctx)
        return
    out = ctx.run_probe("shrinker", count=16, size=65536, map=4 * MiB, self=1)
    probe_completed(ctx, out)
    before = out.one("pages", when="before") or {}
    after = out.one("pages", when="after") or {}
    ctx.evidence["pages_before"] = before.get("line")
    ctx.evidence["pages_after"] = after.get("line")
    ctx.check("pages on the LRU after 16 freed 64 KiB buffers", before.get("lru"), 16,
              ctx.by_kernel(PAGE_FUNCTIONS).to_lru)
    ctx.check("echo 2 > /proc/sys/vm/drop_caches", errno_name(out.one("drop_caches") or {}), "0", "drop_caches_sysctl_handler")
    ctx.check("pages on the LRU after drop_caches", after.get("lru"), 0, "binder_shrink_scan -> binder_alloc_free_page")
    ctx.check("free pages grew by the LRU pages", (after.get("free", 0) - before.get("free", 0)), 16,
              "binder_alloc_free_page")


# The binder shrinker's name (binder_alloc_shrinker_init / rust_binder_main.rs: "android-binder"),
# its count the pages on binder's LRU (binder_shrink_count / page_range.rs rust_shrink_count)
BINDER_SHRINKER = "android-binder"


def _shrinker_count(ctx: CaseContext) -> None:
    """limits.shrinker where binder's stats print no pages: the pages on the binder shrinker's LRU,
    as the kernel counts them, before and after drop_caches."""
    if not ctx.debugfs:
        ctx.check_that("pages on the LRU, in binder's stats or the shrinker's debugfs count", False,
                       f"{NOT_COUNTED}: process.rs Process::debug_print_stats prints no pages, and debugfs is not "
                       "mounted", "a count", "page_range.rs rust_shrink_count")
        return
    out = ctx.run_probe("shrinker", count=16, size=65536, map=4 * MiB, self=1,
                        shrinker=f"{ctx.debugfs}/shrinker/{BINDER_SHRINKER}")
    probe_completed(ctx, out)
    counts = {w: (out.one("pages", when=w) or {}).get("shrinker_count") for w in ("start", "before", "after")}
    ctx.evidence["shrinker_count"] = counts
    if not ctx.check_that("the binder shrinker's debugfs count is readable", all(
            isinstance(n, int) and n >= 0 for n in counts.values()), counts, "a count at each point",
            "page_range.rs rust_shrink_count (read by debugfs shrinker/NAME/count: CONFIG_SHRINKER_DEBUG)"):
        return
    # the shrinker counts every binder process's LRU pages: the server's 16 (each 64 KiB buffer
    # reuses the pages the freed one left) and the one page of the client's freed replies
    ctx.check("pages on the LRU after 16 freed 64 KiB buffers and their replies (the shrinker's count, all "
              "procs, from the start)", counts["before"] - counts["start"], 16 + 1,
              "process.rs Process::buffer_raw_free -> page_range.rs ShrinkablePageRange::stop_using_range "
              "(list_lru_add of each page)")
    ctx.check("echo 2 > /proc/sys/vm/drop_caches", errno_name(out.one("drop_caches") or {}), "0", "drop_caches_sysctl_handler")
    ctx.check("pages on the LRU after drop_caches (the shrinker's count)", counts["after"], 0,
              "page_range.rs rust_shrink_scan -> page_range.rs rust_shrink_free_page")


ASYNC_EXACT_MAP = 16384
# Spam lines from call 820 on, far past the rate limit; 4 refused oneways (the 1025th and a 0-byte
# one, for each size): 8 binder_debug lines
ASYNC_EXACT_LINES = (
    Line(r"\d+: pid \d+ spamming oneway\? \d+ buffers allocated for a total size of \d+", None,
         "debug_low_async_space_locked (binder_alloc_debug)"),
    no_space_left(4), txn_failed("async", BR_FAILED_REPLY, -28, 4),
    # the Rust driver: the 4 refused oneways (each 8 bytes: a 0-byte one is padded to 8), and the
    # last size's held buffers the receiver has not yet freed as it exits (their number varies)
    rust_alloc_failed(8, True, 4), rust_copy_failed(28, 4), rust_txn_failed("async", 28, 4),
    rust_line(r"\d+: undelivered transaction \d+, process died", None,
              "transaction.rs Transaction::cancel (binder_debug! DeadTransaction)"))


def _async_charge(size: int) -> int:
    """What one oneway buffer of `size` data bytes (no offsets, no sg) takes from async space on 6.1:
    binder_alloc_new_buf_locked charges size = max(ALIGN(data, 8) + ALIGN(offsets, 8) + ALIGN(extra, 8),
    sizeof(void *)). No sizeof(struct binder_buffer) is added on 6.1.192 (later kernels add it)."""
    return max((size + 7) & ~7, 8)


@case("limits.async_exact", expected_dmesg=ASYNC_EXACT_LINES, timeout=120)
def async_exact(ctx: CaseContext) -> None:
    """Async space, byte-exact: a 16 KiB area has 8192 bytes of it; 0- and 8-byte oneways each
    charge 8, so 1024 fit and the 1025th gets ENOSPC; a 0-byte oneway then fails too; a sync
    call still works; freeing every buffer restores exactly 8192 (debugfs stats "free async space")."""
    sizes = (0, 8)
    out = ctx.run_probe("async_exact", map=ASYNC_EXACT_MAP, sizes=",".join(map(str, sizes)), max=4096,
                        space_key=ctx.driver.async_space, timeout=110)
    probe_completed(ctx, out)
    half = ASYNC_EXACT_MAP // 2
    space = {(r.get("when"), r.get("size")): r.get("free_async_space") for r in out.events("async_space")}
    fills = {r.get("size"): r for r in out.events("async_fill")}
    ctx.evidence["free_async_space"] = {f"{w} ({s} B)": v for (w, s), v in space.items()}
    ctx.evidence["fitted"] = {str(s): (fills.get(s) or {}).get("ok_count") for s in sizes}
    for size in sizes:
        fill = fills.get(size) or {}
        label = f"{size}-byte oneway"
        ctx.check(f"{label}: free async space before", space.get(("before", size)), half,
                  "binder_alloc_mmap_handler (free_async_space = buffer_size / 2)")
        ctx.check(f"{label}s pending before ENOSPC", fill.get("ok_count"), half // _async_charge(size),
                  "binder_alloc_new_buf_locked (free_async_space < size -> -ENOSPC; size = max(ALIGN(data, 8), 8))")
        ctx.check(f"{label}: the refused call", call_outcome(fill) if fill.get("failed") else "none refused",
                  "BR_FAILED_REPLY -28", "binder_alloc_new_buf_locked (-ENOSPC)")
        ctx.check(f"{label}: free async space when full", space.get(("full", size)), 0,
                  "binder_alloc_new_buf_locked (free_async_space -= size)")
        ctx.check(f"{label}: a 0-byte oneway once async space is used up",
                  call_outcome(result(out, "async.zero_when_full", size=size)), "BR_FAILED_REPLY -28",
                  "binder_alloc_new_buf_locked (0-size buffers padded to sizeof(void *))")
        ctx.check(f"{label}: a sync call once async space is used up",
                  call_outcome(result(out, "async.sync_when_full", size=size)), "ok",
                  "binder_alloc_new_buf_locked (only is_async buffers check free_async_space)")
        ctx.check(f"{label}: free async space after every buffer is freed", space.get(("after_free", size)), half,
                  "binder_free_buf_locked (free_async_space += buffer_size)")
