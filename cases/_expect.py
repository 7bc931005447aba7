"""Small helpers the case modules share for reading probe results."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from harness.evidence.debugfs import ProcView, parse_proc_view
from harness.judging.context import CaseContext
from harness.judging.verdicts import Line
from harness.evidence.probe import ProbeOutput


# -- the binder lines a case provokes: its expected_dmesg ----------------------------------------
# Each Line matches a whole message after "binder_linux: ". On 6.1 binder_user_error and
# binder_debug (and binder_txn_error, which is binder_debug) are functions, each with one printk
# rate limit (10 lines per 5 s) for all their callers; binder_alloc_debug is a macro, with one
# per call site; pr_err and pr_info have none. A case that provokes more than a limit lets
# through declares no count for those lines.
PIDS = r"\d+:\d+ "  # "%d:%d " of proc->pid, thread->pid that most binder.c lines begin with
# The error BR binder_transaction's error exit prints in decimal (return_error)
BR_DEAD_REPLY, BR_FAILED_REPLY, BR_FROZEN_REPLY = 29189, 29201, 29202


def txn_failed(kind: str, br: int, param: int, count: int | None) -> Line:
    """binder_transaction's error exit: "transaction call|async|reply to P:T failed ID/BR/PARAM,
    size D-O line L"; 7.2 (measured 7.2.13) also prints the transaction's code before the size."""
    return Line(rf"{PIDS}transaction {kind} to \d+:\d+ failed \d+/{br}/{param},(?: code \d+)? size \d+-\d+ line \d+",
                count,
                "binder_transaction (error exit: binder_debug BINDER_DEBUG_FAILED_TRANSACTION)")


def user_error(text: str, count: int | None, ref: str) -> Line:
    """A binder_user_error line "P:T text" (text a regex), printed by `ref`."""
    return Line(PIDS + text, count, f"{ref} (binder_user_error)")


def txn_error(text: str, count: int | None, ref: str = "binder_transaction") -> Line:
    """A binder_txn_error line (binder_debug BINDER_DEBUG_FAILED_TRANSACTION), e.g. "cannot find target node"."""
    return Line(text, count, f"{ref} (binder_txn_error)")


def ioctl_error(cmd: int, arg: str, errno: int, count: int) -> Line:
    """binder_ioctl's exit: pr_info "P:T ioctl CMD ARG returned -ERRNO" for any error but -EINTR (no rate limit)."""
    return Line(rf"{PIDS}ioctl {cmd:x} {arg} returned -{errno}", count, "binder_ioctl (err: pr_info)")


# -- the Rust driver's lines (drivers/android/binder/, Linux 7.3) ----------------------------------
# pr_warn!/pr_err! and binder_debug! (debug.rs: pr_info! "{tgid}:{pid} ..." under
# rust_binder_debug_mask, UserError | FailedTransaction | DeadTransaction by default) print with no
# rate limit, so every Rust line a case provokes is counted exactly. Refs name "FILE.rs Type::fn".
def rust_line(text: str, count: int | None, ref: str) -> Line:
    """A Rust-driver line (text a regex of the whole message after "rust_binder: "), printed by `ref`."""
    return Line(text, count, ref, driver="rust")


def rust_txn_failed(kind: str, errno: int, count: int) -> Line:
    """Thread::transaction's error exit (binder_debug! FailedTransaction): "P:T transaction
    call|async|reply to P:T failed Error(ERRNO), code C size D-O"."""
    return rust_line(rf"{PIDS}transaction {kind} to \d+:\d+ failed Error\({errno}\), code \d+ size \d+-\d+", count,
                     "thread.rs Thread::transaction (binder_debug! FailedTransaction)")


def rust_copy_failed(errno: int, count: int, reply: bool = False) -> Line:
    """Transaction::new (new_reply for a reply) when copy_transaction_data fails:
    "Failure in copy_transaction_data: Error(ERRNO)"."""
    fn = "new_reply" if reply else "new"
    return rust_line(rf"Failure in copy_transaction_data: Error\({errno}\)", count,
                     f"transaction.rs Transaction::{fn} (pr_warn!)")


def rust_alloc_failed(size: int | str, oneway: bool, count: int) -> Line:
    """Thread::copy_transaction_data when the receiver's buffer_alloc fails: "Failed to allocate
    buffer. len:LEN, is_oneway:BOOL"."""
    return rust_line(rf"Failed to allocate buffer\. len:{size}, is_oneway:{str(oneway).lower()}", count,
                     "thread.rs Thread::copy_transaction_data (pr_warn!)")


def rust_rw_failure(which: str, errno: int, count: int | None) -> Line:
    """Thread::write_read when the write or read part fails (not EINTR): "Write failure Error(E) in
    pid:P" / "Read failure Err(Error(E)) in pid:P"."""
    err = rf"Err\(Error\({errno}\)\)" if which == "Read" else rf"Error\({errno}\)"
    return rust_line(rf"{which} failure {err} in pid:\d+", count, "thread.rs Thread::write_read (pr_warn!)")


def probe_completed(ctx: CaseContext, out: ProbeOutput) -> bool:
    """The probe ran the scenario to its end (setup failures are not driver verdicts)."""
    done = out.done or {}
    if done.get("ok"):
        measured = f"done ok (exit {out.status})"
    else:
        measured = done.get("error") or f"no done line (exit {out.status}): {out.stderr.strip()[:120]}"
    return ctx.check_that("probe ran to completion", bool(done.get("ok")), measured, "done ok", "probe")


# A oneway that binder_proc_transaction queued for a frozen process is accepted on every
# version; what tells the sender so changed. Keyed by the first Linux (major, minor) with the
# behaviour: (the BR that ends the call, the function and version it comes from).
ONEWAY_TO_FROZEN_BR = {
    (6, 1): ("BR_TRANSACTION_COMPLETE", "binder_transaction (6.1: tcomplete is BINDER_WORK_TRANSACTION_COMPLETE)"),
    (6, 4): ("BR_TRANSACTION_PENDING_FROZEN", "binder_transaction (>= 6.4: BR_TRANSACTION_PENDING_FROZEN from "
                                              "binder_proc_transaction makes tcomplete BINDER_WORK_TRANSACTION_PENDING)"),
}


# Where binder's allocator gets a buffer's pages, keyed by the first Linux (major, minor) with that
# code. 6.8's allocator rework split binder_update_page_range: pages are installed by
# binder_install_buffer_pages (binder_install_single_page), taken off the LRU by
# binder_lru_freelist_del and put back on it by binder_lru_freelist_add; the trace events
# (binder_alloc_page_start, binder_alloc_lru_start) kept their names. The counts are the same.
@dataclass(frozen=True)
class PageFunctions:
    fresh: str  # a page the buffer needs for the first time
    from_lru: str  # a page taken back off the LRU for a new buffer
    to_lru: str  # a freed buffer's pages put on the LRU


PAGE_FUNCTIONS = {
    (6, 1): PageFunctions(fresh="binder_update_page_range (binder_alloc_page_start)",
                          from_lru="binder_update_page_range (binder_alloc_lru_start)",
                          to_lru="binder_free_buf -> binder_update_page_range (list_lru_add)"),
    (6, 8): PageFunctions(fresh="binder_install_buffer_pages (binder_alloc_page_start)",
                          from_lru="binder_lru_freelist_del (binder_alloc_lru_start)",
                          to_lru="binder_free_buf_locked -> binder_lru_freelist_add"),
}


def oneway_to_frozen(ctx: CaseContext, name: str, record: dict) -> None:
    """A oneway to a frozen process: accepted, and ended by this kernel's BR for it."""
    ctx.check(f"{name}: accepted", call_outcome(record), "ok", "binder_proc_transaction (async work queued while frozen)")
    br, ref = ctx.by_kernel(ONEWAY_TO_FROZEN_BR)
    ending = [b for b in record.get("br", []) if b in ("BR_TRANSACTION_COMPLETE", "BR_TRANSACTION_PENDING_FROZEN")]
    ctx.check(f"{name}: the BR that ends it", ending, [br], ref)


def call_outcome(record: dict | None) -> str:
    """'ok', or the error BR code with the extended error param, e.g. 'BR_FAILED_REPLY -28'."""
    if record is None:
        return "missing"
    if record.get("status") == "ok":
        return "ok"
    brs = [b for b in record.get("br", []) if b != "BR_TRANSACTION_COMPLETE"]
    param = (record.get("ext_err") or {}).get("param")
    return f"{brs[-1] if brs else record.get('status')} {param}"


# What sets BINDER_GET_EXTENDED_ERROR after a failed transaction, by driver (uapi binder.h struct
# binder_extended_error: @command is the BR_* error the caller got, @param its negative errno).
EXT_ERROR_SET_BY = {
    "c": "binder_transaction (error exit: binder_set_extended_error(&thread->ee, t_debug_id, return_error, "
         "return_error_param))",
    "rust": "thread.rs Thread::transaction (inner.extended_error = ExtendedError::new(..), only when the "
            "error has a source errno)",
}


def ext_error_names_failure(ctx: CaseContext, name: str, record: dict) -> None:
    """After a call that failed, BINDER_GET_EXTENDED_ERROR names the failure: its command is the
    error BR the caller read (the probe reads it right after)."""
    errors = [b for b in record.get("br", []) if b in ("BR_FAILED_REPLY", "BR_DEAD_REPLY", "BR_FROZEN_REPLY")]
    ext = record.get("ext_err") or {}
    ctx.check(f"{name}: BINDER_GET_EXTENDED_ERROR command", ext.get("command_name", "missing"),
              errors[-1] if errors else "an error BR", ctx.by_driver(EXT_ERROR_SET_BY))


def result(out: ProbeOutput, name: str, **match) -> dict:
    """The first `result` line with this name (and fields), or an empty dict."""
    return out.one("result", name=name, **match) or {}


def errno_name(record: dict) -> str:
    return record.get("errno_name") or ("0" if record.get("errno") == 0 else str(record.get("errno", "missing")))


# The name of note_dmesg's check begins with this, then the line's text and ")".
LOG_LINE_CHECK = "the driver's kernel log line ("


def note_dmesg(ctx: CaseContext, text: str, ref: str, exact: str, driver: str = "c") -> None:
    """The driver's log line, written by the kernel function `ref` of `driver` (drivers.py: "c" or
    "rust"; nothing is checked where another driver serves): on a pristine guest (the
    case's own restore or boot) the case's kernel log must hold a whole line matching the
    regular expression `exact`.

    binder's user-error lines go through pr_info_ratelimited (10 per 5 s per call site), so on
    a guest that earlier cases used (--shared-boot) a line is legitimately missing when one of
    them used up the burst: there whether `text` appeared is recorded as evidence, not checked.
    """
    if ctx.driver.name != driver:
        return
    log = ctx.dmesg()
    ctx.evidence.setdefault("dmesg_mentions", {})[text] = text in log
    if ctx.pristine:
        line = re.search(r"^\[[\s\d.]+\] (?:\S+: )?(" + exact + r")\s*$", log, re.M)
        first = next((l for l in log.splitlines() if text in l), "missing")
        ctx.check_that(f"{LOG_LINE_CHECK}{text})", line is not None,
                       line.group(1) if line else first, f"a whole line matching /{exact}/",
                       f"{ref} (rate-limited: asserted on a pristine guest)")


# -- binder's view of a process: the probe's proc_view lines (proc/PID, print_binder_proc) --------
# Each proc_view record holds the whole file as printed ("lines"); harness/evidence/debugfs.py
# parse_proc_view reads it, and expect_proc asserts it against what the probe believes exists.
_TXN_SIZE = re.compile(r" size (\d+:\d+)")


def view(out: ProbeOutput, at: str, who: str) -> dict:
    """The proc_view line printed at checkpoint `at` for `who` (client, server, manager), or {}."""
    return out.one("proc_view", at=at, who=who) or {}


def proc_view(record: dict) -> ProcView:
    """A proc_view record, parsed (an empty view when the record is missing)."""
    return parse_proc_view("\n".join(record.get("lines") or []))


def view_refs(record: dict) -> list[tuple[int, bool, int, int]]:
    """(desc, node dead, strong, weak) of each ref line (print_binder_ref_olocked), in order."""
    return [(r.desc, r.dead, r.strong, r.weak) for r in proc_view(record).refs]


def view_nodes(record: dict) -> list[int]:
    """The ptr of each node line (print_binder_node_nilocked "node N: uPTR cCOOKIE ..."), in order."""
    return [n.ptr for n in proc_view(record).nodes]


def view_local_refs(record: dict) -> dict[int, tuple[int | None, int | None]]:
    """Each node's (local_strong_refs, local_weak_refs) by ptr ("ls N lw N" of its node line); None
    where the driver does not print them (the Rust driver: ProcView.not_counted)."""
    return {n.ptr: (n.local_strong, n.local_weak) for n in proc_view(record).nodes}


def view_buffers(record: dict) -> list[str]:
    """Each allocated buffer's "data:offsets:extra" size (binder_alloc_print_allocated), sorted; the
    whole size where the driver prints one size (the Rust driver)."""
    return sorted(b.size for b in proc_view(record).buffers)


def printed_buffers(record: dict, buffers: list[str]) -> list[str]:
    """Expected buffers ("data:offsets:extra") as the driver that printed `record` prints them: the
    Rust driver prints one whole size per allocation (ProcView.not_counted "buffer sizes")."""
    if "buffer sizes" in proc_view(record).not_counted:
        return sorted(str(_whole_size(b)) for b in buffers)
    return buffers


def printed_local_refs(record: dict, local_refs: dict[int, tuple[int, int]]) -> dict[int, tuple[int | None, int | None]]:
    """Expected nodes' local refs ({ptr: (ls, lw)}) as the driver that printed `record` prints them:
    the Rust driver prints none (ProcView.not_counted "node local refs"), so only the ptrs are kept."""
    if "node local refs" in proc_view(record).not_counted:
        return {ptr: (None, None) for ptr in local_refs}
    return dict(local_refs)


def view_pending(record: dict) -> list[tuple[str, str]]:
    """Each pending transaction's (kind, "data:offsets" size) (print_binder_transaction_ilocked), sorted."""
    out = []
    for w in proc_view(record).work:
        m = _TXN_SIZE.search(w.text)
        if w.type == "TRANSACTION" and m:
            out.append((w.text.split(" transaction ")[0] + " transaction", m.group(1)))
    return sorted(out)


@dataclass(frozen=True)
class Ref:
    """A ref the probe believes its process holds: handle `desc`, strong and weak counts, whether a
    death notification is registered on it and whether its node's process is gone."""

    desc: int
    strong: int
    weak: int
    death: bool = False
    dead: bool = False


@dataclass(frozen=True)
class Node:
    """A node the probe believes its process owns: its ptr and cookie, has_strong/has_weak (the
    owner acknowledged BR_ACQUIRE/BR_INCREFS), local strong/weak refs and the number of refs on it."""

    ptr: int
    cookie: int
    has_strong: int
    has_weak: int
    local_strong: int
    local_weak: int
    refs: int


_REFS_FN = "print_binder_ref_olocked (ref->data.strong / weak, ref->death)"
_NODES_FN = ("print_binder_node_nilocked (has_strong_ref, has_weak_ref, local_strong_refs, local_weak_refs, "
             "its refs)")
_WORK_FN = ("print_binder_work_ilocked (proc->todo, thread->todo, node->async_todo by binder_work type); "
            "print_binder_proc (has delivered dead binder)")
_BUFFERS_FN = "print_binder_buffer (binder_alloc_print_allocated: data:offsets:extra, active|delivered)"
# Each driver's printer of each aspect of proc/PID
PROC_PRINTERS = {
    "c": {"refs": _REFS_FN, "nodes": _NODES_FN, "work": _WORK_FN, "buffers": _BUFFERS_FN},
    "rust": {"refs": "process.rs Process::debug_print (ref: desc, dead, s, w)",
             "nodes": "node.rs Node::full_debug_print (hs, hw, one proc per ref)",
             "work": "thread.rs Thread::debug_print / process.rs Process::debug_print (queued work)",
             "buffers": "range_alloc/array.rs ArrayRangeAllocator::debug_print (offset, size)"},
}


# The context manager's own node, as binder_ioctl_set_ctx_mgr leaves it (has_strong_ref, has_weak_ref,
# local_strong_refs++, local_weak_refs++), with `extra_strong` strong local refs more (one per
# transaction whose buffer targets it: binder_get_node_refs_for_txn) and `refs` refs on it.
def manager_node(extra_strong: int = 0, refs: int = 0) -> Node:
    return Node(0, 0, 1, 1, 1 + extra_strong, 1, refs)


# Work queued on the context manager's process from BINDER_SET_CONTEXT_MGR itself, by driver: none
# on binder.c (binder_ioctl_set_ctx_mgr sets the node's counts directly); the Rust driver takes the
# node's first ref through process.rs ProcessInner::new_node_ref_with_thread, which leaves a NODE
# work item deferred on the thread that made the call (thread.rs Thread::push_work_deferred),
# delivering nothing (node.rs Node::force_has_count), until that thread next reads.
MANAGER_OWN_WORK = {"c": {}, "rust": {"NODE": 1}}


def manager_work(ctx: CaseContext, work: dict[str, int]) -> dict[str, int]:
    """`work` queued on the context manager's process, plus what BINDER_SET_CONTEXT_MGR left there
    on this driver (MANAGER_OWN_WORK), for a manager whose calling thread has not read since."""
    out = dict(work)
    for kind, n in ctx.by_driver(MANAGER_OWN_WORK).items():
        out[kind] = out.get(kind, 0) + n
    return out


def expect_proc(ctx: CaseContext, out: ProbeOutput, at: str, who: str, why: str, *,
                refs: list[Ref] | None = None, nodes: list[Node] | None = None,
                work: dict[str, int] | None = None, buffers: list[str] | None = None) -> None:
    """binder's proc/PID of `who` at checkpoint `at` against what the probe believes exists there,
    each aspect given checked exactly: its refs (sorted by desc), its nodes (by ptr), the work
    queued anywhere in the process by BINDER_WORK type, and its allocated buffers ("data:offsets:extra
    state"). `why` names what the probe did to get there (the kernel function that made it so)."""
    record = view(out, at, who)
    if not record:
        ctx.check(f"binder's view of the {who} at {at}: a proc_view was printed", False, True, "probe")
        return
    v = proc_view(record)
    label = f"binder's view of the {who} at {at}"
    ctx.check(f"{label}: proc/PID readable and parsed whole",
              (record.get("exists"), record.get("truncated"), v.bad_lines[:1]), (True, False, []),
              "print_binder_proc (binder_proc_show)")
    # What the driver's file does not print is not judged as if it were zero: each aspect compares
    # the fields the driver prints (ProcView.not_counted names the others, kept as evidence).
    printer = ctx.by_driver(PROC_PRINTERS)
    if v.not_counted:
        ctx.evidence.setdefault("proc_view_not_counted", {}).update(v.not_counted)
    if refs is not None:
        death = "ref death" not in v.not_counted
        def ref_key(r: Any) -> tuple:  # a Ref expected or a RefView printed
            return (r.desc, r.strong, r.weak, r.death, r.dead) if death else (r.desc, r.strong, r.weak, r.dead)
        ctx.check(f"{label}: refs (desc, s, w{', death' if death else ''}, dead)",
                  sorted(map(ref_key, v.refs)), sorted(map(ref_key, refs)), f"{printer['refs']}; {why}")
    if nodes is not None:
        local = "node local refs" not in v.not_counted
        def node_key(n: Any) -> tuple:  # a Node expected or a NodeView printed
            return ((n.ptr, n.cookie, n.has_strong, n.has_weak, n.local_strong, n.local_weak, n.refs) if local
                    else (n.ptr, n.cookie, n.has_strong, n.has_weak, n.refs))
        ctx.check(f"{label}: nodes (ptr, cookie, hs, hw{', ls, lw' if local else ''}, refs)",
                  sorted(map(node_key, v.nodes)), sorted(map(node_key, nodes)), f"{printer['nodes']}; {why}")
    if work is not None:
        ctx.check(f"{label}: queued work by type", v.work_by_type(), dict(sorted(work.items())),
                  f"{printer['work']}; {why}")
    if buffers is not None:
        if "buffer sizes" in v.not_counted:  # one size per allocation: data, offsets and extra, each 8-aligned
            ctx.check(f"{label}: allocated buffers (whole size)", sorted(b.data_size for b in v.buffers),
                      sorted(_whole_size(b) for b in buffers), f"{printer['buffers']}; {why}")
        else:
            ctx.check(f"{label}: allocated buffers", sorted(f"{b.size} {b.state}" for b in v.buffers), sorted(buffers),
                      f"{printer['buffers']}; {why}")


def _whole_size(buffer: str) -> int:
    """An allocation's one size as the Rust driver prints it, from binder.c's "data:offsets:extra
    state" (thread.rs Thread::copy_transaction_data: len = aligned data + aligned offsets + buffers)."""
    data, offsets, extra = (int(x) for x in buffer.split()[0].split(":"))
    return -(-data // 8) * 8 + -(-offsets // 8) * 8 + extra
