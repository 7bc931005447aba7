"""objects: what binder_transaction does to the objects inside a transaction, and
how it validates the offsets array that points at them.

Kernel references (drivers/android/binder.c, Linux 6.1): binder_transaction's
object loop; binder_translate_binder, binder_translate_handle,
binder_get_ref_for_node_olocked (handle numbers), binder_translate_fd,
binder_apply_fd_fixups (deferred fd install, O_CLOEXEC), binder_translate_fd_array,
binder_fixup_parent, binder_defer_copy / binder_do_deferred_txn_copies
(scatter-gather), binder_get_object and binder_validate_ptr (validation),
binder_transaction_buffer_release (what BC_FREE_BUFFER closes).
"""
from __future__ import annotations

from cases._expect import (BR_FAILED_REPLY, PIDS, Node, Ref, call_outcome, errno_name, expect_proc, manager_node,
                           note_dmesg, oneway_to_frozen, probe_completed, result, rust_alloc_failed, rust_copy_failed,
                           rust_line, rust_txn_failed, txn_error, txn_failed, user_error, manager_work,
                           printed_buffers, printed_local_refs,
                           view, view_buffers, view_local_refs, view_nodes, view_pending, view_refs)
from cases.limits import no_address_space, no_space_left
from harness.judging.catalog import case
from harness.judging.context import CaseContext
from harness.judging.verdicts import ByKernel, Line
from harness.evidence.contract import OBJ_COOKIE_STRONG, OBJ_COOKIE_WEAK, OBJ_PTR_STRONG, OBJ_PTR_WEAK, OBJ_UPDATE_CODE
from harness.evidence.trace import COPY_LANDS_AT, binder_transactions, copy_lands_at
from harness.evidence.kprobes import COPY_TO_BUFFER, COPY_USER_TO_BUFFER

FLAT_BINDER_OBJECT = 24  # sizeof(struct flat_binder_object)
BUFFER_OBJECT = 40  # sizeof(struct binder_buffer_object)
PTR_STRONG, COOKIE_STRONG = OBJ_PTR_STRONG, OBJ_COOKIE_STRONG
PTR_WEAK, COOKIE_WEAK = OBJ_PTR_WEAK, OBJ_COOKIE_WEAK


def align8(n: int) -> int:
    return (n + 7) & ~7


def _objects(record: dict, key: str = "objects") -> list[dict]:
    return record.get(key) or []


# The owner's queued work once the receiver freed its refs to the owner's nodes while the owner's
# reply buffer still holds one strongly: binder.c's binder_dec_node_nilocked queues the node's work
# on proc->todo whenever a count drops (reading it sends nothing here); the Rust driver's
# node.rs Node::update_refcount_locked queues the node only when a count the owner was told of
# must change, which the buffer's strong ref prevents.
OWNER_WORK_AFTER_REFS_FREED = {"c": {"NODE": 1}, "rust": {}}


@case("objects.binder_to_handle")
def binder_to_handle(ctx: CaseContext) -> None:
    """BINDER and WEAK_BINDER arrive as HANDLE 1 and WEAK_HANDLE 2; sent back to their owner, they
    arrive as its own binders with its ptr and cookie."""
    out = ctx.run_probe("objects", kind="binder")
    probe_completed(ctx, out)
    rx = out.one("rx", role="server") or {}
    got = [(o.get("type"), o.get("handle"), o.get("binder"), o.get("cookie")) for o in _objects(rx)]
    ctx.evidence["receiver_objects"] = _objects(rx)
    ctx.check("objects as the receiver sees them (type, handle, binder, cookie)", got,
              [("BINDER_TYPE_HANDLE", 1, 1, 0), ("BINDER_TYPE_WEAK_HANDLE", 2, 2, 0)],
              "binder_translate_binder (type -> HANDLE/WEAK_HANDLE, binder = 0, handle = desc, cookie = 0); "
              "binder_get_ref_for_node_olocked (first desc of a non-context-manager node is 1)")
    ctx.check("offsets the receiver sees", [o.get("off") for o in _objects(rx)], [0, FLAT_BINDER_OBJECT],
              "binder_transaction (offsets array copied as is)")
    echo = result(out, "objects.binder_echo")
    ctx.check("call outcome", call_outcome(echo), "ok", "binder_transaction")
    back = [(o.get("type"), o.get("binder"), o.get("cookie")) for o in _objects(echo, "reply_objects")]
    ctx.evidence["owner_objects"] = _objects(echo, "reply_objects")
    ctx.check("the handles sent back to their owner (type, binder, cookie)", back,
              [("BINDER_TYPE_BINDER", PTR_STRONG, COOKIE_STRONG), ("BINDER_TYPE_WEAK_BINDER", PTR_WEAK, COOKIE_WEAK)],
              "binder_translate_handle (node->proc == target_proc: node->ptr, node->cookie)")
    extra = [(e.get("br"), e.get("ptr"), e.get("cookie")) for e in echo.get("extra") or []]
    ctx.evidence["owner_node_returns"] = extra
    ctx.check("reference returns to the owner for its two new nodes", extra,
              [("BR_INCREFS", PTR_STRONG, COOKIE_STRONG), ("BR_ACQUIRE", PTR_STRONG, COOKIE_STRONG),
               ("BR_INCREFS", PTR_WEAK, COOKIE_WEAK)],
              "binder_new_node + binder_inc_ref_for_node (node work on the sender's todo) -> binder_thread_read")
    expect_proc(ctx, out, "holding", "server", "binder_translate_binder -> binder_inc_ref_for_node (HANDLE 1 "
                "strong, WEAK_HANDLE 2 weak); binder_get_node_refs_for_txn (the call's strong local ref on the "
                "manager's node); binder_thread_read (a sync call's buffer stays active until its reply)",
                refs=[Ref(1, 1, 0), Ref(2, 0, 1)], nodes=[manager_node(extra_strong=1)], work=manager_work(ctx, {}),
                buffers=["48:16:0 active"])
    # (refs only: the client's next call may already be queued on the manager's node, with its buffer)
    expect_proc(ctx, out, "freed", "server", "binder_free_buf -> binder_transaction_buffer_release -> "
                "binder_dec_ref_for_handle (both refs freed with the buffer)", refs=[])
    expect_proc(ctx, out, "replied", "client", "binder_translate_handle (the owner's own nodes come back as "
                "BINDERs: the reply's buffer holds a strong local ref on one, a weak on the other); "
                "binder_thread_read (BR_INCREFS / BR_ACQUIRE: has_strong_ref, has_weak_ref) -> binder_thread_write "
                "(their _DONE); binder_cleanup_ref_olocked -> binder_dec_node_nilocked (the receiver's refs freed "
                "with its buffer, before it answered the client's next call: the strong node's work on "
                "proc->todo, unread by a thread waiting for its reply)",
                refs=[], nodes=[Node(PTR_STRONG, COOKIE_STRONG, 1, 1, 1, 0, 0), Node(PTR_WEAK, COOKIE_WEAK, 0, 1, 0, 1, 0)],
                work=ctx.by_driver(OWNER_WORK_AFTER_REFS_FREED), buffers=["48:16:0 delivered"])


# An fd number that is not open (-EBADF), then a good and a bad fd to a node that takes none (-EPERM)
FD_DMESG = (user_error("got transaction with invalid fd, 1000", 1, "binder_translate_fd (fget fails)"),
            user_error(r"got transaction with fd, \d+, but target does not allow fds", 2,
                       "binder_translate_fd (!target_node->accept_fds)"),
            txn_error(PIDS + "translate fd failed", 3, "binder_transaction (binder_translate_fd fails)"),
            txn_failed("call", BR_FAILED_REPLY, -9, 1), txn_failed("call", BR_FAILED_REPLY, -1, 2),
            # the Rust driver: the bad fd (EBADF), then the good and the bad fd to a node that takes none (EPERM)
            *(line for errno, n in ((9, 1), (1, 2)) for line in (
                rust_line(PIDS + rf"error while translating object: Error\({errno}\)", n,
                          "thread.rs Thread::copy_transaction_data (binder_debug! UserError)"),
                rust_copy_failed(errno, n), rust_txn_failed("call", errno, n))))
# The FDA whose PTR parent sits at data offset 0 (-EINVAL)
FDA_DMESG = (user_error("got transaction with out-of-order buffer fixup", 1,
                        "binder_transaction (BINDER_TYPE_FDA: binder_validate_fixup fails)"),
             txn_failed("call", BR_FAILED_REPLY, -22, 1))
# An FDA whose PTR parent sits at data offset 0. binder.c's binder_validate_fixup takes a last
# object offset of 0 to mean "no parent to fix up in" and refuses it; the Rust driver finds the
# parent by its index (thread.rs ScatterGatherState::validate_parent_fixup) and delivers the call.
# Nothing in the uapi forbids a parent at offset 0: a binder.c quirk to report upstream.
FDA_PARENT_AT_0 = {
    "c": ("BR_FAILED_REPLY -22", "binder_validate_fixup (last_obj_offset 0 means 'nothing to fix up in')"),
    "rust": ("ok", "thread.rs ScatterGatherState::validate_parent_fixup (the parent found by index in ancestors)"),
}


def _fds(out, where: str) -> list[dict]:
    return [f for f in out.events("fd") if f.get("where") == where]


@case("objects.fd", expected_dmesg=FD_DMESG)
def fd(ctx: CaseContext) -> None:
    """A BINDER_TYPE_FD arrives as a new O_CLOEXEC fd to the same open file, the sender's fd
    untouched; BC_FREE_BUFFER leaves it open; a bad fd gets -EBADF, a node without
    FLAT_BINDER_FLAG_ACCEPTS_FDS -EPERM."""
    out = ctx.run_probe("objects", kind="fd", accept_fds=1)
    probe_completed(ctx, out)
    sent = (_fds(out, "client_before") or [{}])[0]
    after = (_fds(out, "client_after") or [{}])[0]
    recv = (_fds(out, "server") or [{}])[0]
    ctx.evidence["fds"] = {"sender_before": sent, "receiver": recv, "sender_after": after}
    ctx.check("call with an fd object", call_outcome(result(out, "objects.fd_call")), "ok", "binder_transaction")
    rx = out.one("rx", role="server") or {}
    objs = _objects(rx)
    ctx.check("object type as received", [o.get("type") for o in objs], ["BINDER_TYPE_FD"], "binder_transaction")
    ctx.check("receiver's fd is open and refers to the sender's file (dev, ino)",
              (recv.get("open"), recv.get("dev"), recv.get("ino")), (True, sent.get("dev"), sent.get("ino")),
              "binder_translate_fd (fget) -> binder_apply_fd_fixups (fd_install)")
    ctx.check("receiver's fd is close-on-exec", recv.get("cloexec"), True,
              "binder_apply_fd_fixups (get_unused_fd_flags(O_CLOEXEC))")
    ctx.check("receiver reads what the sender wrote into the pipe", recv.get("content"), "through binder",
              "binder_translate_fd (the same struct file)")
    ctx.check("the fd is still open after BC_FREE_BUFFER",
              [f.get("open") for f in out.events("fd_after_free")], [True],
              "binder_transaction_buffer_release (BINDER_TYPE_FD: user space closes delivered fds)")
    ctx.check("sender's fd afterwards: open, same file, still reads",
              (after.get("open"), after.get("fd"), after.get("ino"), after.get("content")),
              (True, sent.get("fd"), sent.get("ino"), "still mine"), "binder_translate_fd (fget takes a reference)")
    ctx.check("an fd number that is not open", call_outcome(result(out, "objects.fd_invalid")),
              "BR_FAILED_REPLY -9", "binder_translate_fd (fget fails -> -EBADF)")

    refused = ctx.run_probe("objects", kind="fd", accept_fds=0)
    probe_completed(ctx, refused)
    ctx.check("an fd to a node without FLAT_BINDER_FLAG_ACCEPTS_FDS",
              call_outcome(result(refused, "objects.fd_call")), "BR_FAILED_REPLY -1",
              "binder_translate_fd (!target_node->accept_fds -> -EPERM)")
    kept = (_fds(refused, "client_after") or [{}])[0]
    ctx.check("refused: the sender's fd still open and readable", (kept.get("open"), kept.get("content")),
              (True, "through binderstill mine"), "binder_translate_fd (err_fd_not_accepted: no fget)")
    ctx.check("refused: nothing delivered", len(refused.events("rx")), 0, "binder_transaction (err_translate_failed)")
    note_dmesg(ctx, "but target does not allow fds", "binder_translate_fd",
               r"\d+:\d+ got transaction with fd, \d+, but target does not allow fds")


@case("objects.fd_array", expected_dmesg=FDA_DMESG)
def fd_array(ctx: CaseContext) -> None:
    """A BINDER_TYPE_FDA of 2 fds inside its PTR parent arrives as 2 new fds to the same files,
    written into the receiver's copy of the parent; BC_FREE_BUFFER closes them."""
    out = ctx.run_probe("objects", kind="fda")
    probe_completed(ctx, out)
    expected, ref = ctx.by_driver(FDA_PARENT_AT_0)
    ctx.check("PTR parent at data offset 0", call_outcome(result(out, "objects.fda_parent_at_0")), expected, ref)
    # each delivered FDA call gives the receiver the sender's two fds (the parent-at-0 one too, where accepted)
    calls = 1 + (expected == "ok")
    ctx.check("BC_TRANSACTION_SG with PTR (at offset 8) + FDA", call_outcome(result(out, "objects.fda_call")), "ok",
              "binder_transaction")
    rx = out.one("rx", role="server") or {}
    objs = _objects(rx)
    ctx.evidence["receiver_objects"] = objs
    ctx.check("object types as received", [o.get("type") for o in objs], ["BINDER_TYPE_PTR", "BINDER_TYPE_FDA"],
              "binder_transaction")
    data_size, offsets_size = rx.get("data_size", 0), rx.get("offsets_size", 0)
    ctx.check("parent buffer placed after data and offsets (offset in the transaction buffer)",
              objs[0].get("buf_off") if objs else None, align8(data_size) + align8(offsets_size),
              "binder_transaction (sg_buf_offset = ALIGN(off_end_offset); bp->buffer = user_data + sg_buf_offset)")
    ctx.check("FDA object as received (num_fds, parent, parent_offset)",
              (objs[1].get("num_fds"), objs[1].get("parent"), objs[1].get("parent_offset")) if len(objs) > 1 else None,
              (2, 0, 0), "binder_translate_fd_array (the FDA object itself is copied unchanged)")
    sent = _fds(out, "client_before")
    recv = _fds(out, "server")
    ctx.evidence["fds"] = {"sender": sent, "receiver": recv}
    ctx.check("receiver's fds refer to the sender's files, in order (ino)", [f.get("ino") for f in recv],
              [f.get("ino") for f in sent] * calls, "binder_translate_fd_array -> binder_translate_fd (per fd)")
    ctx.check("receiver's fds are open, close-on-exec, and new numbers",
              [(f.get("open"), f.get("cloexec")) for f in recv], [(True, True)] * 2 * calls,
              "binder_apply_fd_fixups (get_unused_fd_flags(O_CLOEXEC))")
    # the first delivered call's fds read the pipes' contents; a second call's, the same pipes emptied
    ctx.check("receiver reads each pipe's content", [f.get("content") for f in recv],
              ["first", "second"] + ["", ""] * (calls - 1), "binder_translate_fd (the same struct file)")
    ctx.check("fds in the parent buffer are closed by BC_FREE_BUFFER",
              [f.get("open") for f in out.events("fd_after_free")], [False, False] * calls,
              "binder_transaction_buffer_release (BINDER_TYPE_FDA: binder_deferred_fd_close)")
    parent = out.one("sender_parent_after") or {}
    ctx.check("sender's parent buffer untouched (its own fd numbers)", (parent.get("fd0"), parent.get("fd1")),
              tuple(f.get("fd") for f in sent) if len(sent) == 2 else None, "binder_translate_fd_array")
    after = _fds(out, "client_after")
    ctx.check("sender's fds still open and readable", [(f.get("open"), f.get("content")) for f in after],
              [(True, "")] * 2, "binder_translate_fd (fget takes a reference)")
    # an FDA of zero fds (upstream ef38de9217a0): accepted, nothing translated, the parent as sent
    zero = ctx.run_probe("objects", kind="fda", fda_zero=1)
    probe_completed(ctx, zero)
    ctx.check("FDA of 0 fds in its PTR parent", call_outcome(result(zero, "objects.fda_zero_call")), "ok",
              "binder_translate_fd_array (num_fds == 0: return 0)")
    sent_parent = zero.one("sender_parent_after") or {}
    ctx.check("FDA of 0 fds: the parent's words as received (its two u32 words, marker)",
              ((zero.one("ptr_rx") or {}).get("words") or [])[:2],
              [(sent_parent.get("fd1", 0) << 32) | sent_parent.get("fd0", 0), sent_parent.get("marker")],
              "binder_translate_fd_array (num_fds == 0: no fixup queued, so the deferred copy copies the parent whole)")


SG_PROBES = (COPY_USER_TO_BUFFER, COPY_TO_BUFFER)


@case("objects.scatter_gather", kprobes=SG_PROBES)
def scatter_gather(ctx: CaseContext) -> None:
    """Two PTR buffers (64 and 100 bytes, the second fixed up at offset 16 of the first) land in
    the receiver's buffer after data and offsets; every byte is written once: user bytes by
    binder_alloc_copy_user_to_buffer, the 2 objects and the 8-byte fixup by binder_alloc_copy_to_buffer."""
    out = ctx.run_probe("objects", kind="sg")
    trace = ctx.stop_trace()
    probe_completed(ctx, out)
    ctx.check("BC_TRANSACTION_SG with two PTR objects", call_outcome(result(out, "objects.sg_call")), "ok",
              "binder_transaction")
    sent = out.one("sg_sent") or {}
    rx = out.one("rx", role="server") or {}
    objs = _objects(rx)
    ds, os_, a_len, b_len, fix = (sent.get(k, 0) for k in ("data_size", "offsets_size", "a_len", "b_len", "fixup_off"))
    sg0 = align8(ds) + align8(os_)
    ctx.evidence["receiver_objects"] = objs
    ctx.check("PTR buffers as received (buf_off, length)", [(o.get("buf_off"), o.get("length")) for o in objs],
              [(sg0, a_len), (sg0 + align8(a_len), b_len)],
              "binder_transaction (bp->buffer = user_data + sg_buf_offset; sg_buf_offset += ALIGN(length, 8))")
    ptr_rx = {p.get("index"): p for p in out.events("ptr_rx")}
    a_words = (ptr_rx.get(0) or {}).get("words") or []
    b_addr = objs[1].get("buffer") if len(objs) > 1 else None
    ctx.check("parent fixup: word at offset 16 of buffer A holds buffer B's receiver address",
              a_words[fix // 8] if len(a_words) > fix // 8 else None, b_addr,
              "binder_fixup_parent -> binder_add_fixup -> binder_do_deferred_txn_copies")
    ctx.check("buffer contents intact outside the fixup (first bad byte per buffer)",
              [(ptr_rx.get(i) or {}).get("first_bad") for i in (0, 1)], [-1, -1],
              "binder_do_deferred_txn_copies (binder_alloc_copy_user_to_buffer)")

    roles = out.one("roles") or {}
    driver = ctx.driver
    calls = [t for t in binder_transactions(trace, driver.transaction_traced_after_copies)
             if t.pid == roles.get("client_pid") and not t.reply]
    if ctx.check("transaction traced", len(calls), 1, "binder_transaction"):
        t = calls[0]
        objects_bytes = 2 * BUFFER_OBJECT
        fixups = 8
        # the offsets array: user bytes on the C driver, kernel writes on the Rust one (DriverFacts)
        user_offsets, kernel_offsets = (os_, 0) if driver.offsets_copied_from_user else (0, os_)
        user_expected = (ds - objects_bytes) + user_offsets + (a_len - fixups) + b_len
        ctx.evidence["bytes"] = {"user_to_buffer": t.copied_bytes, "kernel_to_buffer": t.kernel_copied_bytes,
                                 "data": ds, "offsets": os_, "sg_buffers": a_len + b_len,
                                 "user_copies": [c.int("bytes") for c in t.copies],
                                 "kernel_copies": [c.int("bytes") for c in t.kernel_copies]}
        rust = driver.copy_lands_at == "buffer_offset"
        ctx.check("user->buffer bytes: data outside objects + offsets + sg buffers outside fixups"
                  if driver.offsets_copied_from_user else
                  "user->buffer bytes: data outside objects + sg buffers outside fixups",
                  t.copied_bytes, user_expected,
                  "thread.rs Thread::copy_transaction_data + Thread::apply_sg -> allocation.rs Allocation::copy_into"
                  if rust else
                  "binder_transaction + binder_do_deferred_txn_copies (binder_alloc_copy_user_to_buffer)")
        ctx.check("kernel->buffer bytes: the 2 translated objects + 1 pointer fixup"
                  + ("" if driver.offsets_copied_from_user else " + the offsets"), t.kernel_copied_bytes,
                  objects_bytes + fixups + kernel_offsets,
                  "thread.rs Thread::copy_transaction_data + Thread::apply_sg (rust/kernel/page.rs Page::write_raw)"
                  if rust else
                  "binder_transaction, binder_do_deferred_txn_copies (binder_alloc_copy_to_buffer)")
        ctx.check("bytes written into the target buffer per byte sent (data + offsets + sg buffers)",
                  round((t.copied_bytes + t.kernel_copied_bytes) / (ds + os_ + a_len + b_len), 3), 1.0,
                  "binder_transaction")
        # where the copies' buffer is: its user address (C), or its offset in the receiver's
        # mapping (Rust: map_start + Allocation.offset); the Rust driver's kernel writes are per
        # page (Page::write_raw) and say nothing of it, so only its user copies are located
        base = (out.one("map", role="server") or {}).get("start", 0) if rust else 0
        located = t.copy_targets | {copy_lands_at(c) for c in t.kernel_copies
                                    if any(f in c.fields for f in COPY_LANDS_AT)}
        ctx.check("all copies land in the receiver's buffer" if not rust else
                  "all user copies land in the receiver's buffer (map_start + traced buffer_offset)",
                  sorted({f"{base + a:#x}" for a in located}),
                  [f"{rx.get('buffer', 0):#x}"] if rx.get("buffer") else ["(no rx)"],
                  "allocation.rs Allocation::copy_into" if rust else
                  "binder_alloc_copy_user_to_buffer / binder_alloc_copy_to_buffer")


# One user error and one failed call for each bad offsets array of BAD_OFFSETS
_BAD_OFFSET = "binder_transaction (binder_get_object fails)"
BAD_OFFSETS_DMESG = (
    *(user_error(rf"got transaction with invalid offset \({offset}, min 0 max {end}\) or object\.", 1, _BAD_OFFSET)
      for offset, end in ((2, 64), (40, 40), (0, 32), (0, 40))),  # unaligned, at data end, past end, unknown type
    user_error("got transaction with invalid data ptr", 3,
               "binder_transaction (object_offset > data_size, or before the end of the last object)"),
    user_error("got transaction with invalid offsets size, 4", 1,
               "binder_transaction (!IS_ALIGNED(offsets_size, sizeof(binder_size_t)))"),
    user_error("got transaction with invalid parent offset or type", 1,
               "binder_transaction (BINDER_TYPE_FDA: binder_validate_ptr finds no parent)"),
    txn_failed("call", BR_FAILED_REPLY, -22, 6), txn_failed("call", BR_FAILED_REPLY, -14, 3),
    # the Rust driver: unaligned, overlapping and same_twice by the offset test, 8 refused with EINVAL
    # and object_past_end with EFAULT, fda_without_parent in translate_object
    rust_line(PIDS + "got transaction with invalid offset", 3, "thread.rs Thread::copy_transaction_data (binder_debug!)"),
    rust_copy_failed(22, 8), rust_txn_failed("call", 22, 8), rust_copy_failed(14, 1), rust_txn_failed("call", 14, 1),
    rust_line(PIDS + r"error while translating object: Error\(22\)", 1,
              "thread.rs Thread::copy_transaction_data (binder_debug! UserError)"))

# name: (outcome, the -errno binder_transaction sets, where)
BAD_OFFSETS = {
    "offsets.unaligned": ("BR_FAILED_REPLY -22", "binder_get_object (!IS_ALIGNED(offset, sizeof(u32)))"),
    "offsets.at_data_end": ("BR_FAILED_REPLY -22", "binder_get_object (read_size < sizeof(hdr))"),
    "offsets.past_data_size": ("BR_FAILED_REPLY -14",
                               "binder_transaction (object_offset > tr->data_size: 'invalid data ptr', -EFAULT)"),
    "offsets.overlapping": ("BR_FAILED_REPLY -14",
                            "binder_transaction (user_offset > object_offset: 'invalid data ptr', -EFAULT)"),
    "offsets.same_twice": ("BR_FAILED_REPLY -14",
                           "binder_transaction (user_offset > object_offset: 'invalid data ptr', -EFAULT)"),
    "offsets.size_not_multiple": ("BR_FAILED_REPLY -22",
                                  "binder_transaction (!IS_ALIGNED(offsets_size, sizeof(binder_size_t)))"),
    "offsets.object_past_end": ("BR_FAILED_REPLY -22", "binder_get_object (data_size < object_size)"),
    "offsets.unknown_type": ("BR_FAILED_REPLY -22", "binder_get_object (unknown hdr->type -> 0)"),
    "offsets.fda_without_parent": ("BR_FAILED_REPLY -22", "binder_validate_ptr (index >= num_valid -> NULL)"),
    "offsets.control_valid": ("ok", "binder_transaction"),
}
# The Rust driver refuses the same arrays, three of them with another errno: an offset past the
# data or not after the previous object is -EINVAL (binder.c: -EFAULT), an object running past the
# data's end -EFAULT (binder.c: -EINVAL). The uapi names no errno for either: a difference to report.
_RUST_OFFSET = "thread.rs Thread::copy_transaction_data (offset < end_of_previous_object || !is_aligned: 'invalid offset')"
RUST_BAD_OFFSETS = {
    "offsets.unaligned": ("BR_FAILED_REPLY -22", _RUST_OFFSET),
    "offsets.at_data_end": ("BR_FAILED_REPLY -22", "allocation.rs BinderObject::read_from_inner (type 0 of the zeroed "
                                                   "object: EINVAL)"),
    "offsets.past_data_size": ("BR_FAILED_REPLY -22", "allocation.rs AllocationView::copy_into (offset + size > limit: "
                                                      "EINVAL)"),
    "offsets.overlapping": ("BR_FAILED_REPLY -22", _RUST_OFFSET),
    "offsets.same_twice": ("BR_FAILED_REPLY -22", _RUST_OFFSET),
    "offsets.size_not_multiple": ("BR_FAILED_REPLY -22", "thread.rs Thread::copy_transaction_data "
                                                         "(!is_aligned(offsets_size, size_of::<u64>()))"),
    "offsets.object_past_end": ("BR_FAILED_REPLY -14", "allocation.rs BinderObject::read_from (reader.skip(object.size()) "
                                                       "past the data: EFAULT)"),
    "offsets.unknown_type": ("BR_FAILED_REPLY -22", "allocation.rs BinderObject::read_from_inner (type_to_size: EINVAL)"),
    "offsets.fda_without_parent": ("BR_FAILED_REPLY -22", "thread.rs ScatterGatherState::validate_parent_fixup "
                                                          "(no such parent: EINVAL)"),
    "offsets.control_valid": ("ok", "thread.rs Thread::transaction"),
}
BAD_OFFSETS_BY_DRIVER = {"c": BAD_OFFSETS, "rust": RUST_BAD_OFFSETS}


@case("objects.bad_offsets", expected_dmesg=BAD_OFFSETS_DMESG)
def bad_offsets(ctx: CaseContext) -> None:
    """Malformed offsets arrays get BR_FAILED_REPLY with the exact -errno in the extended error:
    unaligned, at or past data_size, overlapping, offsets_size % 8, object past the end,
    unknown type, FDA without a PTR parent."""
    out = ctx.run_probe("objects", kind="bad_offsets")
    probe_completed(ctx, out)
    measured = {}
    for name, (want, ref) in ctx.by_driver(BAD_OFFSETS_BY_DRIVER).items():
        r = result(out, name)
        measured[name] = call_outcome(r)
        ctx.check(name.split(".", 1)[1], measured[name], want, ref)
        if want != "ok":
            ee = r.get("ext_err") or {}
            ctx.check(f"{name.split('.', 1)[1]}: extended error command and id",
                      (ee.get("command_name"), bool(ee.get("id"))), ("BR_FAILED_REPLY", True),
                      "binder_transaction -> binder_set_extended_error(t_debug_id, return_error, param)")
    ctx.evidence["outcomes"] = measured
    ctx.check("no failed transaction reached the receiver", len(out.events("rx")), 1,
              "binder_transaction (err_bad_offset: the buffer is freed before queuing)")
    note_dmesg(ctx, "got transaction with invalid offset (2, min 0 max 64) or object.", "binder_transaction",
               r"\d+:\d+ got transaction with invalid offset \(2, min 0 max 64\) or object\.")
    note_dmesg(ctx, "got transaction with invalid offsets size, 4", "binder_transaction",
               r"\d+:\d+ got transaction with invalid offsets size, 4")


UPDATE_CODE = OBJ_UPDATE_CODE


@case("objects.update_txn_fds")
def update_txn_fds(ctx: CaseContext) -> None:
    """TF_UPDATE_TXN to a frozen (and stopped) process: of three pending oneways, the third
    supersedes the second in the node's async queue; the second's fd is dropped (its pipe has no
    reader once the sender closes its own fd), the sender's fd is not closed, and after unfreezing
    the receiver gets the first and the third, with the third's fd."""
    out = ctx.run_probe("objects", kind="update_txn")
    probe_completed(ctx, out)
    for name in ("update.freeze", "update.sigstop", "update.unfreeze"):
        ctx.check(name, result(out, name).get("errno_name") or "0", "0", "binder_ioctl_freeze / kill_pid_info")
    for name in ("update.first", "update.second", "update.third"):
        oneway_to_frozen(ctx, f"{name.split('.')[1]} oneway (TF_ONE_WAY | TF_UPDATE_TXN)", result(out, name))
    info = result(out, "update.frozen_info")
    ctx.check("BINDER_GET_FROZEN_INFO (sync_recv, async_recv) while frozen",
              (info.get("sync_recv"), info.get("async_recv")), (2, 1),
              "binder_ioctl_get_freezer_info (sync_recv = proc->sync_recv 0 | txns pending << 1; async_recv 1)")
    p_after = (_fds(out, "client_p_after") or [{}])[0]
    ctx.check("the sender's fd of the superseded call is still open", p_after.get("open"), True,
              "binder_release_entire_buffer / binder_free_txn_fixups (fput of the sender's file, no close)")
    write = result(out, "update.write_after_close")
    ctx.check("write into that pipe after the sender closes its fd", write.get("errno_name") or write.get("ret"),
              "EPIPE", "binder_proc_transaction (t_outdated: binder_free_txn_fixups -> fput)")
    rxs = out.events("rx", role="server")
    got = [(r.get("code"), r.get("head"), [o.get("type") for o in _objects(r)]) for r in rxs]
    ctx.evidence["delivered"] = got
    ctx.check("delivered after unfreezing (code, head, objects)", got,
              [(UPDATE_CODE, 1, []), (UPDATE_CODE, 3, ["BINDER_TYPE_FD"])],
              "binder_find_outdated_transaction_ilocked (same code, flags, sender, node: superseded)")
    recv = _fds(out, "server")
    q = (_fds(out, "client_q") or [{}])[0]
    ctx.check("the delivered fd is the third call's file (ino, content)",
              [(f.get("ino"), f.get("content")) for f in recv], [(q.get("ino"), "delivered")],
              "binder_translate_fd -> binder_apply_fd_fixups")


# -- object arrays at their edges ----------------------------------------------------------------
EDGE_AREA, EDGE_TAIL = 1048576, 4096  # the receiver's area; the PTR buffer of the exact fit
EMPTY_1M = r"0 \(num: 0 largest: 0\), free: 1048576 \(num: 1 largest: 1048576\)"
EDGES_DMESG = (
    user_error("not enough space to store 2 fds in buffer", 1,
               "binder_translate_fd_array (fda->parent_offset > parent->length - fd_buf_size)"),
    txn_error(PIDS + "translate fd array failed", 1, "binder_transaction (BINDER_TYPE_FDA)"),
    user_error("got transaction with invalid parent offset", 1,
               "binder_fixup_parent (parent->length < sizeof(binder_uintptr_t))"),
    txn_error(PIDS + "failed to fixup parent", 1, "binder_transaction (BINDER_TYPE_PTR)"),
    user_error("got transaction with too large buffer", 1, "binder_transaction (BINDER_TYPE_PTR: bp->length > buf_left)"),
    # the FDA of 0 fds at parent_offset 1000, accepted when sent, fails the bound check on release
    Line(r"transaction release \d+ not enough space for 0 fds in buffer", 1,
         "binder_transaction_buffer_release (BINDER_TYPE_FDA: parent_offset > parent->length - 0: pr_err, continue)"),
    *no_address_space(EDGE_AREA + 8, 1, EMPTY_1M), no_space_left(1),
    txn_failed("call", BR_FAILED_REPLY, -22, 3), txn_failed("call", BR_FAILED_REPLY, -28, 1),
    # the Rust driver: fda_zero_past_parent, fda_past_parent, child_of_empty_ptr (each a parent fixup
    # out of bounds), ptr_too_large, and the area 8 bytes too small
    *(rust_line(rf"validate_parent_fixup: new_min_offset={new}, sg_entry\.length={length}", 1,
                "thread.rs ScatterGatherState::validate_parent_fixup (pr_warn!)") for new, length in ((1000, 8), (12, 8), (8, 0))),
    rust_line(PIDS + r"failed to claim space for a BINDER_TYPE_PTR \(offset: \d+, limit: \d+, size: 16\)", 1,
              "thread.rs Thread::translate_object (binder_debug! UserError)"),
    rust_line(PIDS + r"error while translating object: Error\(22\)", 4,
              "thread.rs Thread::copy_transaction_data (binder_debug! UserError)"),
    rust_copy_failed(22, 4), rust_txn_failed("call", 22, 4),
    rust_alloc_failed(EDGE_AREA + 8, False, 1), rust_copy_failed(28, 1), rust_txn_failed("call", 28, 1))

# name: (outcome, where binder decides it)
EDGE_CALLS = {
    "fda_zero": ("ok", "binder_translate_fd_array (num_fds == 0: return 0)"),
    "fda_zero_past_parent": ("ok", "binder_translate_fd_array (num_fds == 0 returns before the parent_offset "
                                   "bound is checked)"),
    "fda_fills_parent": ("ok", "binder_translate_fd_array (fd_buf_size == parent->length, parent_offset 0)"),
    "fda_past_parent": ("BR_FAILED_REPLY -22", "binder_translate_fd_array (parent_offset 4 > length 8 - 8: "
                                               "'not enough space to store 2 fds')"),
    "fda_in_empty_ptr": ("ok", "binder_validate_fixup (fixup_offset 0 >= last_min_offset 0); "
                               "binder_translate_fd_array (num_fds == 0)"),
    "child_of_empty_ptr": ("BR_FAILED_REPLY -22", "binder_fixup_parent (parent->length 0 < sizeof(binder_uintptr_t))"),
    "empty_ptrs": ("ok", "binder_transaction (BINDER_TYPE_PTR: 0 > buf_left is false; binder_defer_copy of 0 bytes)"),
    "ptr_too_large": ("BR_FAILED_REPLY -22", "binder_transaction (BINDER_TYPE_PTR: bp->length 16 > buf_left 8)"),
    "area_exact": ("ok", "binder_alloc_new_buf_locked (size == buffer_size: best fit, the whole free buffer)"),
    "area_plus_8": ("BR_FAILED_REPLY -28", "binder_alloc_new_buf_locked (no free buffer of size 1048584: -ENOSPC)"),
}
# The Rust driver refuses one more: an FDA of 0 fds whose parent_offset (1000) is past its 8-byte
# parent. binder.c's binder_translate_fd_array returns for 0 fds before its bound check (and its
# release then logs "not enough space for 0 fds"); the Rust driver checks the fixup's bound first.
# The Rust driver's answer is the one the uapi's "parent_offset: offset of the fd array in the
# parent" implies; binder.c's acceptance is a quirk to report upstream.
RUST_EDGE_CALLS = {**EDGE_CALLS,
                   "fda_zero_past_parent": ("BR_FAILED_REPLY -22", "thread.rs ScatterGatherState::validate_parent_fixup "
                                                                   "(new_min_offset 1000 > sg_entry.length 8: EINVAL)")}
EDGE_CALLS_BY_DRIVER = {"c": EDGE_CALLS, "rust": RUST_EDGE_CALLS}


def _ptrs(objs: list[dict]) -> list[tuple]:
    return [(o.get("buf_off"), o.get("length")) for o in objs if o.get("type") == "BINDER_TYPE_PTR"]


@case("objects.array_edges", expected_dmesg=EDGES_DMESG)
def array_edges(ctx: CaseContext) -> None:
    """Object arrays at their edges: FDAs of zero fds (even with a parent_offset past their parent,
    which binder_translate_fd_array never checks for 0 fds but BC_FREE_BUFFER's release logs as
    "not enough space for 0 fds") and PTRs of zero length are accepted, a zero-length PTR after the last sg buffer points at the
    transaction buffer's end, an FDA that exactly fills its parent is accepted and one 4 bytes
    further is not, a zero-length parent takes no child pointer; data + offsets + extra buffers that
    exactly fill the receiver's empty 1 MiB area are accepted, 8 bytes more get -ENOSPC."""
    out = ctx.run_probe("objects", kind="edges")
    probe_completed(ctx, out)
    measured = {}
    calls = ctx.by_driver(EDGE_CALLS_BY_DRIVER)
    for name, (want, ref) in calls.items():
        r = result(out, f"edges.{name}")
        measured[name] = call_outcome(r)
        ctx.check(name, measured[name], want, ref)
    ctx.evidence["outcomes"] = measured
    delivered = [name for name, (outcome, _) in calls.items() if outcome == "ok"]
    rxs = out.events("rx", role="server")
    if not ctx.check("transactions delivered (one per accepted call)", len(rxs), len(delivered),
                     "binder_transaction (err_*: nothing queued)"):
        return
    rx = dict(zip(delivered, rxs))
    ctx.evidence["receiver_objects"] = {name: _objects(r) for name, r in rx.items()}
    fdas = {"fda_zero": [(0, 0)], "fda_zero_past_parent": [(0, 1000)], "fda_fills_parent": [(2, 0)],
            "fda_in_empty_ptr": [(0, 0)]}
    fda = {name: [(o.get("num_fds"), o.get("parent_offset")) for o in _objects(rx[name])
                  if o.get("type") == "BINDER_TYPE_FDA"] for name in fdas if name in rx}
    ctx.check("FDA objects as received (num_fds, parent_offset)", fda,
              {name: want for name, want in fdas.items() if name in rx},
              "binder_transaction (BINDER_TYPE_FDA: the object is copied unchanged)")
    sent, recv = _fds(out, "client_before"), _fds(out, "server")
    ctx.check("fds received: only fda_fills_parent's two, the sender's files (ino)", [f.get("ino") for f in recv],
              [f.get("ino") for f in sent], "binder_translate_fd_array (num_fds == 0 translates nothing)")
    ctx.check("those fds are closed by BC_FREE_BUFFER", [f.get("open") for f in out.events("fd_after_free")],
              [False, False], "binder_transaction_buffer_release (BINDER_TYPE_FDA: binder_deferred_fd_close)")
    ctx.check("sender's fds still open after the calls", [f.get("open") for f in _fds(out, "client_after")],
              [True, True], "binder_translate_fd (fget takes its own reference)")
    empty = rx["fda_in_empty_ptr"]
    ctx.check("zero-length parent as received (buf_off, length)", _ptrs(_objects(empty)),
              [(align8(empty.get("data_size", 0)) + align8(empty.get("offsets_size", 0)), 0)],
              "binder_transaction (bp->buffer = user_data + sg_buf_offset; sg_buf_offset += ALIGN(0, 8))")
    ptrs = rx["empty_ptrs"]
    sg0 = align8(ptrs.get("data_size", 0)) + align8(ptrs.get("offsets_size", 0))
    ctx.check("PTRs of 0, 16 and 0 bytes as received (buf_off, length): the last at the buffer's end",
              _ptrs(_objects(ptrs)), [(sg0, 0), (sg0, 16), (sg0 + 16, 0)],
              "binder_transaction (sg_buf_offset += ALIGN(bp->length, 8); 0 > buf_left 0 is false)")
    by_len = {p.get("length"): p for p in out.events("ptr_rx")}
    ctx.check("the 16-byte PTR between them arrives intact (first bad byte)", (by_len.get(16) or {}).get("first_bad"),
              -1, "binder_do_deferred_txn_copies")
    exact = rx["area_exact"]
    (tail_off, tail_len), = _ptrs(_objects(exact)) or [(None, None)]
    ctx.evidence["area_exact"] = {"data_size": exact.get("data_size"), "offsets_size": exact.get("offsets_size"),
                                  "buf_off": exact.get("buf_off"), "ptr_buf_off": tail_off}
    ctx.check("exact fit: the transaction buffer at the area's start, its PTR ending at the area's end "
              "(buf_off, ptr end)", (exact.get("buf_off"), (tail_off or 0) + (tail_len or 0)), (0, EDGE_AREA),
              "binder_alloc_new_buf_locked (best fit == the one free buffer); binder_transaction (sg_buf_offset)")
    ctx.check("exact fit: the PTR buffer arrives intact (first bad byte)", (by_len.get(EDGE_TAIL) or {}).get("first_bad"),
              -1, "binder_do_deferred_txn_copies (binder_alloc_copy_user_to_buffer)")
    for name in ("fda_past_parent", "child_of_empty_ptr", "ptr_too_large", "area_plus_8"):
        ee = result(out, f"edges.{name}").get("ext_err") or {}
        ctx.check(f"{name}: extended error command and id", (ee.get("command_name"), bool(ee.get("id"))),
                  ("BR_FAILED_REPLY", True), "binder_transaction -> binder_set_extended_error")


# -- objects in transactions that are never delivered --------------------------------------------
# Each run sends one transaction holding every object type: BINDER (node A), WEAK_BINDER (node B),
# HANDLE 0 and WEAK_HANDLE 0 (the sender's ref to the manager), an FD (pipe P) and a PTR parent with
# an FDA of one fd (pipe Q) (scen_objects.c send_all). It is never delivered: it fails at an object of
# unknown type after them (fail), a later TF_UPDATE_TXN oneway supersedes it in a frozen receiver
# (update), or the stopped receiver is killed with it queued (exit). Binder must give back all it
# took: no node or ref of it stays in either proc file, the sender's ref 0 keeps its counts, and the
# sender's pipes have no reader once the sender closes its own fds (binder holds no file).
NODE_A, NODE_B = OBJ_PTR_STRONG, OBJ_PTR_WEAK
OWN_REF_0 = [(0, False, 1, 1)]  # the sender's BC_INCREFS + BC_ACQUIRE on handle 0
MANAGER_OWN = (1, 1)  # the manager node's own (ls, lw): binder_ioctl_set_ctx_mgr (local_strong_refs++, local_weak_refs++)
UNDELIVERED_DMESG = ByKernel({(6, 1): (
    user_error(r"got transaction with invalid offset \(200, min 200 max 224\) or object\.", 1,
               "binder_transaction (binder_get_object: unknown type -> 0)"),
    txn_failed("call", BR_FAILED_REPLY, -22, 1),
    Line(r"undelivered transaction \d+, process died\.", 1,
         "binder_release_work -> binder_cleanup_transaction (binder_debug BINDER_DEBUG_DEAD_TRANSACTION)"),
    # the Rust driver (Linux 7.3): the unknown type refused, and the exit's queued call cancelled
    rust_copy_failed(22, 1), rust_txn_failed("call", 22, 1),
    rust_line(r"\d+: undelivered transaction \d+, process died", 1,
              "transaction.rs Transaction::cancel (binder_debug! DeadTransaction)"))})
_NODE_WORK = ["BR_INCREFS", "BR_ACQUIRE", "BR_INCREFS"]  # nodes A (strong) and B (weak) made: binder_new_node
# their last refs dropped, by driver: binder.c queues node A's work (BR_RELEASE, BR_DECREFS) before
# node B's (BR_DECREFS) as binder_dec_node_nilocked runs for each; the Rust driver gives the same
# three, in either order (measured both ways: each node's work joins the owner's todo as its last
# ref goes in the receiver's deferred release)
NODE_GONE = {
    "c": (["BR_RELEASE", "BR_DECREFS", "BR_DECREFS"], "binder_transaction_buffer_release -> binder_dec_node_nilocked "
                                                      "-> binder_thread_read"),
    "rust": (["BR_DECREFS", "BR_RELEASE", "BR_DECREFS"], "node.rs Node::update_refcount -> process.rs "
                                                         "ProcessInner::push_work -> node.rs Node::do_work"),
}


def _order(brs: list[str] | None, ordered: bool) -> list[str] | None:
    """BRs as read, or sorted where the driver gives the nodes' work in no fixed order."""
    return brs if ordered or brs is None else sorted(brs)


def _extra(record: dict) -> list[str]:
    return [e.get("br") for e in record.get("extra") or []]


def _pipes_free(ctx: CaseContext, out, label: str, ref: str) -> None:
    got = [errno_name(result(out, f"undelivered.pipe_{k}")) for k in ("fd", "fda")]
    ctx.check(f"{label}: write into P and Q after the sender closes its fds", got, ["EPIPE", "EPIPE"], ref)


@case("objects.undelivered", expected_dmesg=(UNDELIVERED_DMESG,))
def undelivered(ctx: CaseContext) -> None:
    """Every object type (binder, weak binder, handle, weak handle, fd, fda, ptr) in a transaction
    that is never delivered: failed midway, superseded by TF_UPDATE_TXN, or queued to a process that
    is killed. Binder gives back every node, ref and file it took: the proc files show no node or
    ref of it, the sender's ref 0 keeps (s 1, w 1), its pipes lose their last reader when it closes
    its fds, and binder's stats are back to their baseline (the runner's accounting check)."""
    # failed midway
    out = ctx.run_probe("objects", kind="undelivered", mode="fail")
    probe_completed(ctx, out)
    call = result(out, "undelivered.call")
    ctx.check("fail: the call", call_outcome(call), "BR_FAILED_REPLY -22",
              "binder_transaction (binder_get_object: unknown type -> err_bad_offset)")
    ctx.check("fail: node BRs the sender read during and after the call",
              _extra(call) + (result(out, "undelivered.brs_after").get("brs") or []), [],
              "binder_transaction_buffer_release (is_failure) -> binder_dec_node_nilocked (nodes A and B "
              "had no has_strong_ref or has_weak_ref: their queued work is dequeued and they are freed)")
    ctx.check("fail: sender's nodes and refs in binder's proc file",
              (view_nodes(view(out, "after", "client")), view_refs(view(out, "after", "client"))), ([], OWN_REF_0),
              "binder_transaction_buffer_release (BINDER_TYPE_HANDLE: binder_dec_ref_for_handle; BINDER_TYPE_BINDER: "
              "binder_dec_node)")
    after = view(out, "after", "server")
    ctx.check("fail: receiver's refs, buffers and its node's (ls, lw) in binder's proc file",
              (view_refs(after), view_buffers(after), view_local_refs(after)),
              ([], [], printed_local_refs(after, {0: MANAGER_OWN})),
              "binder_transaction_buffer_release (the target's refs to A and B dropped; BINDER_TYPE_BINDER: "
              "binder_dec_node) -> binder_alloc_free_buf")
    _pipes_free(ctx, out, "fail", "binder_free_txn_fixups (fput of each fd's file on the error path)")

    # superseded by TF_UPDATE_TXN
    out = ctx.run_probe("objects", kind="undelivered", mode="update")
    probe_completed(ctx, out)
    for name in ("first", "second", "third"):
        oneway_to_frozen(ctx, f"update: {name} oneway", result(out, f"undelivered.{name}"))
    ctx.check("update: node BRs while queueing (second, third)",
              [_extra(result(out, "undelivered.second")), _extra(result(out, "undelivered.third"))],
              [_NODE_WORK, []], "binder_translate_binder -> binder_inc_ref_for_node (&thread->todo)")
    queued = view(out, "queued", "server")
    ctx.check("update: receiver's refs while the third waits (desc, dead, s, w): the second's are given back",
              view_refs(queued), [(1, False, 1, 0), (2, False, 0, 1)],
              "binder_proc_transaction (t_outdated) -> binder_release_entire_buffer -> binder_dec_ref_for_handle")
    ctx.check("update: receiver's buffers and pending work while the third waits",
              (view_buffers(queued), view_pending(queued)),
              (printed_buffers(queued, ["200:56:8", "8:0:0"]),
               [("pending async transaction", "200:56"), ("pending transaction", "8:0")]),
              "binder_proc_transaction (t_outdated: binder_alloc_free_buf of the second's buffer; the third on "
              "node->async_todo, the first on proc->todo)")
    ctx.check("update: the manager node's (ls, lw) while the third waits", view_local_refs(queued),
              printed_local_refs(queued, {0: (MANAGER_OWN[0] + 2 + 1, MANAGER_OWN[1] + 1)}),
              "binder_get_node_refs_for_txn (a strong local ref per queued transaction: first, third); "
              "binder_translate_handle (HANDLE 0 and WEAK_HANDLE 0 of the third: binder_inc_node)")
    ctx.check("update: sender's nodes while queued", sorted(view_nodes(view(out, "queued", "client"))),
              sorted([NODE_A, NODE_B]), "binder_new_node")
    _pipes_free(ctx, out, "update: the superseded call's", "binder_proc_transaction (t_outdated: binder_free_txn_fixups)")
    got = [(r.get("head"), [o.get("type") for o in _objects(r)]) for r in out.events("rx", role="server")]
    ctx.check("update: delivered after unfreezing (head, object types)", got,
              [(1, []), (3, ["BINDER_TYPE_HANDLE", "BINDER_TYPE_WEAK_HANDLE", "BINDER_TYPE_BINDER",
                             "BINDER_TYPE_WEAK_BINDER", "BINDER_TYPE_FD", "BINDER_TYPE_PTR", "BINDER_TYPE_FDA"])],
              "binder_find_outdated_transaction_ilocked; binder_translate_binder / binder_translate_handle")
    freed = result(out, "undelivered.server_freed")
    ctx.check("update: the receiver freed both delivered buffers (BC_FREE_BUFFER; the probe waits on that, "
              "not a clock, before reading the node BRs)", (errno_name(freed), freed.get("buffers")), ("0", 2),
              "binder_thread_write (BC_FREE_BUFFER) -> binder_free_buf")
    gone, gone_ref = ctx.by_driver(NODE_GONE)
    ordered = ctx.driver.name == "c"  # the Rust driver's node work order follows its deferred release
    ctx.check("update: node BRs after the receiver freed the third" + ("" if ordered else " (any order)"),
              _order(result(out, "undelivered.brs_after").get("brs"), ordered), _order(gone, ordered), gone_ref)
    ctx.check("update: sender's nodes and refs at the end",
              (view_nodes(view(out, "after", "client")), view_refs(view(out, "after", "client"))), ([], OWN_REF_0),
              "binder_thread_read (BINDER_WORK_NODE: no refs left -> binder_free_node)")
    after = view(out, "after", "server")
    ctx.check("update: receiver's refs, buffers and its node's (ls, lw) at the end",
              (view_refs(after), view_buffers(after), view_local_refs(after)),
              ([], [], printed_local_refs(after, {0: MANAGER_OWN})),
              "binder_transaction_buffer_release -> binder_alloc_free_buf")

    # released when the receiver exits
    out = ctx.run_probe("objects", kind="undelivered", mode="exit")
    probe_completed(ctx, out)
    oneway = result(out, "undelivered.oneway")
    ctx.check("exit: the oneway", call_outcome(oneway), "ok", "binder_transaction")
    ctx.check("exit: node BRs while queueing", _extra(oneway), _NODE_WORK, "binder_inc_ref_for_node (&thread->todo)")
    queued = view(out, "queued", "server")
    ctx.check("exit: receiver's refs while queued (desc, dead, s, w)", view_refs(queued),
              [(1, False, 1, 0), (2, False, 0, 1)], "binder_translate_binder (binder_inc_ref_for_node)")
    ctx.check("exit: receiver's buffers, pending work and its node's (ls, lw) while queued",
              (view_buffers(queued), view_pending(queued), view_local_refs(queued)),
              (printed_buffers(queued, ["200:56:8"]), [("pending transaction", "200:56")],
               printed_local_refs(queued, {0: (MANAGER_OWN[0] + 1 + 1, MANAGER_OWN[1] + 1)})),
              "binder_proc_transaction (proc->todo of a stopped receiver); binder_get_node_refs_for_txn; "
              "binder_translate_handle")
    ctx.check("exit: receiver's binder proc released", errno_name(result(out, "undelivered.server_released")), "0",
              "binder_deferred_release")
    ctx.check("exit: node BRs after the receiver's release" + ("" if ordered else " (any order)"),
              _order(result(out, "undelivered.brs_after").get("brs"), ordered), _order(gone, ordered), "binder_deferred_release (binder_free_ref -> binder_dec_node) -> binder_thread_read"
              if ctx.driver.name == "c" else f"process.rs Process::deferred_release / {gone_ref}")
    ctx.check("exit: sender's nodes and refs afterwards (ref 0 to a dead node)",
              (view_nodes(view(out, "after", "client")), view_refs(view(out, "after", "client"))),
              ([], [(0, True, 1, 1)]), "binder_node_release (dead node); binder_thread_read (binder_free_node)")
    _pipes_free(ctx, out, "exit", "binder_release_work -> binder_cleanup_transaction -> binder_free_transaction "
                                  "(binder_free_txn_fixups)")
