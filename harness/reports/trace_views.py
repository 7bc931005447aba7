"""Views of a parsed binder trace for people: per-transaction timelines and
buffer-space use over a case. Pure functions over harness.evidence.trace.Trace.

Kernel facts used (drivers/android, Linux 6.1):
- binder_transaction() traces binder_transaction, then allocates the target
  buffer (binder_transaction_alloc_buf), then copies with
  binder_alloc_copy_user_to_buffer, all in the sender's thread;
- binder_thread_read() traces binder_transaction_received in the receiver;
- binder_alloc_new_buf_locked() takes ALIGN(data_size, 8) + ALIGN(offsets_size, 8)
  + ALIGN(extra_buffers_size, 8) bytes (at least 8) from the receiver's area;
- BC_FREE_BUFFER (binder_command) returns one buffer to the caller's own area.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from harness.evidence.trace import Trace, TraceEvent
from harness.evidence.kprobes import COPY_USER_TO_BUFFER

BC_FREE_BUFFER = "BC_FREE_BUFFER"


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _field(ev: TraceEvent, key: str, base: int = 0, default: str | None = None) -> int | None:
    """A numeric field of ev, or None when it is missing or not a number (a truncated or
    foreign line): such an event is left out of the views, never raised over the report."""
    text = ev.fields.get(key, default)
    try:
        return int(text, base) if text is not None else None
    except ValueError:
        return None


@dataclass
class TransactionTimeline:
    debug_id: int
    sender: int  # thread id
    receiver: int  # dest_proc
    oneway: bool
    data_size: int | None = None
    marks: list[tuple[str, float]] = field(default_factory=list)  # (kind, seconds in trace clock)
    copied: list[int] = field(default_factory=list)  # bytes per user->buffer copy

    @property
    def start(self) -> float:
        return self.marks[0][1]

    @property
    def end(self) -> float:
        return max(t for _, t in self.marks)


def transaction_timelines(trace: Trace) -> list[TransactionTimeline]:
    """Each non-reply transaction with send, alloc_buf, copy, receive and reply marks."""
    out: dict[int, TransactionTimeline] = {}
    current: dict[int, TransactionTimeline] = {}  # sender pid -> transaction being built
    awaiting_reply: dict[int, TransactionTimeline] = {}  # client thread -> its call
    replies: dict[int, TransactionTimeline] = {}  # reply debug id -> the call it answers
    for ev in trace.events:
        if ev.name == "binder_transaction":
            _on_transaction(ev, out, current, awaiting_reply, replies)
        elif ev.name == "binder_transaction_alloc_buf":
            tid = _field(ev, "transaction")
            txn = out.get(tid) if tid is not None else None
            if txn is not None:
                txn.marks.append(("alloc_buf", ev.ts))
                txn.data_size = _field(ev, "data_size")
        elif ev.name == COPY_USER_TO_BUFFER.name:
            txn = current.get(ev.pid)
            copied = _field(ev, "bytes")
            if txn is not None and copied is not None:
                txn.marks.append(("copy", ev.ts))
                txn.copied.append(copied)
        elif ev.name == "binder_transaction_received":
            tid = _field(ev, "transaction")
            if tid is None:
                continue
            if tid in out:
                out[tid].marks.append(("receive", ev.ts))
            elif tid in replies:
                replies[tid].marks.append(("reply received", ev.ts))
        elif ev.name == "binder_ioctl_done":
            current.pop(ev.pid, None)
    return [t for t in out.values() if t.marks]


def _on_transaction(ev: TraceEvent, out, current, awaiting_reply, replies) -> None:
    tid = _field(ev, "transaction")
    current.pop(ev.pid, None)
    if tid is None:
        return
    if ev.fields.get("reply") == "1":
        call = awaiting_reply.pop(_field(ev, "dest_thread", 10, "0"), None)
        if call is not None:
            call.marks.append(("reply", ev.ts))
            replies[tid] = call
        return
    flags, dest = _field(ev, "flags", 16, "0"), _field(ev, "dest_proc", 10, "0")
    if flags is None or dest is None:
        return
    txn = TransactionTimeline(tid, ev.pid, dest, bool(flags & 0x01))
    txn.marks.append(("send", ev.ts))
    out[tid] = txn
    current[ev.pid] = txn
    if not txn.oneway:
        awaiting_reply[ev.pid] = txn


@dataclass
class BufferUse:
    """Bytes held in one process's binder area over time (seconds in trace clock)."""

    pid: int
    points: list[tuple[float, int]] = field(default_factory=list)
    peak: int = 0
    allocs: int = 0
    frees: int = 0


def buffer_use(trace: Trace) -> dict[int, BufferUse]:
    """Outstanding buffer bytes per receiving process.

    The trace names the area (dest_proc) and size of each allocation, but not
    which buffer a BC_FREE_BUFFER returns, so a free is taken to return that
    process's oldest outstanding buffer (exact for one call at a time).
    """
    dest_of: dict[int, int] = {}
    outstanding: dict[int, deque[int]] = {}
    use: dict[int, BufferUse] = {}
    for ev in trace.events:
        if ev.name == "binder_transaction":
            tid, dest = _field(ev, "transaction"), _field(ev, "dest_proc", 10, "0")
            if tid is not None and dest is not None:
                dest_of[tid] = dest
        elif ev.name == "binder_transaction_alloc_buf":
            tid = _field(ev, "transaction")
            owner = dest_of.get(tid) if tid is not None else None
            sizes = [_field(ev, "data_size"), _field(ev, "offsets_size"), _field(ev, "extra_buffers_size", 0, "0")]
            if owner is None or None in sizes:
                continue
            size = max(8, sum(_align8(n) for n in sizes if n is not None))
            outstanding.setdefault(owner, deque()).append(size)
            _record(use.setdefault(owner, BufferUse(owner)), ev.ts, outstanding[owner], alloc=True)
        elif ev.name == "binder_command" and ev.body.rstrip().endswith(BC_FREE_BUFFER):
            owner = ev.tgid if ev.tgid is not None else ev.pid
            queue = outstanding.get(owner)
            if queue:
                queue.popleft()
                _record(use[owner], ev.ts, queue, alloc=False)
    return use


def _record(u: BufferUse, ts: float, queue: deque[int], alloc: bool) -> None:
    held = sum(queue)
    u.points.append((ts, held))
    u.peak = max(u.peak, held)
    if alloc:
        u.allocs += 1
    else:
        u.frees += 1
