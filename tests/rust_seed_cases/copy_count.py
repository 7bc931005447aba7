"""The one-copy measure for the Rust seed `rust_double_copy`, with a plain kprobe of its own,
until the catalog's traced Rust one-copy verdict lands (issue 24, branch rtrace).

It counts the bytes the Rust driver copies from the sender's user memory into the receiver's
buffer: `Allocation::copy_into` (drivers/android/binder/allocation.rs), the function
`Thread::copy_transaction_data` (thread.rs) calls for every raw data region, with its `size`
(the fourth argument: &self, reader, offset, size). A call without objects copies its whole data
region in one `copy_into`, and writes its offsets with `Allocation::write`, so the bytes traced for
the sender equal the payload: 1.0 copies per payload byte.

The symbol is Rust's v0 mangling, whose crate hash (`CsbFXD6CMuNu5`) comes from the crate name
and rustc's flags, not the source: it is the same in the stock qemu-x86_64-7.3-rust kernel and
every seeded one built from its tree (tests/test_rust_seeded.py checks it is in each kernel's
System.map before it runs). The case arms and reads its kprobe itself (the harness's own
arming enables the C driver's binder:* events, which the Rust kernel does not have). Loaded only with BINDER_HARNESS_EXTRA_CASES.
"""
from __future__ import annotations

from cases._expect import probe_completed
from cases.one_copy import MAP_BYTES, SIZES
from harness.evidence.trace import parse_ftrace
from harness.judging.catalog import CaseSkipped, case
from harness.judging.context import CaseContext

COPY_INTO_SYMBOL = "_RNvMNtCsbFXD6CMuNu5_11rust_binder10allocationNtB2_10Allocation9copy_into"
GROUP, EVENT = "rust_seed", "copy_into"
CHECK = "kernel copies per payload byte (traced Allocation::copy_into"  # the check's name starts so


def _arm(t: str) -> str:
    return "\n".join([
        f"echo 0 > {t}/tracing_on", f"echo > {t}/trace",
        f"echo 'p:{GROUP}/{EVENT} {COPY_INTO_SYMBOL} size=$arg4:u64' >> {t}/kprobe_events || exit 3",
        f"echo 1 > {t}/events/{GROUP}/{EVENT}/enable || exit 3", f"echo 1 > {t}/tracing_on"])


def _collect(t: str) -> str:
    return "\n".join([f"echo 0 > {t}/tracing_on", f"cat {t}/trace",
                      f"echo 0 > {t}/events/{GROUP}/{EVENT}/enable", f"echo '-:{GROUP}/{EVENT}' >> {t}/kprobe_events"])


@case("rust_seed.copy_count")
def copy_count(ctx: CaseContext) -> None:
    """Synchronous calls of 8 B to 1 MiB-8 KiB: the Rust driver copies each payload byte once."""
    t = ctx.tracefs
    if t is None:
        raise CaseSkipped(f"{ctx.target.spec} has no tracefs")
    armed = ctx.run(["sh", "-c", _arm(t)])
    if not armed.ok:
        raise CaseSkipped(f"cannot place the kprobe on {COPY_INTO_SYMBOL} (status {armed.status}): "
                          f"{armed.output.strip()[-200:]}")
    out = ctx.run_probe("sync", sizes=",".join(map(str, SIZES)), map=MAP_BYTES, mode="call")
    trace = parse_ftrace(ctx.run(["sh", "-c", _collect(t)], timeout=60).output)
    probe_completed(ctx, out)
    sender = (out.one("roles") or {}).get("client_pid")
    rx = out.events("rx", role="server") or out.events("rx")
    ctx.check("payloads received intact (pattern_ok per call)", [r.get("pattern_ok") for r in rx],
              [True] * len(SIZES), "Allocation::copy_into")
    copies = [e.int("size") for e in trace.named(EVENT) if e.pid == sender]
    payload = sum(SIZES)
    ctx.evidence["copy_into_sizes"] = copies
    ctx.check(f"{CHECK}, all {len(SIZES)} calls)", round(sum(copies) / payload, 3), 1.0,
              "Thread::copy_transaction_data")
    ctx.check("bytes copied from the sender by Allocation::copy_into", sum(copies), payload,
              "Thread::copy_transaction_data")
