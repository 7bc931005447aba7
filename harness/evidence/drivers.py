"""What each binder driver is like, in one place: where it keeps its log files, its trace event
system, its kernel-log prefix, and what its `stats` counts. Everything that depends on which
driver serves the target (harness/targets/binder_driver.py names it) reads it from here.

- The C driver (drivers/android/binder.c): binder_init creates debugfs `binder/` with stats,
  state, transactions, transaction_log, failed_transaction_log and proc/PID; its TRACE_SYSTEM is
  `binder` (binder_trace.h); it logs through pr_fmt "binder: " (built in) or "binder_linux: "
  (the module); print_binder_stats counts every object kind ("proc: active N total M"), and
  print_binder_proc_stats a proc's pages (binder_alloc_print_pages) and "free async space".
- The Rust driver (drivers/android/binder/): no debugfs; rust_binderfs.c's
  binderfs_create_binder_logs makes `binder_logs/` (stats, state, transactions, proc/PID) in a
  binderfs mounted with stats=global, and there is no transaction log at all; its TRACE_SYSTEM is
  `rust_binder` (rust_binder_events.h); it logs as "rust_binder: " (pr_fmt of its crate);
  rust_binder_stats_show prints the global and per-proc BC_*/BR_* counts
  (stats.rs BinderStats::debug_print) and Process::debug_print_stats, which counts no object
  kinds (no "proc: active"), no pages, and names the async budget "free oneway space".
  Its transaction events are rust_binder's (no binder_transaction_alloc_buf), and binder_transaction
  follows the copies; its copies into a receiver's buffer are kprobed on its own functions, found
  by their mangled names in the target's /proc/kallsyms (kprobes.RUST_COPY_INTO, RUST_PAGE_WRITE;
  the pages at RUST_USE_PAGE_SLOW and RUST_LRU_DEL).
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass

from harness.evidence.kprobes import BINDER_EVENTS, COPY_TO_BUFFER, COPY_USER_TO_BUFFER, RUST_BINDER_EVENTS, RUST_COPY_INTO, RUST_LRU_DEL, RUST_PAGE_WRITE, RUST_USE_PAGE_SLOW, RUST_USERCOPY, USERCOPY_CHECK, Kprobe

NOT_COUNTED = "not counted by this driver"  # what the model says where a driver does not count a thing


@dataclass(frozen=True)
class DriverFacts:
    name: str  # "c" | "rust" (binder_driver.BinderDriver.name)
    logs_under: str  # "debugfs" | "binderfs": the file system its stats/state/proc files are in
    logs_dir: str  # their directory there: debugfs "binder", binderfs "binder_logs"
    trace_system: str  # tracefs events/<system>
    log_prefixes: tuple[str, ...]  # the kernel log's prefix of its lines
    loggers: str  # the functions that print its lines: the ref of the undeclared-line rule
    failed_transaction_log: bool  # a failed_transaction_log file beside stats
    counts_objects: bool  # stats "KIND: active N total M" (proc, thread, node, ref, ...)
    counts_pages: bool  # stats per proc "pages: active:lru:free" (binder_alloc_print_pages)
    async_space: str  # the per-proc stats figure of the oneway budget
    source: str  # where these facts come from
    # -- its trace: events, and the kprobes on its copies into a receiver's buffer -----------
    trace_events: tuple[str, ...] = BINDER_EVENTS  # "system/event" armed for every traced case
    # the driver's probe for each catalog copy kprobe (by event name), None where it has no such
    # function: the cases ask for COPY_USER_TO_BUFFER / COPY_TO_BUFFER and get the driver's own
    copy_probes: tuple[tuple[str, tuple[Kprobe, ...]], ...] = ()
    # the kprobes that stand for a C trace event a case asks for ("binder/binder_alloc_page_start")
    # where the driver has no such event; () where nothing does
    event_probes: tuple[tuple[str, tuple[Kprobe, ...]], ...] = ()
    # the copy probe's fetch arg saying where its buffer is in the receiver (trace.COPY_LANDS_AT):
    # "user_data", its user address; "buffer_offset", its offset in the receiver's mapping
    copy_lands_at: str = "user_data"
    # whether its binder_transaction event follows the copies (trace.binder_transactions copies_first)
    transaction_traced_after_copies: bool = False
    # whether a transaction without offsets reaches the receiver with data.ptr.offsets 0 (Rust:
    # transaction.rs Transaction::do_work sets it only `if tr.offsets_size > 0`) rather than
    # buffer + ALIGN(data_size, 8) (C: binder_thread_read, always)
    zero_offsets_ptr_when_none: bool = False
    # whether the offsets array is copied from the sender as user bytes (C: binder_transaction's
    # binder_alloc_copy_user_to_buffer of the offsets) or read and written back by the kernel
    # (Rust: thread.rs Thread::copy_transaction_data reads each offset, then Allocation::write)
    offsets_copied_from_user: bool = True

    def kprobes(self, wanted: tuple[Kprobe, ...]) -> tuple[tuple[Kprobe, ...], tuple[str, ...]]:
        """The kprobes a case declared, as this driver places them; and the names of those it has
        no function for (left out: their checks say so)."""
        swap = dict(self.copy_probes)
        placed = [swap.get(k.name, (k,)) for k in wanted]
        return (tuple(p for ps in placed for p in ps), tuple(k.name for k, ps in zip(wanted, placed) if not ps))

    def events(self, wanted: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[Kprobe, ...], tuple[str, ...]]:
        """The extra trace events a case asked for, as this driver has them: the events, the
        kprobes that stand for those it lacks, and the names of those nothing stands for."""
        swap = dict(self.event_probes)
        return (tuple(e for e in wanted if e not in swap),
                tuple(k for e in wanted for k in swap.get(e, ())),
                tuple(e for e in wanted if e in swap and not swap[e]))

    def logs_path(self, debugfs: str | None, binderfs: str | None) -> str | None:
        """The directory of the driver's stats/state/proc files on a target whose debugfs and
        binderfs are mounted where named (None: not mounted); None when it has no such place."""
        base = debugfs if self.logs_under == "debugfs" else binderfs
        return posixpath.join(base, self.logs_dir) if base else None

    def counted(self, what: str) -> bool:
        """Whether the driver's `stats` counts `what`: "objects", "pages"."""
        return {"objects": self.counts_objects, "pages": self.counts_pages}[what]


C_DRIVER = DriverFacts(
    name="c", logs_under="debugfs", logs_dir="binder", trace_system="binder",
    log_prefixes=("binder_linux:", "binder:"),
    loggers="binder_user_error / binder_debug / binder_alloc_debug / pr_err (drivers/android)", failed_transaction_log=True, counts_objects=True,
    counts_pages=True, async_space="free async space",
    source="drivers/android/binder.c binder_init (debugfs binder/), print_binder_stats, print_binder_proc_stats")
RUST_DRIVER = DriverFacts(
    name="rust", logs_under="binderfs", logs_dir="binder_logs", trace_system="rust_binder",
    log_prefixes=("rust_binder:",),
    loggers="pr_warn! / pr_err! / pr_info! (drivers/android/binder/*.rs)", failed_transaction_log=False, counts_objects=False,
    counts_pages=False, async_space="free oneway space",
    source="drivers/android/binder/rust_binderfs.c binderfs_create_binder_logs; rust_binder_main.rs "
           "rust_binder_stats_show; process.rs Process::debug_print_stats",
    trace_events=RUST_BINDER_EVENTS,
    copy_probes=((COPY_USER_TO_BUFFER.name, (RUST_COPY_INTO,)), (COPY_TO_BUFFER.name, (RUST_PAGE_WRITE,)),
                 (USERCOPY_CHECK.name, RUST_USERCOPY)),
    event_probes=(("binder/binder_alloc_page_start", (RUST_USE_PAGE_SLOW,)),
                  ("binder/binder_alloc_lru_start", (RUST_LRU_DEL,)), ("binder/binder_update_page_range", ())),
    copy_lands_at="buffer_offset", transaction_traced_after_copies=True, zero_offsets_ptr_when_none=True,
    offsets_copied_from_user=False)
DRIVERS = {d.name: d for d in (C_DRIVER, RUST_DRIVER)}


def driver_facts(name: str) -> DriverFacts:
    """The facts of the driver binder_driver.parse_driver named. Anything but "rust" ("c", a
    kernel with both and none chosen, "unknown") gets the C driver's, as the harness always assumed."""
    return DRIVERS.get(name, C_DRIVER)
