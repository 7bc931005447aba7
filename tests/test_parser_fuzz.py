"""The parsers of what a guest prints, fuzzed: probe JSON lines, ftrace text, binder's
debugfs files. Whatever the text, no exception escapes, every line is accounted for, and a
line that is not understood is reported in bad_lines. Seeds come from real guest output."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.evidence.debugfs import Pages, parse_binder_debugfs
from harness.evidence.probe import parse_probe_output
from harness.evidence.trace import binder_transactions, parse_ftrace, usercopies_in_binder_ioctl
from tests.helpers import DATA

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REAL_TRACE = (DATA / "trace-sync_sizes-x86_64.txt").read_text().splitlines()
REAL_PROBE = (DATA / "probe-sync-x86_64.jsonl").read_text().splitlines()
REAL_STATS = (DATA / "debugfs-stats-x86_64.txt").read_text()
DEBUGFS = [(DATA / f"debugfs-{n}-x86_64.txt").read_text().splitlines() for n in ("stats", "state", "transactions", "procs")]

garbage = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)
# a real line with one stretch replaced: mostly still near the grammar, which is where parsers break
def _mutated(lines: list[str]):
    return st.builds(lambda line, start, length, junk: line[:start] + junk + line[start + length:],
                     st.sampled_from(lines), st.integers(0, 120), st.integers(0, 12), garbage)


def _lines(real: list[str]):
    return st.lists(st.one_of(st.sampled_from(real), _mutated(real), garbage), max_size=40).map("\n".join)


def _non_empty(text: str) -> list[str]:
    return [l for l in text.splitlines() if l.strip()]


@FUZZ
@given(_lines(REAL_PROBE))
def test_probe_output_never_raises_and_keeps_bad_lines(text):
    out = parse_probe_output(text)
    assert len(out.records) + len(out.bad_lines) == len(_non_empty(text))
    assert all(isinstance(r, dict) and "ev" in r for r in out.records)
    for line in out.bad_lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        assert not (isinstance(value, dict) and "ev" in value), line


@FUZZ
@given(_lines(REAL_TRACE))
def test_ftrace_never_raises_and_keeps_bad_lines(text):
    trace = parse_ftrace(text)
    kept = [l for l in text.splitlines() if l.startswith("#") or l.strip()]
    assert len(trace.events) + len(trace.bad_lines) + len(trace.header) == len(kept)
    bad_before = len(trace.bad_lines)
    for txn in binder_transactions(trace):  # fields like transaction=zz are reported, not raised
        assert txn.copied_bytes >= 0
    usercopies_in_binder_ioctl(trace, 1)
    assert len(trace.bad_lines) >= bad_before


def test_ftrace_bad_field_is_reported():
    line = next(l for l in REAL_TRACE if ": binder_transaction: " in l)
    broken = line.replace("transaction=", "transaction=zz", 1)
    trace = parse_ftrace(broken)
    assert binder_transactions(trace) == []
    assert len(trace.bad_lines) == 1 and "transaction=zz" in trace.bad_lines[0]


@FUZZ
@given(st.sampled_from(DEBUGFS).flatmap(_lines))
def test_debugfs_never_raises_and_keeps_bad_lines(text):
    doc = parse_binder_debugfs(text)
    assert all(isinstance(v, int) for v in doc.counters.values())
    for proc in doc.procs:
        assert proc.pages is None or min(proc.pages.active, proc.pages.lru, proc.pages.free) >= 0
    understood = len(_non_empty(text)) - len(doc.bad_lines)
    assert understood >= 0


def test_debugfs_real_stats():
    doc = parse_binder_debugfs(REAL_STATS)
    assert doc.kind == "stats" and doc.bad_lines == []
    assert doc.counters["BC_TRANSACTION"] == 1400 and doc.counters["BR_FAILED_REPLY"] == 1700
    assert doc.objects["proc"] == (21, 87) and doc.objects["transaction_complete"] == (0, 1167)
    assert len(doc.procs) == 20
    assert Pages(0, 0, 1024) in [p.pages for p in doc.procs]
    first = doc.procs[0]
    assert (first.pid, first.context, first.pages, first.pages_high_watermark) == (118, "binder", Pages(0, 0, 0), 0)
    assert first.figures["free async space"] == "0" and first.figures["requested threads"] == "0+0/0"
    assert first.counters == {"BC_TRANSACTION": 2, "BC_RELEASE": 1, "BC_ATTEMPT_ACQUIRE": 1,
                              "BC_CLEAR_DEATH_NOTIFICATION": 1, "BR_FAILED_REPLY": 1}


def test_debugfs_real_state_and_proc_files():
    for lines in DEBUGFS[1:]:
        doc = parse_binder_debugfs("\n".join(lines))
        assert doc.bad_lines == [], doc.bad_lines
        assert doc.procs
    proc = parse_binder_debugfs("\n".join(DEBUGFS[3]))
    assert proc.kind == "proc state"
    assert [kind for kind, _ in proc.procs[0].entries] == ["thread", "node"]


def test_debugfs_bad_line_is_reported():
    doc = parse_binder_debugfs(REAL_STATS.replace("  pages: 0:0:1024", "  pages: 0:x:1024", 1))
    assert doc.bad_lines == ["  pages: 0:x:1024"]
