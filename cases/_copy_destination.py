"""The traced copies of one transaction into its receiver's buffer, judged per driver: how many
bytes they carried and where they landed (cases/_one_copy_checks.py judges the rest of a delivery).

How the destination is proven (harness/evidence/drivers.py DriverFacts.copy_lands_at says which
fetch arg the driver's copy kprobe reads, harness/evidence/trace.py places the kprobes):
- C: binder_alloc_copy_user_to_buffer's binder_buffer->user_data (offset from BTF) is the
  receiver's user address of the buffer; it must equal the data.ptr.buffer the receiver got in
  BR_TRANSACTION/BR_REPLY.
- Rust: the copy is drivers/android/binder/allocation.rs Allocation::copy_into, which hands
  self.offset + offset to page_range.rs ShrinkablePageRange::copy_from_user_slice; that page range
  is the receiver's whole mapping, and process.rs Process::buffer_alloc made the Allocation with
  offset = the buffer's offset in it and ptr = mapping.address + offset. The kprobe reads
  self.offset (`buffer_offset`): the receiver's mmap base (the probe's own `map_start`) plus it
  must equal the data.ptr.buffer the receiver got, per transaction, for every copy of it; and the
  same Allocation's ptr must be that address and its debug_id the transaction's (which proves
  the field offsets the kprobe reads on the build under test).
Either way the bytes are the traced ones, summed per transaction: a driver that copied a payload
twice measures 2.0 copies per byte.
"""
from __future__ import annotations

from harness.evidence.trace import TracedTransaction
from harness.judging.context import CaseContext


def align8(n: int) -> int:
    return (n + 7) & ~7


def check_offsets_pointer(ctx: CaseContext, label: str, rx: dict) -> None:
    """data.ptr.offsets as the receiver got it: buffer + ALIGN(data_size, 8), or 0 where the driver
    leaves it unset for a transaction without offsets (DriverFacts.zero_offsets_ptr_when_none)."""
    if ctx.driver.zero_offsets_ptr_when_none and rx["offsets_size"] == 0:
        ctx.check(f"{label}: offsets pointer (no offsets)", rx["offsets"], 0,
                  "transaction.rs Transaction::do_work (tr.data.ptr.offsets set only if offsets_size > 0)")
    else:
        ctx.check(f"{label}: offsets - buffer", rx["offsets"] - rx["buffer"], align8(rx["data_size"]),
                  "binder_transaction")


def check_copies(ctx: CaseContext, label: str, txn: TracedTransaction, rx: dict, expected_bytes: int) -> None:
    """The transaction's user->buffer bytes, and that every copy went into the buffer `rx` got."""
    buf, start = rx["buffer"], rx["map_start"]
    if ctx.driver.copy_lands_at != "buffer_offset":
        ctx.check(f"{label}: user->buffer bytes", txn.copied_bytes, expected_bytes, "binder_alloc_copy_user_to_buffer")
        ctx.check(f"{label}: copies land at the receiver's buffer",
                  sorted(f"{a:#x}" for a in txn.copy_targets), [f"{buf:#x}"], "binder_alloc_copy_user_to_buffer")
        return
    ctx.check(f"{label}: user->buffer bytes", txn.copied_bytes, expected_bytes, "allocation.rs Allocation::copy_into")
    ctx.check(f"{label}: copies land at the receiver's buffer (map_start + traced buffer_offset)",
              sorted(f"{start + a:#x}" for a in txn.copy_targets), [f"{buf:#x}"],
              "allocation.rs Allocation::copy_into -> page_range.rs ShrinkablePageRange::copy_from_user_slice")
    ctx.check(f"{label}: copies' Allocation.ptr is the receiver's buffer",
              sorted({f"{c.int('ptr'):#x}" for c in txn.copies}), [f"{buf:#x}"],
              "process.rs Process::buffer_alloc (Allocation ptr: mapping.address + offset)")
    ctx.check(f"{label}: copies' Allocation.debug_id is the transaction's",
              sorted({c.int("debug_id") for c in txn.copies}), [txn.debug_id], "allocation.rs Allocation::new")
