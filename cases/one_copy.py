"""one_copy: the receiver reads the sender's bytes straight from its own
read-only mapping, copied once by the kernel (DESIGN §4, the seed articles' claim)."""
from __future__ import annotations

from cases._expect import probe_completed
from cases._one_copy_checks import judge_delivery
from harness.cases import CaseContext, case
from harness.trace import (COPY_USER_TO_BUFFER, USERCOPY_CHECK, Kprobe, binder_transactions,
                           usercopies_in_binder_ioctl)

SIZES = (8, 4096, 10000, 65536, 1024 * 1024 - 8 * 1024)
MAP_BYTES = 4 * 1024 * 1024
DELIVERY_PROBES = (COPY_USER_TO_BUFFER, USERCOPY_CHECK)


def _delivery(ctx: CaseContext, mode: str) -> None:
    out = ctx.run_probe("sync", sizes=",".join(map(str, SIZES)), map=MAP_BYTES, mode=mode)
    judge_delivery(ctx, out, ctx.stop_trace(), SIZES, mode)


@case("one_copy.sync_sizes", kprobes=DELIVERY_PROBES)
def sync_sizes(ctx: CaseContext) -> None:
    """Synchronous calls of 8 B to 1 MiB-8 KiB land in the server's mapping, copied once."""
    _delivery(ctx, "call")


@case("one_copy.reply", kprobes=DELIVERY_PROBES)
def reply(ctx: CaseContext) -> None:
    """Replies of 8 B to 1 MiB-8 KiB land in the client's own mapping, copied once."""
    _delivery(ctx, "reply")


@case("one_copy.oneway", kprobes=DELIVERY_PROBES)
def oneway(ctx: CaseContext) -> None:
    """Oneway calls of 8 B to 1 MiB-8 KiB land in the server's mapping, copied once."""
    _delivery(ctx, "oneway")


# Byte counts of the two copies a pipe or an AF_UNIX stream makes. The copy
# primitives themselves (copy_page_{from,to}_iter, _copy_{from,to}_iter) are
# notrace on this kernel, so their callers' return values count the bytes.
PIPE_WRITE = Kprobe("pipe_write", "pipe_write ret=$retval:s64", ret=True)  # fs/pipe.c: copy_page_from_iter
PIPE_READ = Kprobe("pipe_read", "pipe_read ret=$retval:s64", ret=True)  # fs/pipe.c: copy_page_to_iter
UNIX_SEND = Kprobe("unix_send", "unix_stream_sendmsg ret=$retval:s64", ret=True)  # skb_copy_datagram_from_iter
SKB_TO_USER = Kprobe("skb_to_user", "skb_copy_datagram_iter len=$arg4:s32")  # unix_stream_read_actor
STREAM_SIZES = (4096, 65536, 1024 * 1024 - 8 * 1024)


def _sum_for_pid(trace, name: str, field: str, pid: int) -> int:
    return sum(max(0, e.int(field)) for e in trace.named(name) if e.pid == pid)


@case("one_copy.vs_pipe", kprobes=DELIVERY_PROBES + (PIPE_WRITE, PIPE_READ, UNIX_SEND, SKB_TO_USER), timeout=90)
def vs_pipe(ctx: CaseContext) -> None:
    """Kernel copies per payload byte, measured from the trace: binder 1, pipe 2, unix socket 2."""
    sizes = ",".join(map(str, STREAM_SIZES))
    payload = sum(STREAM_SIZES)
    binder = ctx.run_probe("sync", sizes=sizes, map=MAP_BYTES, mode="call")
    pipe = ctx.run_probe("stream", via="pipe", sizes=sizes)
    unix = ctx.run_probe("stream", via="unix", sizes=sizes)
    trace = ctx.stop_trace()
    for out in (binder, pipe, unix):
        probe_completed(ctx, out)

    roles = binder.one("roles") or {}
    calls = [t for t in binder_transactions(trace) if t.pid == roles.get("client_pid") and not t.reply]
    into_buffer = sum(t.copied_bytes for t in calls)
    # Any payload-sized copy out to the receiver would be a second copy; headers are 64 bytes.
    out_to_user = sum(n for n in usercopies_in_binder_ioctl(trace, roles.get("server_pid", -1)) if n > 64)
    per_byte = {"binder": (into_buffer + out_to_user) / payload}
    for name, out, send, recv, send_field, recv_field in (
            ("pipe", pipe, PIPE_WRITE, PIPE_READ, "ret", "ret"),
            ("unix_socket", unix, UNIX_SEND, SKB_TO_USER, "ret", "len")):
        r = out.one("roles") or {}
        sent = _sum_for_pid(trace, send.name, send_field, r.get("writer_pid", -1))
        received = _sum_for_pid(trace, recv.name, recv_field, r.get("reader_pid", -1))
        per_byte[name] = (sent + received) / payload
        ctx.evidence[f"{name}_bytes"] = {"into_kernel": sent, "out_to_user": received, "payload": payload}
        ctx.check(f"{name}: payload intact", all(s.get("pattern_ok") for s in out.events("stream")) and
                  len(out.events("stream")) == len(STREAM_SIZES), True, send.spec.split()[0])
    ctx.evidence["binder_bytes"] = {"into_buffer": into_buffer, "out_to_user": out_to_user, "payload": payload}
    ctx.evidence["copies_per_byte"] = {k: round(v, 3) for k, v in per_byte.items()}
    ctx.check("binder: kernel copies per payload byte", round(per_byte["binder"], 3), 1.0,
              "binder_transaction -> binder_alloc_copy_user_to_buffer")
    ctx.check("pipe: kernel copies per payload byte", round(per_byte["pipe"], 3), 2.0,
              "pipe_write (copy_page_from_iter) + pipe_read (copy_page_to_iter)")
    ctx.check("unix socket: kernel copies per payload byte", round(per_byte["unix_socket"], 3), 2.0,
              "unix_stream_sendmsg (skb_copy_datagram_from_iter) + skb_copy_datagram_iter")


PAGE_EVENTS = ("binder/binder_alloc_page_start", "binder/binder_alloc_lru_start", "binder/binder_update_page_range")


@case("one_copy.lazy_pages", kprobes=(COPY_USER_TO_BUFFER,), events=PAGE_EVENTS)
def lazy_pages(ctx: CaseContext) -> None:
    """Pages are allocated when a buffer first needs them (10000 B: 3 pages) and reused from the LRU."""
    out = ctx.run_probe("lazy", map=MAP_BYTES, size=10000, touch="0,12288,2097152")
    trace = ctx.stop_trace()
    probe_completed(ctx, out)
    roles = out.one("roles") or {}
    calls = [t for t in binder_transactions(trace) if t.pid == roles.get("client_pid") and not t.reply]
    ctx.check("transactions traced", len(calls), 2, "binder_transaction")
    if len(calls) >= 2:
        first, second = calls[0], calls[1]
        ctx.check("first 10000-byte buffer: fresh pages allocated", first.pages_allocated, 3,
                  "binder_update_page_range (binder_alloc_page_start)")
        ctx.check("first buffer: pages taken from the LRU", first.pages_from_lru, 0, "binder_update_page_range")
        ctx.check("second buffer: fresh pages allocated", second.pages_allocated, 0,
                  "binder_update_page_range")
        ctx.check("second buffer: pages reused from the LRU", second.pages_from_lru, 3,
                  "binder_update_page_range (binder_alloc_lru_start)")
        ctx.evidence["pages"] = [{"debug_id": t.debug_id, "allocated": t.pages_allocated, "from_lru": t.pages_from_lru}
                                 for t in calls]
    rx = out.events("rx", role="server")
    ctx.check("both buffers at offset 0 of the area", [r.get("buf_off") for r in rx], [0, 0],
              "binder_alloc_new_buf_locked")
    touches = {t["offset"]: t.get("signal") for t in out.events("touch")}
    ctx.evidence["touches"] = touches
    ctx.check("read of a filled page (offset 0)", touches.get(0, "missing"), None, "binder_vm_fault (page present)")
    ctx.check("read of a never-filled page (offset 12288)", touches.get(12288, "missing"), "SIGBUS",
              "binder_vm_fault -> VM_FAULT_SIGBUS")
    ctx.check("read of a never-filled page (offset 2 MiB)", touches.get(2097152, "missing"), "SIGBUS",
              "binder_vm_fault -> VM_FAULT_SIGBUS")


PERF_SIZES = (8, 4096, 65536, 1024 * 1024 - 8 * 1024)


@case("one_copy.perf", timeout=30)
def perf(ctx: CaseContext) -> None:
    """Binder round-trip latency and throughput by payload size, against a pipe round trip of
    the same size, measured in the guest (figures, not verdicts: under TCG they compare only
    within one run)."""
    out = ctx.run_probe("perf", sizes=",".join(map(str, PERF_SIZES)), map=MAP_BYTES, iters=200, budget_ms=150)
    probe_completed(ctx, out)
    by = {(r.get("via"), r.get("size")): r for r in out.events("perf")}
    rows = []
    for size in PERF_SIZES:
        b, p = by.get(("binder", size), {}), by.get(("pipe", size), {})
        ctx.check_that(f"{size} B: binder and pipe round trips measured",
                       bool(b.get("ok") and p.get("ok") and b.get("iters") and p.get("iters")),
                       f"binder {b.get('iters', 0)} ok={b.get('ok')}, pipe {p.get('iters', 0)} ok={p.get('ok')}",
                       "both measured", "binder_thread_write/binder_transaction; pipe_write/pipe_read")
        if b and p:
            rows.append({"size": size, "binder_rtt_us": b.get("median_us"), "pipe_rtt_us": p.get("median_us"),
                         "binder_p90_us": b.get("p90_us"), "pipe_p90_us": p.get("p90_us"),
                         "binder_mb_s": b.get("mb_s"), "pipe_mb_s": p.get("mb_s"),
                         "binder_iters": b.get("iters"), "pipe_iters": p.get("iters")})
    ctx.evidence["perf"] = {"sizes": rows, "unit": "median microseconds per round trip; MB/s of payload",
                            "binder": "call of SIZE bytes + empty reply, buffers freed",
                            "pipe": "SIZE bytes down one pipe + 8-byte ack up another"}
