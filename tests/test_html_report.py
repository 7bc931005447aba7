"""report.html from a real run directory (tests/data, captured from a guest): the verdict
table, the inline SVG charts, the logs, and nothing that reaches the network."""
from __future__ import annotations

import dataclasses
import json
import shutil
import tarfile

import pytest

from harness.reports import charts
from harness.reports import html as html_report
from harness.reports import model
from tests.helpers import DATA, cli
from tests.report_html import assert_full_page, external_references, read_page

RUN = DATA / "run-sync_sizes-x86_64"
# stress.valid_traffic's report.json entry as a real whole-catalog run wrote it (README's first command,
# qemu:x86_64, Debian 6.1.0-57-amd64, at 21e1114): its "transactions" is a count, not per-size objects.
VALID_TRAFFIC = DATA / "case-stress.valid_traffic-x86_64.json"


@pytest.fixture
def run_dir(tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(RUN, dest)
    return dest


def test_page_of_a_real_run(run_dir):
    html = html_report.render(model.load_run(run_dir), run_dir)
    page = read_page(html)
    assert external_references(html, page) == []
    verdicts = page.tables["verdicts"]
    assert [c[1] for c in verdicts[0]] == ["case", "outcome", "reason", "checks ok", "expected", "measured",
                                           "kernel function", "time"]
    assert [(r[0][1], r[1][1], r[2][1], r[3][1]) for r in verdicts[1:]] == [
        ("one_copy.sync_sizes", "passed", "50 checks passed", "50/50")]
    checks = page.tables["checks"]
    assert len(checks) == 51
    row = next(r for r in checks if r[1][1] == "size 4096: user->buffer bytes")
    assert [c[1] for c in row[2:]] == ["4096", "4096", "binder_alloc_copy_user_to_buffer"]
    assert len(page.svgs) == 3
    assert page.svgs[0].startswith("binder: kernel copies per payload byte")
    assert page.svgs[1].startswith("Transaction timeline")
    assert page.svgs[2].startswith("Buffer space held")
    report = json.loads((run_dir / "report.json").read_text())
    for text in (report["command"], report["target"]["kernel_release"], "stock binder_linux.ko", "tcg"):
        assert text in page.text
    summaries = [s for s in html.split("<summary>")[1:]]
    for title in ("dmesg delta", "probe output probe-1.jsonl", "console.log", "evidence"):
        assert any(s.startswith(title) for s in summaries), title


def test_timeline_marks_follow_the_kernel_order(run_dir):
    """send, alloc_buf, copy, receive, reply, reply received: in that order for every call."""
    from harness.evidence.trace import parse_ftrace
    from harness.reports.trace_views import transaction_timelines

    trace = parse_ftrace((run_dir / "cases" / "one_copy.sync_sizes" / "trace.txt").read_text())
    timelines = transaction_timelines(trace)
    assert [t.data_size for t in timelines] == [8, 4096, 10000, 65536, 1040384]
    for t in timelines:
        kinds = [k for k, _ in sorted(t.marks, key=lambda m: m[1])]
        assert kinds == ["send", "alloc_buf", "copy", "copy", "receive", "reply", "reply received"]
        assert sum(t.copied) == t.data_size


def test_buffer_use_returns_to_zero_and_peaks_at_the_largest_call(run_dir):
    from harness.evidence.trace import parse_ftrace
    from harness.reports.trace_views import buffer_use

    trace = parse_ftrace((run_dir / "cases" / "one_copy.sync_sizes" / "trace.txt").read_text())
    report = json.loads((run_dir / "report.json").read_text())
    receiver = report["cases"][0]["evidence"]["pids"]["receiver"]
    use = buffer_use(trace)[receiver]
    assert use.peak == 1040384 and use.allocs == use.frees == 5
    assert use.points[-1][1] == 0


def test_copies_by_mechanism_chart_marks_the_odd_one_out():
    svg = charts.bar_chart("copies", [("binder", 1.0), ("pipe", 2.0), ("unix_socket", 1.0)],
                           html_report.EXPECTED_COPIES)
    assert svg.count(f'fill="{charts.GOOD}"') == 2 and svg.count(f'fill="{charts.BAD}"') == 1
    chart = html_report.copies_chart({"copies_per_byte": {"binder": 1.0, "pipe": 2.0, "unix_socket": 2.0}})
    assert chart is not None and "by mechanism" in chart and chart.count('class="expected"') == 3


def test_failed_check_shows_expected_and_measured_side_by_side(run_dir):
    data = model.load_run(run_dir)
    case = data.cases[0]
    case.outcome, case.reason = "failed", "made up"
    case.checks[5] = dataclasses.replace(case.checks[5], passed=False, measured=2.0, expected=1.0)
    page = read_page(html_report.render(data, run_dir))
    bad = [r for r in page.tables["checks"] if r[0][1] == "✘"]
    assert len(bad) == 1 and page.tables["checks"][1] == bad[0]  # failing first
    assert [(c[0], c[1]) for c in bad[0][2:4]] == [("exp mono", "1.0"), ("meas mono", "2.0")]
    assert [c[1] for c in page.tables["verdicts"][1][4:7]] == ["1.0", "2.0", case.checks[5].ref]


def test_a_renderer_failure_still_leaves_a_valid_page(run_dir, monkeypatch):
    from harness.reports import report

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(html_report, "render", broken)
    path = report.write_html(model.load_run(run_dir), run_dir)
    page = read_page(path.read_text())
    assert "RuntimeError: boom" in page.notes[html_report.FALLBACK][0]
    assert page.tables["verdicts"][1][0][1] == "one_copy.sync_sizes"


def _with_valid_traffic(run_dir) -> model.Report:
    """The real sync_sizes run with the real stress.valid_traffic entry beside it, as in a whole-catalog run."""
    data = model.load_run(run_dir)
    data.cases.append(model.case_from_json(json.loads(VALID_TRAFFIC.read_text()), str(VALID_TRAFFIC)))
    model.write(data, run_dir)
    return data


def test_a_count_where_a_chart_expects_a_list_renders_the_full_page(run_dir):
    """stress.valid_traffic's "transactions" is a number (4759): the page was the fallback
    ("TypeError: 'int' object is not iterable"); now its section renders in full, without a copies chart."""
    from harness.reports import report

    data = _with_valid_traffic(run_dir)
    assert data.cases[-1].evidence["transactions"] == 4759
    report.write_html(data, run_dir)
    page = assert_full_page(run_dir)
    assert page.sections == ["one_copy.sync_sizes", "stress.valid_traffic"]
    assert [s.split(",")[0] for s in page.svgs] == [  # the sync_sizes charts only: a count draws nothing
        "binder: kernel copies per payload byte", "Transaction timeline from the kernel trace: time after send",
        "Buffer space held in each receiving process's binder area (ms after the first allocation)"]
    assert [(r[0][1], r[1][1], r[3][1]) for r in page.tables["verdicts"][1:]] == [
        ("one_copy.sync_sizes", "passed", "50/50"), ("stress.valid_traffic", "passed", "11/11")]
    assert len(page.tables["checks"]) == 1 + 50 + 1 + 11  # each case's header row and its checks
    assert '"transactions": 4759' in page.text


def test_charts_draw_only_from_the_shape_they_expect(run_dir):
    sync_sizes = model.load_run(run_dir).cases[0].evidence
    assert html_report.copies_by_size(sync_sizes) == [(8, 1.0), (4096, 1.0), (10000, 1.0), (65536, 1.0),
                                                       (1040384, 1.0)]
    assert html_report.copies_by_size(json.loads(VALID_TRAFFIC.read_text())["evidence"]) == []
    per_size = sync_sizes["transactions"]
    for odd in (4759, None, "8", {"size": 8}, [*per_size, 3], [*per_size, {"size": "8", "copies_per_byte": 1.0}],
                [{"size": True, "copies_per_byte": 1.0}], [{"size": 8.5, "copies_per_byte": 1.0}]):
        assert html_report.copies_by_size({"transactions": odd}) == [], odd
        assert html_report.copies_chart({"transactions": odd}) is None, odd
    # a size the trace did not see has no copies_per_byte (its checks say so); odd ratios are not drawn
    seen = html_report.copies_by_size({"transactions": [{"size": 8}, {"size": 16, "copies_per_byte": 1.0},
                                                        {"size": 24, "copies_per_byte": float("inf")},
                                                        {"size": 32, "copies_per_byte": False}]})
    assert seen == [(16, 1.0)]
    vs_pipe = {"binder": 1.0, "pipe": 2.0, "unix_socket": 2.0, "posix_mq": 2.0, "sysv_mq": 2.0, "shared_memory": 0.0}
    assert html_report.copies_by_mechanism({"copies_per_byte": vs_pipe}) == list(vs_pipe.items())
    for odd in (1.0, [1.0, 2.0], {"binder": "1.0"}, {"binder": 1.0, "pipe": None}, {"binder": float("nan")}):
        assert html_report.copies_by_mechanism({"copies_per_byte": odd}) == [], odd


def test_a_case_that_cannot_render_degrades_only_its_own_section(run_dir, monkeypatch):
    """The copies chart as it was (iterating "transactions") on the real stress.valid_traffic entry: one
    line naming the case and the error stands in for that chart; the rest of the page is whole."""
    from harness.reports import report

    data = _with_valid_traffic(run_dir)
    kept = html_report.copies_chart

    def as_it_was(evidence):
        [t for t in evidence.get("transactions", []) if isinstance(t, dict)]
        return kept(evidence)

    monkeypatch.setattr(html_report, "copies_chart", as_it_was)
    page = read_page(report.write_html(data, run_dir).read_text())
    assert page.notes == {html_report.DEGRADED: [
        "stress.valid_traffic: copies chart could not be rendered (TypeError: 'int' object is not iterable); "
        "report.json holds what it would show"]}
    assert page.sections == ["one_copy.sync_sizes", "stress.valid_traffic"]
    assert len(page.svgs) == 3 and len(page.tables["checks"]) == 1 + 50 + 1 + 11
    html = (run_dir / "report.html").read_text()
    stress = html[html.index('<section class="case" id="stress.valid_traffic">'):]
    for title in ("evidence (report.json)", "11 checks: measured against expected"):
        assert f"<summary>{title}" in stress, title
    with pytest.raises(AssertionError):
        assert_full_page(run_dir)


def test_a_verdict_row_that_cannot_render_keeps_the_case_named(run_dir, monkeypatch):
    data = _with_valid_traffic(run_dir)
    kept = html_report._verdict_row

    def odd(case):
        if case.id == "stress.valid_traffic":
            raise ValueError("odd")
        return kept(case)

    monkeypatch.setattr(html_report, "_verdict_row", odd)
    page = read_page(html_report.render(data, run_dir))
    assert [r[0][1] for r in page.tables["verdicts"][1:]] == ["one_copy.sync_sizes", "stress.valid_traffic"]
    assert page.notes[html_report.DEGRADED] == [
        "stress.valid_traffic: verdict row could not be rendered (ValueError: odd); "
        "report.json holds what it would show"]


def test_a_report_that_cannot_be_read_still_gets_the_fallback_page(run_dir):
    from harness.reports import report

    data = model.load_run(run_dir)
    data.cases = 5  # type: ignore[assignment]  # not a list: there is nothing to render per case
    page = read_page(report.write_html(data, run_dir).read_text())
    assert page.notes[html_report.FALLBACK][0].startswith("The full page could not be rendered (TypeError: ")
    assert page.sections == []


def test_trace_views_leave_out_lines_they_cannot_read(run_dir):
    """The real sync_sizes trace with a few fields cut or garbled, as a truncated or foreign line would be."""
    from harness.evidence.trace import parse_ftrace
    from harness.reports.trace_views import buffer_use, transaction_timelines

    text = (run_dir / "cases" / "one_copy.sync_sizes" / "trace.txt").read_text()
    text = (text.replace("binder_transaction: transaction=2 ", "binder_transaction: transaction=x2 ")
            .replace("binder_transaction_alloc_buf: transaction=4 data_size=4096",
                     "binder_transaction_alloc_buf: transaction=4 data_size=")
            .replace("reply=0 flags=0x0 code=0x3", "reply=0 flags=zz code=0x3"))
    trace = parse_ftrace(text)
    # call 2: no readable id; call 4: no readable size; call 6: no readable flags (oneway or not)
    assert [(t.debug_id, t.data_size) for t in transaction_timelines(trace)] == [(4, None), (8, 65536),
                                                                                 (10, 1040384)]
    report = json.loads((run_dir / "report.json").read_text())
    pids = report["cases"][0]["evidence"]["pids"]
    use = buffer_use(trace)  # calls 6, 8 and 10 in the receiver's area; all five replies in the sender's
    assert (use[pids["receiver"]].allocs, use[pids["sender"]].allocs) == (3, 5)
    case = model.load_run(run_dir).cases[0]
    (run_dir / "cases" / "one_copy.sync_sizes" / "trace.txt").write_text(text)
    assert len(html_report.trace_charts(case, run_dir / "cases" / "one_copy.sync_sizes")) == 2


def test_report_command_rerenders_and_bundles(run_dir):
    run = cli("report", str(run_dir), "--bundle")
    assert run.status == 0, run.stderr
    html_path, bundle = run.stdout.split()
    assert html_path == str(run_dir / "report.html")
    assert read_page((run_dir / "report.html").read_text()).tables["verdicts"]
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    assert "run/report.html" in names and "run/cases/one_copy.sync_sizes/trace.txt" in names


@pytest.mark.parametrize("setup, message", [
    (lambda d: shutil.rmtree(d), "not a directory"),
    (lambda d: (d / "report.json").unlink(), "report.json: missing"),
    (lambda d: (d / "report.json").write_text("{"), "not valid JSON"),
    (lambda d: (d / "report.json").write_text('{"schema": 7}'), "field 'schema' is 7, expected 1"),
    (lambda d: (d / "report.json").write_text('{"schema": 1, "target": {}, "cases": {}}'), "field 'cases'"),
])
def test_report_command_bad_dir_is_one_line(run_dir, setup, message):
    setup(run_dir)
    run = cli("report", str(run_dir))
    assert run.status == 2
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert message in run.stderr
