"""Checks shared by the one_copy cases: judge a delivery from probe and trace evidence.

Kernel references (drivers/android, Linux 6.1):
- binder_alloc_new_buf_locked: the buffer comes from the receiver's own mmap area,
  best fit from the free tree, so the first buffer of an empty area is at offset 0.
- binder_transaction: offsets start at ALIGN(data_size, sizeof(void *)); the data and
  offsets are copied with binder_alloc_copy_user_to_buffer, once, straight from the
  sender's memory into the target buffer.
- binder_thread_read: only the 64-byte binder_transaction_data (with its pointers into
  the mapping) is copied to the receiver's user memory, never the payload.
- binder_mmap: FORBIDDEN_MMAP_FLAGS rejects VM_WRITE and VM_MAYWRITE is cleared, so the
  mapping is read-only (r--p).

The traced copies' bytes and destination, per driver: cases/_copy_destination.py.
"""
from __future__ import annotations

from cases._copy_destination import check_copies, check_offsets_pointer
from cases._expect import probe_completed
from harness.judging.context import CaseContext
from harness.evidence.probe import ProbeOutput
from harness.evidence.trace import Trace, binder_transactions, usercopies_in_binder_ioctl

TF_ONE_WAY = 0x01
BINDER_TRANSACTION_DATA_SIZE = 64  # sizeof(struct binder_transaction_data), 64-bit


def judge_delivery(ctx: CaseContext, out: ProbeOutput, trace: Trace, sizes: tuple[int, ...], mode: str) -> None:
    """mode: 'call' and 'oneway' judge the server's receipt; 'reply' judges the client's."""
    receiver_role = "client" if mode == "reply" else "server"
    roles = out.one("roles") or {}
    receiver_pid = roles.get(f"{receiver_role}_pid")
    sender_pid = roles.get("server_pid" if mode == "reply" else "client_pid")
    probe_completed(ctx, out)
    mapping = out.one("map", role=receiver_role) or {}
    maps_line = mapping.get("maps_line", "")
    ctx.check_that(f"receiver mapping is read-only {ctx.binder_device} (r--p)",
                   " r--p " in maps_line and maps_line.rstrip().endswith(" " + ctx.binder_device),
                   maps_line or "missing", f"r--p {ctx.binder_device}", "binder_mmap")

    rx_by_seq = {r["seq"]: r for r in out.events("rx", role=receiver_role)} or {
        r["seq"]: r for r in out.events("rx") if receiver_role == "server" and "role" not in r}
    want_flags = TF_ONE_WAY if mode == "oneway" else 0
    copy_name = "Allocation::copy_into" if ctx.driver.copy_lands_at == "buffer_offset" else \
        "binder_alloc_copy_user_to_buffer"  # the function the driver's copy kprobe is on
    traced = [t for t in binder_transactions(trace, ctx.driver.transaction_traced_after_copies)
              if t.pid == sender_pid and t.reply == (mode == "reply") and (t.flags & TF_ONE_WAY) == want_flags]
    per_size = []
    for seq, size in enumerate(sizes):
        label = f"size {size}"
        rx = rx_by_seq.get(seq)
        if not ctx.check_that(f"{label}: delivered to the receiver", rx is not None,
                              "no rx line" if rx is None else "rx", "rx", "binder_thread_read"):
            continue
        start, end, buf = rx["map_start"], rx["map_end"], rx["buffer"]
        ctx.check(f"{label}: data_size", rx["data_size"], size, "binder_transaction")
        ctx.check_that(f"{label}: buffer inside the receiver's own mapping",
                       start <= buf and buf + rx["data_size"] <= end,
                       f"{buf:#x}", f"in [{start:#x}, {end:#x})", "binder_alloc_new_buf_locked")
        if seq == 0:
            ctx.check(f"{label}: first buffer of an empty area at offset", buf - start, 0,
                      "binder_alloc_new_buf_locked")
        check_offsets_pointer(ctx, label, rx)
        ctx.check(f"{label}: payload pattern intact", rx.get("pattern_ok"), True, "binder_alloc_copy_user_to_buffer")
        entry = {"size": size, "offset_in_map": buf - start, "pattern_ok": rx.get("pattern_ok")}
        txn = traced[seq] if seq < len(traced) else None
        if ctx.check_that(f"{label}: transaction seen in the trace", txn is not None,
                          f"{len(traced)} traced", f">= {seq + 1}", "binder_transaction"):
            expected_bytes = rx["data_size"] + (rx["offsets_size"] if ctx.driver.offsets_copied_from_user else 0)
            per_byte = txn.copied_bytes / expected_bytes if expected_bytes else 0.0
            ctx.check(f"{label}: kernel copies per payload byte (traced {copy_name})",
                      round(per_byte, 3), 1.0, "binder_transaction")
            check_copies(ctx, label, txn, rx, expected_bytes)
            entry.update({"debug_id": txn.debug_id, "copied_bytes": txn.copied_bytes,
                          "copies": len(txn.copies), "copies_per_byte": round(per_byte, 3)})
        per_size.append(entry)
    if receiver_pid is not None:
        # binder_thread_read copies each BR_TRANSACTION/BR_REPLY's binder_transaction_data to the
        # receiver with copy_to_user (__check_object_size, traced): so at least one copy is always
        # there, and a trace that recorded none has judged nothing
        out_sizes = usercopies_in_binder_ioctl(trace, receiver_pid)
        largest = max(out_sizes) if out_sizes else None
        ctx.check_that("largest variable-size copy to the receiver's user memory in binder ioctls",
                       largest is not None and largest <= BINDER_TRANSACTION_DATA_SIZE,
                       "no copy recorded" if largest is None else largest,
                       f"<= {BINDER_TRANSACTION_DATA_SIZE}, at least one (its binder_transaction_data)",
                       "binder_thread_read")
        ctx.evidence["largest_copy_to_receiver_user"] = largest
    ctx.evidence["transactions"] = per_size
    ctx.evidence["pids"] = {"sender": sender_pid, "receiver": receiver_pid}
