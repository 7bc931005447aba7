"""compat: a 32-bit probe (i386 on x86_64, armhf on arm64) through compat_ptr_ioctl.

Protocol 8 keeps 64-bit binder_size_t/binder_uintptr_t for 32-bit processes, so the
same structures and the same driver paths apply (binder_fops.compat_ioctl =
compat_ptr_ioctl -> binder_ioctl).
"""
from __future__ import annotations

from cases._expect import (BR_FAILED_REPLY, call_outcome, errno_name, probe_completed, result, rust_alloc_failed,
                           rust_copy_failed, rust_line, rust_txn_failed, txn_failed)
from cases._one_copy_checks import judge_delivery
from cases.limits import EMPTY_4M, MMAP_FLAGS_LINES, no_address_space, no_space_left, spam_lines
from cases.one_copy import DELIVERY_PROBES
from harness.judging.catalog import case
from harness.judging.context import CaseContext

SIZES = (8, 4096, 10000, 65536)
MiB = 1024 * 1024


@case("compat.version", compat=True)
def version(ctx: CaseContext) -> None:
    """A 32-bit process sees protocol version 8."""
    out = ctx.run_probe("version")
    probe_completed(ctx, out)
    r = result(out, "version")
    ctx.check("probe is 32-bit", r.get("user_bits"), 32, "probe")
    ctx.check("protocol_version", r.get("protocol_version"), 8, "compat_ptr_ioctl -> binder_ioctl (BINDER_VERSION)")


@case("compat.one_copy", compat=True, kprobes=DELIVERY_PROBES)
def one_copy(ctx: CaseContext) -> None:
    """32-bit calls land in the 32-bit server's mapping, copied once."""
    out = ctx.run_probe("sync", sizes=",".join(map(str, SIZES)), map=4 * MiB, mode="call")
    judge_delivery(ctx, out, ctx.stop_trace(), SIZES, "call")


# the clamp's refused call first (within the rate limits), then the flood's (past them)
@case("compat.limits", compat=True, expected_dmesg=(
        *no_address_space(4 * MiB + 8, 1, EMPTY_4M), no_space_left(None), txn_failed("call", BR_FAILED_REPLY, -28, 1),
        *MMAP_FLAGS_LINES, spam_lines(65536), txn_failed("async", BR_FAILED_REPLY, -28, None),
        # the Rust driver: the clamp's refused call, then the flood's 8 (copy_transaction_data fails for all 9)
        rust_alloc_failed(4 * MiB + 8, False, 1), rust_txn_failed("call", 28, 1), rust_copy_failed(28, 9),
        rust_alloc_failed(65536, True, 8), rust_txn_failed("async", 28, 8),
        rust_line(r"\d+: undelivered transaction \d+, process died", 31,
                  "transaction.rs Transaction::cancel (binder_debug! DeadTransaction)")))
def limits(ctx: CaseContext) -> None:
    """For a 32-bit process: the 4 MiB clamp, ENOSPC, the read-only mapping and async half-space."""
    clamp = ctx.run_probe("clamp", sizes=f"{4 * MiB},{4 * MiB + 8}", map=8 * MiB, touch=f"{4 * MiB + 4096}")
    flags = ctx.run_probe("mmap_flags")
    flood = ctx.run_probe("async_flood", count=40, size=65536, map=4 * MiB, free=0)
    for out in (clamp, flags, flood):
        probe_completed(ctx, out)
    ctx.check("4 MiB transaction into an 8 MiB mapping", call_outcome(clamp.one("tx", seq=0)), "ok",
              "binder_alloc_mmap_handler")
    ctx.check("4 MiB + 8 transaction", call_outcome(clamp.one("tx", seq=1)), "BR_FAILED_REPLY -28",
              "binder_alloc_new_buf_locked")
    touch = clamp.one("touch") or {}
    ctx.check("read beyond the 4 MiB area", touch.get("signal", "missing"), "SIGBUS", "binder_vm_fault")
    ctx.check("mmap(PROT_READ|PROT_WRITE)", errno_name(flags.one("mmap", step="rw") or {}), "EPERM", "binder_mmap")
    ctx.check("second mmap on the same fd", errno_name(flags.one("mmap", step="second") or {}), "EBUSY",
              "binder_alloc_mmap_handler")
    summary = flood.one("summary") or {}
    ctx.check("oneway 64 KiB calls accepted", summary.get("ok_count"), 32, "binder_alloc_mmap_handler (half for async)")
