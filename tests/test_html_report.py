"""report.html from a real run directory (tests/data, captured from a guest): the verdict
table, the inline SVG charts, the logs, and nothing that reaches the network."""
from __future__ import annotations

import json
import shutil
import tarfile

import pytest

from harness.reports import charts
from harness.reports import html as html_report
from tests.helpers import DATA, cli
from tests.report_html import external_references, read_page

RUN = DATA / "run-sync_sizes-x86_64"


@pytest.fixture
def run_dir(tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(RUN, dest)
    return dest


def test_page_of_a_real_run(run_dir):
    html = html_report.render(html_report.load_report(run_dir), run_dir)
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
    data = html_report.load_report(run_dir)
    case = data["cases"][0]
    case["outcome"], case["reason"] = "failed", "made up"
    case["checks"][5].update(passed=False, measured=2.0, expected=1.0)
    page = read_page(html_report.render(data, run_dir))
    bad = [r for r in page.tables["checks"] if r[0][1] == "✘"]
    assert len(bad) == 1 and page.tables["checks"][1] == bad[0]  # failing first
    assert [(c[0], c[1]) for c in bad[0][2:4]] == [("exp mono", "1.0"), ("meas mono", "2.0")]
    assert [c[1] for c in page.tables["verdicts"][1][4:7]] == ["1.0", "2.0", case["checks"][5]["ref"]]


def test_a_renderer_failure_still_leaves_a_valid_page(run_dir, monkeypatch):
    from harness.reports import report

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(html_report, "render", broken)
    path = report.write_html(html_report.load_report(run_dir), run_dir)
    page = read_page(path.read_text())
    assert "RuntimeError: boom" in page.text
    assert page.tables["verdicts"][1][0][1] == "one_copy.sync_sizes"


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
