"""The Rust binder driver's log files (binderfs binder_logs/) parsed into the model the C driver's
debugfs files are (harness/evidence/debugfs.py), and where the driver keeps them
(harness/evidence/drivers.py).

Captured on the harness-built Rust-only 7.3.4 kernel (qemu-x86_64-7.3-rust, x86_64, TCG):
binder_logs-*.txt by `cat /dev/binderfs/binder_logs/...` with a probe `resident` holding
/dev/binder; proc_view-*.txt are the probe's proc_view lines from a catalog run on it
(objects.binder_to_handle, objects.undelivered, loopers.poll_epoll, protocol.death_notification).
"""
from __future__ import annotations

import re
from pathlib import Path

from harness.evidence.debugfs import parse_binder_debugfs, parse_proc_view, settle_script
from harness.evidence.drivers import C_DRIVER, NOT_COUNTED, RUST_DRIVER, driver_facts
from harness.judging.accounting import compare_stats

DATA = Path(__file__).parent / "data" / "rust_binder"
PROBE_H = Path(__file__).parent.parent / "native_probe" / "probe.h"


def _text(name: str) -> str:
    return (DATA / name).read_text()


def test_where_each_driver_keeps_its_files():
    assert C_DRIVER.logs_path("/sys/kernel/debug", "/dev/binderfs") == "/sys/kernel/debug/binder"
    assert C_DRIVER.logs_path(None, "/dev/binderfs") is None
    assert RUST_DRIVER.logs_path("/sys/kernel/debug", "/dev/binderfs") == "/dev/binderfs/binder_logs"
    assert RUST_DRIVER.logs_path("/sys/kernel/debug", None) is None
    assert (driver_facts("rust"), driver_facts("c"), driver_facts("unknown")) == (RUST_DRIVER, C_DRIVER, C_DRIVER)
    assert (RUST_DRIVER.trace_system, C_DRIVER.trace_system) == ("rust_binder", "binder")
    assert (RUST_DRIVER.failed_transaction_log, C_DRIVER.failed_transaction_log) == (False, True)


def test_probe_default_is_the_c_drivers_place():
    """CaseContext passes logs= only where it differs from the probe's default (probe.h)."""
    from harness.judging.context import PROBE_LOGS_DEFAULT
    m = re.search(r'#define BINDER_LOGS_DEFAULT "([^"]+)"', PROBE_H.read_text())
    assert m and m.group(1) == PROBE_LOGS_DEFAULT == C_DRIVER.logs_path("/sys/kernel/debug", None)


def test_rust_stats():
    """rust_binder_stats_show_impl: "binder stats:", GLOBAL_STATS, then Process::debug_print_stats."""
    doc = parse_binder_debugfs(_text("binder_logs-stats-x86_64.txt"))
    assert doc.bad_lines == []
    assert doc.kind == "stats"
    assert doc.counters == {"BC_ENTER_LOOPER": 1}
    assert doc.objects == {}  # the Rust driver counts no object kinds
    proc = doc.proc(93)
    assert proc is not None and proc.context == "binder"
    assert proc.counters == {"BC_ENTER_LOOPER": 1}
    # "free oneway space" is the model's "free async space" (free_oneway_space() / free_async_space)
    # ("threads:", "nodes:", "refs:", "buffers:" go to entries, as the C driver's do)
    assert proc.figures == {"requested threads": "0+0/0", "free async space": "65536",
                            "outstanding transactions": "0"}
    assert proc.pages is None


def test_rust_state_and_proc():
    for name in ("binder_logs-state-x86_64.txt", "binder_logs-proc-resident-x86_64.txt"):
        v = parse_proc_view(_text(name))
        assert v.bad_lines == []
        assert (v.pid, v.context, v.threads) == (93, "binder", {93: 0x42})
        assert [(n.debug_id, n.has_strong, n.has_weak, n.counts, n.refs, n.local_strong) for n in v.nodes] == \
            [(0, 1, 1, (1, 0), 0, None)]
        assert v.work_by_type() == {"NODE": 1}
        assert "node local refs" in v.not_counted
    assert parse_binder_debugfs(_text("binder_logs-transactions-x86_64.txt")).bad_lines == []


def test_rust_ref_lines_run_on():
    """process.rs Process::debug_print prints a ref without "\\n": the next item runs on in its line."""
    v = parse_proc_view(_text("proc_view-glued-buffer-x86_64.txt"))
    assert v.bad_lines == []
    assert [(r.debug_id, r.desc, r.node, r.dead, r.strong, r.weak, r.death) for r in v.refs] == \
        [(3, 1, 2, False, 1, 0, None), (5, 2, 4, False, 0, 1, None)]
    assert [(b.size, b.state) for b in v.buffers] == [("64", "allocated")]
    assert [w.text.split(":")[0] for w in v.stack] == ["incoming transaction 1"]
    assert set(v.not_counted) == {"node local refs", "ref death", "buffer sizes", "buffer state"}

    v = parse_proc_view(_text("proc_view-glued-pending-x86_64.txt"))
    assert v.bad_lines == []
    assert [(r.desc, r.strong, r.weak) for r in v.refs] == [(1, 1, 0), (2, 0, 1)]
    assert v.work_by_type() == {"NODE": 1, "TRANSACTION": 2}
    assert v.work_by_type("proc") == {"TRANSACTION": 1}
    assert [(n.debug_id, n.ref_procs, n.refs, n.async_pending) for n in v.nodes] == [(7, (64,), 1, 1)]
    assert [b.size for b in v.buffers] == ["8", "264"]

    v = parse_proc_view(_text("proc_view-dead-delivered-x86_64.txt"))
    assert v.bad_lines == []
    assert [(r.desc, r.dead) for r in v.refs] == [(0, True)]
    assert v.work_by_type() == {"DELIVERED_DEATH": 1}


def test_rust_threads_and_queues():
    v = parse_proc_view(_text("proc_view-incoming-x86_64.txt"))
    assert v.bad_lines == []
    assert v.threads == {59: 0x42, 63: 0x40}
    assert v.work_by_type("thread 59") == {"NODE": 1}
    v = parse_proc_view(_text("proc_view-node-procs-x86_64.txt"))
    assert v.bad_lines == []
    assert v.work_by_type("proc") == {"TRANSACTION": 1}


def test_rust_accounting_says_not_counted():
    stats = _text("binder_logs-stats-x86_64.txt")
    acct = compare_stats(stats, stats, RUST_DRIVER)
    assert (acct.problem, acct.active, acct.procs_left) == ("", {}, [])
    assert acct.not_counted.startswith(NOT_COUNTED)
    assert compare_stats(stats, stats).not_counted == ""  # the C driver counts them


def test_settle_without_proc_counts():
    """The Rust driver's stats have no "proc: active": settle waits only for ended procs to leave state."""
    script = settle_script("/dev/binderfs/binder_logs", "binder-probe", counts_procs=False)
    assert "proc: active" not in script
    assert "/dev/binderfs/binder_logs/state" in script
    assert 'proc: active' in settle_script("/sys/kernel/debug/binder", "binder-probe")
