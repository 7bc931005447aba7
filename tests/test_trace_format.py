"""trace.txt is ftrace text that Perfetto's systrace importer reads as intended:
checked on traces captured from real guests (tests/data) and on a fresh run."""
from __future__ import annotations

import re

import pytest

from harness.evidence.trace import SYSTRACE_LINE, parse_ftrace, systrace_problems
from tests.helpers import DATA

FIXED_RUNS = {
    "x86_64": DATA / "run-sync_sizes-x86_64" / "cases" / "one_copy.sync_sizes" / "trace.txt",
    "arm64": DATA / "run-trace-arm64.txt",
}
DESIGN_EVENTS = {"binder_transaction", "binder_transaction_received", "binder_transaction_alloc_buf",
                 "binder_command", "binder_return", "sched_switch", "sched_waking", "tracing_mark_write"}


def assert_perfetto_ready(text: str, case_id: str = "one_copy.sync_sizes") -> None:
    """The checks shared with the guest tests: header, events, tgids, and a closed case slice."""
    assert systrace_problems(text) == []
    trace = parse_ftrace(text)
    assert trace.bad_lines == []
    assert DESIGN_EVENTS <= {e.name for e in trace.events}
    # options/record-tgid: every event line carries a (TGID) column, dashes when unknown
    assert all(re.search(r"-\d+\s+\(\s*(\d+|-+)\)\s+\[\d+\]", l) for l in text.splitlines()
               if l.strip() and not l.startswith("#"))
    marks = [e for e in trace.events if e.name == "tracing_mark_write"]
    begin = [e for e in marks if e.body == f"B|{e.pid}|{case_id}"]
    assert len(begin) == 1, [e.body for e in marks]
    end = [e for e in marks if e.body == f"E|{begin[0].pid}" and e.pid == begin[0].pid]
    assert len(end) == 1 and end[0].ts > begin[0].ts
    binder = [e for e in trace.events if e.name.startswith("binder_")]
    assert binder and all(begin[0].ts <= e.ts <= end[0].ts for e in binder)


@pytest.mark.parametrize("arch", sorted(FIXED_RUNS))
def test_captured_run_traces_are_perfetto_ready(arch):
    assert_perfetto_ready(FIXED_RUNS[arch].read_text())


def test_every_captured_event_line_matches_the_importer_line_format():
    for path in [*FIXED_RUNS.values(), DATA / "trace-sync_sizes-x86_64.txt", DATA / "trace-sync_sizes-arm64.txt"]:
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                m = SYSTRACE_LINE.search(line)
                assert m, (path.name, line)
                assert len(line[:m.start("ts")].split("]")[-1].strip()) == 5  # 6.1: five flag columns


def test_checker_catches_an_e_marker_from_another_process():
    """Traces captured before the marker holder: the E came from the collecting shell."""
    problems = systrace_problems((DATA / "trace-sync_sizes-x86_64.txt").read_text())
    assert any("which has no open B slice" in p for p in problems)
    assert any("never closed" in p for p in problems)


def test_checker_catches_a_missing_header_and_a_foreign_line():
    text = FIXED_RUNS["arm64"].read_text()
    body = "\n".join(l for l in text.splitlines() if not l.startswith("#"))
    assert systrace_problems(body)[0].startswith("line 1: does not start with '# tracer:'")
    assert any("not an ftrace event line" in p for p in systrace_problems(text + "\nhello world\n"))
