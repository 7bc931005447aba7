"""The parsers of what a guest prints, fuzzed: probe JSON lines, ftrace text, binder's
debugfs files. Each test keeps a real guest file whole and in order (so every real line
is understood in its real context) and injects lines at random places whose fate is known
by construction: a line no grammar accepts, a real line broken in its head or in one
number, a header, a blank line. The parser must then give exactly what the real file
gives, plus exactly the injected lines in `bad_lines`, in order. Seeds come from real
guest output."""
from __future__ import annotations

import dataclasses
import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.evidence.debugfs import Pages, parse_binder_debugfs
from harness.evidence.probe import parse_probe_output
from harness.evidence.trace import TraceEvent, binder_transactions, parse_ftrace, usercopies_in_binder_ioctl
from tests.helpers import DATA

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REAL_TRACE = (DATA / "trace-sync_sizes-x86_64.txt").read_text().splitlines()
REAL_PROBE = (DATA / "probe-sync-x86_64.jsonl").read_text().splitlines()
REAL_STATS = (DATA / "debugfs-stats-x86_64.txt").read_text()
DEBUGFS = [(DATA / f"debugfs-{n}-x86_64.txt").read_text().splitlines() for n in ("stats", "state", "transactions", "procs")]

# str.splitlines() breaks on these: injected text must not hold them, or one line becomes several
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _text(exclude: str = "", min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=LINE_BREAKS + exclude),
                   min_size=min_size, max_size=40)


LETTERS = st.text(st.sampled_from("ghijklmnopqrstuvwxyz"), min_size=1, max_size=6)  # never a number, in any base
BLANK = st.text(st.sampled_from(" \t"), max_size=4)


@dataclasses.dataclass(frozen=True)
class Injected:
    line: str
    fate: str  # "bad": in bad_lines as `shown`; "blank": ignored; "header"; "bad_field": an event whose field is not a number
    shown: str = ""
    source: int = -1  # index of the real line it was made from


def _merged(real: list[str], injected: st.SearchStrategy[Injected]):
    """The real lines in order, with injected lines at random positions: (text, [(line, Injected|None)])."""
    def merge(items: list[tuple[int, Injected]]):
        at: dict[int, list[Injected]] = {}
        for pos, inj in items:
            at.setdefault(pos, []).append(inj)
        tagged: list[tuple[str, Injected | None]] = []
        for i in range(len(real) + 1):
            tagged += [(inj.line, inj) for inj in at.get(i, [])]
            if i < len(real):
                tagged.append((real[i], None))
        return "\n".join(line for line, _ in tagged), tagged
    return st.lists(st.tuples(st.integers(0, len(real)), injected), max_size=25).map(merge)


def _of(tagged, fate: str) -> list[Injected]:
    return [inj for _, inj in tagged if inj is not None and inj.fate == fate]


# -- probe JSON lines -----------------------------------------------------------------

REAL_RECORDS = [json.loads(line) for line in REAL_PROBE]


def _probe_injected() -> st.SearchStrategy[Injected]:
    def truncated(i: int, cut: float) -> Injected:  # a proper prefix of a JSON object never closes it
        line = REAL_PROBE[i]
        head = line[:max(1, int(len(line) * cut))][:len(line) - 1]
        return Injected(head, "bad", head.strip(), i)

    def not_a_record(i: int, how: int) -> Injected:  # valid JSON that is no {"ev": ...} object
        rec = REAL_RECORDS[i]
        line = [json.dumps({k: v for k, v in rec.items() if k != "ev"}), json.dumps([rec]), json.dumps(rec["ev"])][how]
        return Injected(line, "bad", line, i)

    idx = st.integers(0, len(REAL_PROBE) - 1)
    return st.one_of(
        st.builds(truncated, idx, st.floats(0, 1)),
        st.builds(not_a_record, idx, st.integers(0, 2)),
        _text().map(lambda junk: Injected("~" + junk, "bad", ("~" + junk).strip())),
        BLANK.map(lambda b: Injected(b, "blank")),
    )


def test_the_real_probe_output_is_all_records():
    out = parse_probe_output("\n".join(REAL_PROBE))
    assert out.records == REAL_RECORDS and out.bad_lines == []


@FUZZ
@given(_merged(REAL_PROBE, _probe_injected()))
def test_probe_output_keeps_every_record_and_exactly_the_injected_bad_lines(merged):
    text, tagged = merged
    out = parse_probe_output(text)
    assert out.records == REAL_RECORDS
    assert out.bad_lines == [inj.shown for inj in _of(tagged, "bad")]


# -- ftrace text ----------------------------------------------------------------------

REAL_PARSED = parse_ftrace("\n".join(REAL_TRACE))
EVENT_LINES = [i for i, line in enumerate(REAL_TRACE) if not line.startswith("#") and line.strip()]
TXN_LINES = [i for i in EVENT_LINES if ": binder_transaction: " in REAL_TRACE[i]]
EVENT_OF_LINE: dict[int, TraceEvent] = dict(zip(EVENT_LINES, REAL_PARSED.events))
CPU = re.compile(r"\[\d+\]")
PIDS = sorted({e.pid for e in REAL_PARSED.events})


def _trace_injected() -> st.SearchStrategy[Injected]:
    def head_broken(i: int, junk: str) -> Injected:  # the [CPU] field gone: no event line any more
        line = CPU.sub(lambda _: junk, REAL_TRACE[i], count=1)
        assert CPU.search(line) is None, line  # the real lines hold one [CPU] each (the rest is [binder_linux])
        return Injected(line, "bad", line, i)

    def field_broken(i: int, letters: str) -> Injected:  # still an event; its transaction= is no number
        line = re.sub(r"transaction=\d+", f"transaction={letters}", REAL_TRACE[i], count=1)
        return Injected(line, "bad_field", letters, i)

    return st.one_of(
        st.builds(head_broken, st.sampled_from(EVENT_LINES), _text(exclude="0123456789[]")),
        st.builds(field_broken, st.sampled_from(TXN_LINES), LETTERS),
        _text(exclude="[").map(lambda junk: Injected("~" + junk, "bad", "~" + junk)),
        _text().map(lambda junk: Injected("#" + junk, "header")),
        BLANK.map(lambda b: Injected(b, "blank")),
    )


def _txn_view(trace) -> list[tuple]:
    return [(t.debug_id, t.pid, t.reply, t.flags, t.data_size, t.offsets_size, t.copied_bytes,
             t.kernel_copied_bytes, t.pages_allocated, t.pages_from_lru, sorted(t.copy_targets))
            for t in binder_transactions(trace)]


REAL_TXNS = _txn_view(parse_ftrace("\n".join(REAL_TRACE)))
REAL_USERCOPIES = {pid: usercopies_in_binder_ioctl(parse_ftrace("\n".join(REAL_TRACE)), pid) for pid in PIDS}


def test_the_real_trace_parses_whole():
    assert REAL_PARSED.bad_lines == [] and len(REAL_PARSED.events) == len(EVENT_LINES) == 850
    assert len(REAL_TXNS) == len(TXN_LINES) == 10
    assert sum(map(len, REAL_USERCOPIES.values())) > 0


@FUZZ
@given(_merged(REAL_TRACE, _trace_injected()), st.sampled_from(PIDS))
def test_ftrace_keeps_every_event_and_exactly_the_injected_bad_lines(merged, pid):
    text, tagged = merged
    trace = parse_ftrace(text)
    assert trace.header == [line for line, inj in tagged if line.startswith("#") and (inj is None or inj.fate == "header")]
    bad = [inj.shown for inj in _of(tagged, "bad")]
    assert trace.bad_lines == bad
    expected_events = []
    real_index = -1
    for line, inj in tagged:
        real_index += inj is None
        if inj is None and real_index in EVENT_OF_LINE:
            expected_events.append(EVENT_OF_LINE[real_index])
        elif inj is not None and inj.fate == "bad_field":
            real = EVENT_OF_LINE[inj.source]
            expected_events.append(dataclasses.replace(real, body=re.sub(r"transaction=\d+", f"transaction={inj.shown}",
                                                                         real.body, count=1)))
    assert trace.events == expected_events
    # a binder_transaction whose transaction= is no number is reported, once, and groups nothing
    assert _txn_view(trace) == REAL_TXNS
    reported = trace.bad_lines[len(bad):]
    broken = _of(tagged, "bad_field")
    assert len(reported) == len(broken)
    assert all(": binder_transaction: " in r and f"transaction={b.shown} " in r for r, b in zip(reported, broken))
    assert usercopies_in_binder_ioctl(trace, pid) == REAL_USERCOPIES[pid]
    assert len(trace.bad_lines) == len(bad) + len(broken)


garbage = _text()


def _mutated(lines: list[str]):  # a real line with one stretch replaced: its fate is not known, only that it has one
    return st.builds(lambda line, start, length, junk: line[:start] + junk + line[start + length:],
                     st.sampled_from(lines), st.integers(0, 120), st.integers(0, 12), garbage)


def _anything(real: list[str]):
    return st.lists(st.one_of(st.sampled_from(real), _mutated(real), garbage), max_size=40).map("\n".join)


@FUZZ
@given(_anything(REAL_PROBE))
def test_probe_output_of_any_text_accounts_for_every_line(text):
    out = parse_probe_output(text)
    assert len(out.records) + len(out.bad_lines) == len([l for l in text.splitlines() if l.strip()])


@FUZZ
@given(_anything(REAL_TRACE))
def test_ftrace_of_any_text_accounts_for_every_line(text):
    trace = parse_ftrace(text)
    kept = [l for l in text.splitlines() if l.startswith("#") or l.strip()]
    assert len(trace.events) + len(trace.bad_lines) + len(trace.header) == len(kept)
    binder_transactions(trace)
    usercopies_in_binder_ioctl(trace, PIDS[0])  # no exception escapes either


def test_ftrace_bad_field_is_reported():
    line = next(l for l in REAL_TRACE if ": binder_transaction: " in l)
    broken = line.replace("transaction=", "transaction=zz", 1)
    trace = parse_ftrace(broken)
    assert binder_transactions(trace) == []
    assert len(trace.bad_lines) == 1 and "transaction=zz" in trace.bad_lines[0]


# -- binder's debugfs files -------------------------------------------------------------

# lines that are fixed words and numbers: with one number gone they match nothing
NUMERIC = re.compile(r"^(\s*(?:(?:BC|BR)_[A-Z_]+: |[a-z_]+: active \d+ total |pages: \d+:\d+:|pages high watermark: |proc ))\d+$")


def _debugfs_injected(real: list[str]) -> st.SearchStrategy[Injected]:
    numeric = [i for i, line in enumerate(real) if NUMERIC.match(line)]

    def number_broken(i: int, which: int, letters: str) -> Injected:  # one of its numbers replaced by letters
        runs = list(re.finditer(r"\d+", real[i]))
        run = runs[which % len(runs)]
        line = real[i][:run.start()] + letters + real[i][run.end():]
        return Injected(line, "bad", line, i)

    kinds = [_text().map(lambda junk: Injected("~" + junk, "bad", "~" + junk)), BLANK.map(lambda b: Injected(b, "blank"))]
    if numeric:
        kinds.append(st.builds(number_broken, st.sampled_from(numeric), st.integers(0, 3), LETTERS))
    return st.one_of(*kinds)


def _debugfs_case(real: list[str]):
    return _merged(real, _debugfs_injected(real)).map(lambda m: (real, m))


@FUZZ
@given(st.sampled_from(DEBUGFS).flatmap(_debugfs_case))
def test_debugfs_keeps_the_real_file_and_exactly_the_injected_bad_lines(case):
    real, (text, tagged) = case
    doc = parse_binder_debugfs(text)
    clean = parse_binder_debugfs("\n".join(real))
    assert clean.bad_lines == []
    assert doc == dataclasses.replace(clean, bad_lines=[inj.shown for inj in _of(tagged, "bad")])


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
