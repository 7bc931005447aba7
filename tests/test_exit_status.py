"""Green means judged: a run exits 0 only when every selected case passed. A skipped case was not
judged (exit 3, named first in the summary, never PASS in report.html, JUnit or KCIDB); a case
declared not applicable (--not-applicable, or the target's own facts) is its own outcome and
does not stop exit 0."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.judging.catalog import COMPAT_SCRIPT, compat_missing
from harness.judging.verdicts import OUTCOMES, ExitStatus, Outcome, exit_status, summarize, summary_line
from harness.reports import html as html_report
from harness.reports import kcidb, model
from harness.reports.model import Report
from harness.reports.report import junit_xml
from tests.helpers import REPO, cli, cli_env
from tests.report_html import read_page

NOT_JUDGED_CASES = str(REPO / "tests" / "not_judged_cases")
SKIPPING = "notjudged.missing_offset"  # skipped on a real guest: its kprobe needs an offset no BTF has


# -- the summary and the exit status ---------------------------------------------------------
def test_summary_keeps_the_four_keys_in_order_then_not_applicable():
    assert OUTCOMES == ("passed", "failed", "error", "skipped", "not_applicable")
    assert list(summarize([])) == list(OUTCOMES)
    assert summarize(["passed", "skipped", "not_applicable", "skipped"]) == {
        "passed": 1, "failed": 0, "error": 0, "skipped": 2, "not_applicable": 1}


@pytest.mark.parametrize("outcomes, line, status", [
    (["passed"] * 3, "3 passed, 0 failed, 0 error, 0 skipped", 0),
    (["passed"] + ["skipped"] * 5, "NOT JUDGED: 5 skipped; 1 passed, 0 failed, 0 error", 3),
    (["passed", "failed", "skipped"], "NOT JUDGED: 1 skipped; 1 passed, 1 failed, 0 error", 1),
    (["passed", "error"], "1 passed, 0 failed, 1 error, 0 skipped", 1),
    (["passed", "not_applicable"], "1 passed, 0 failed, 0 error, 0 skipped, 1 not applicable", 0),
    (["passed", "skipped", "not_applicable"], "NOT JUDGED: 1 skipped; 1 passed, 0 failed, 0 error, 1 not applicable", 3),
    (["not_applicable"] * 2, "NOT JUDGED: no case judged; 0 passed, 0 failed, 0 error, 0 skipped, 2 not applicable", 3),
    ([], "NOT JUDGED: no case judged; 0 passed, 0 failed, 0 error, 0 skipped", 3),
    (["passed", "flaky"], "NOT JUDGED: 1 flaky; 1 passed, 0 failed, 0 error", 3),  # an outcome from elsewhere
])
def test_summary_line_and_exit_status(outcomes, line, status):
    summary = summarize(outcomes)
    assert summary_line(summary) == line
    assert exit_status(summary) == status
    # exit 3 says why first, in words; a green line never does
    if status == ExitStatus.NOT_JUDGED:
        assert summary_line(summary).startswith("NOT JUDGED:")
    if status == ExitStatus.PASSED:
        assert "NOT JUDGED" not in summary_line(summary)


def test_exit_statuses_are_distinct_and_documented():
    assert [int(s) for s in ExitStatus] == [0, 1, 2, 3, 130]
    doc = (REPO / "harness" / "cli.py").read_text().split('"""')[1]
    readme = (REPO / "README.md").read_text()
    for status in ExitStatus:
        assert f"  {int(status)}  " in doc or f"  {int(status)} " in doc, status
        assert f"{int(status)} " in readme
    assert "3 no case failed, but some case was skipped" in " ".join(readme.split())


def test_compat_is_not_applicable_only_on_a_fact():
    assert COMPAT_SCRIPT.startswith("grep -qw compat_ptr_ioctl /proc/kallsyms")
    assert compat_missing("kallsyms_compat=1\n")  # readable, and no compat_ptr_ioctl
    assert not compat_missing("kallsyms_compat=0\n")
    assert not compat_missing("grep: /proc/kallsyms: Permission denied\nkallsyms_compat=2\n")
    assert not compat_missing("")  # no answer is not a fact: the case runs and is judged


def test_not_applicable_glob_must_name_a_case():
    from harness.options import OPTIONS, _checked

    option = next(o for o in OPTIONS if o.cli == "--not-applicable")
    assert _checked(option, ["compat.*", "protocol.version"]) == ("compat.*", "protocol.version")
    assert _checked(option, None) == ()
    with pytest.raises(ConfigError, match=r"--not-applicable compat\.nope: matches no case"):
        _checked(option, ["compat.nope"])


# -- JUnit, KCIDB and report.html of a report with every outcome ---------------------------------
def _report(outcomes: dict[str, str]) -> Report:
    """A report.json (schema 1) with one case of each outcome, read through the report model."""
    cases = [{"id": cid, "outcome": o, "reason": f"{o} because", "duration_s": 0.1, "evidence": {}, "checks": []}
             for cid, o in outcomes.items()]
    return model.from_json({
        "schema": 1, "target": {"spec": "qemu:x86_64", "arch": "x86_64", "kernel_release": "6.1.0-57-amd64",
                                "accel": "tcg"},
        "cases": cases, "summary": summarize(outcomes.values()), "timings": {"boot_s": 1.0, "total_s": 2.0},
        "command": "binder-harness run"})


EVERY = {"protocol.version": "passed", "one_copy.reply": "skipped", "compat.version": "not_applicable",
         "limits.mmap_twice": "failed", "protocol.ping": "error"}


def test_junit_never_passes_a_skipped_or_not_applicable_case():
    root = ET.fromstring(junit_xml(_report(EVERY)))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("1", "1", "2")
    verdict = {}
    for tc in suite.iter("testcase"):
        marks = [(e.tag, e.get("type")) for e in tc if e.tag in ("failure", "error", "skipped")]
        verdict[tc.get("name")] = marks
    assert verdict == {"protocol.version": [],
                       "one_copy.reply": [("skipped", "binder-harness.not_judged")],
                       "compat.version": [("skipped", "binder-harness.not_applicable")],
                       "limits.mmap_twice": [("failure", "binder-harness.failed")],
                       "protocol.ping": [("error", "binder-harness.error")]}
    unknown = ET.fromstring(junit_xml(_report({"protocol.version": "flaky"}))).find(".//testcase")
    assert unknown is not None and unknown.find("error") is not None


def test_kcidb_statuses():
    import kcidb_io

    data = kcidb.document([_report({**EVERY, "protocol.thread_exit": "flaky"})])
    kcidb_io.schema.LATEST.validate(data)
    assert {t["path"]: t["status"] for t in data["tests"]} == {
        "binder.protocol.version": "PASS", "binder.one_copy.reply": "MISS", "binder.compat.version": "SKIP",
        "binder.limits.mmap_twice": "FAIL", "binder.protocol.ping": "ERROR", "binder.protocol.thread_exit": "ERROR"}
    assert set(kcidb.STATUS) == set(OUTCOMES)


@pytest.mark.parametrize("outcomes, banner", [
    ({"protocol.version": "passed", "one_copy.reply": "skipped"}, "notjudged"),
    ({"protocol.version": "passed", "compat.version": "not_applicable"}, "ok"),
    ({"compat.version": "not_applicable"}, "notjudged"),
    (EVERY, "bad"),
])
def test_report_html_headline(tmp_path, outcomes, banner):
    report = _report(outcomes)
    html = html_report.render(report, tmp_path)
    headline = html.split('<div class="banner ', 1)[1].split("</div>", 1)[0]
    assert headline == f'{banner}">{summary_line(report.summary)}'
    page = read_page(html)
    assert sorted(r[1][1] for r in page.tables["verdicts"][1:]) == sorted(outcomes.values())


def test_report_html_says_connected_for_a_device(tmp_path):
    report = _report({"protocol.version": "passed"})
    report.target.accel, report.target.accel_reason = "none", "a device the harness does not emulate"
    report.timings.boots = 1
    html = html_report.render(report, tmp_path)
    assert "connected" in html and "boot(s)" not in html


# -- pytest cases/: no guest when every selected case is declared not applicable ---------------
def _pytest(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "cases/", "-q", "-p", "no:cacheprovider",
                           "--bh-out", str(tmp / "out"), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=cli_env())


def test_pytest_session_that_judged_nothing_is_not_green(tmp_path):
    proc = _pytest(tmp_path, "-k", "protocol.version", "--not-applicable", "protocol.*")
    assert proc.returncode == ExitStatus.NOT_JUDGED, proc.stdout + proc.stderr
    assert "binder-harness: NOT JUDGED: no case judged; 0 passed, 0 failed, 0 error, 0 skipped, " \
           "1 not applicable" in proc.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [(c["id"], c["outcome"]) for c in report["cases"]] == [("protocol.version", "not_applicable")]
    assert not (tmp_path / "out" / "console.log").exists(), "a guest was started for a case declared not applicable"


# -- on a real QEMU guest -----------------------------------------------------------------------
def _junit_marks(path: Path) -> dict[str, list[tuple[str, str | None]]]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return {str(tc.get("name")): [(e.tag, e.get("type")) for e in tc if e.tag in ("failure", "error", "skipped")]
            for tc in suite.iter("testcase")}


def _valid_kcidb(path: Path) -> dict[str, str]:
    import kcidb_io

    data = json.loads(path.read_text())
    kcidb_io.schema.LATEST.validate(data)
    return {t["path"]: t["status"] for t in data["tests"]}


def _headline(run_dir: Path) -> str:
    html = (run_dir / "report.html").read_text()
    assert "could not be rendered" not in html, "report.html fell back"
    return html.split('<div class="banner ', 1)[1].split("</div>", 1)[0]


def test_a_skipped_case_on_a_real_guest_is_not_green(tmp_path):
    env = cli_env(BINDER_HARNESS_EXTRA_CASES=NOT_JUDGED_CASES)
    kcidb_file = tmp_path / "kcidb.json"
    run = cli("run", "protocol.version", SKIPPING, "--kcidb", str(kcidb_file), out=tmp_path / "skip", env=env)
    assert "Traceback" not in run.stderr
    assert run.status == ExitStatus.NOT_JUDGED, run.stderr
    line = "NOT JUDGED: 1 skipped; 1 passed, 0 failed, 0 error"
    assert run.stderr.strip().splitlines()[-1].startswith(f"{line}; report: "), run.stderr
    skipped = run.case(SKIPPING)
    assert skipped["outcome"] == "skipped"
    assert "struct binder_buffer has no member 'no_such_member'" in skipped["reason"]  # from the guest's own BTF
    assert run.case("protocol.version")["outcome"] == "passed"
    assert run.report["summary"] == {"passed": 1, "failed": 0, "error": 0, "skipped": 1, "not_applicable": 0}
    assert _headline(run.out) == f'notjudged">{line}'
    assert _junit_marks(run.out / "junit.xml") == {"protocol.version": [],
                                                   SKIPPING: [("skipped", "binder-harness.not_judged")]}
    assert _valid_kcidb(kcidb_file) == {"binder.protocol.version": "PASS", "binder.notjudged.missing_offset": "MISS"}

    # judge replays it and keeps the skip: still not green
    judged = cli("judge", str(run.out), env=env)
    assert judged.status == ExitStatus.NOT_JUDGED, judged.stderr
    assert f"{line}; report: " in judged.stderr

    # the user who knows it cannot apply says so: not run, not_applicable, exit 0
    kcidb_file = tmp_path / "kcidb-na.json"
    run = cli("run", "protocol.version", SKIPPING, "--not-applicable", "notjudged.*", "--kcidb", str(kcidb_file),
              out=tmp_path / "na", env=env)
    assert run.status == ExitStatus.PASSED, run.stderr
    line = "1 passed, 0 failed, 0 error, 0 skipped, 1 not applicable"
    assert run.stderr.strip().splitlines()[-1].startswith(f"{line}; report: "), run.stderr
    declared = run.case(SKIPPING)
    assert (declared["outcome"], declared["reason"]) == (
        "not_applicable", "not applicable: declared with --not-applicable notjudged.*; not run")
    assert not (run.out / "cases" / SKIPPING).exists(), "a case declared not applicable ran"
    assert run.report["summary"] == {"passed": 1, "failed": 0, "error": 0, "skipped": 0, "not_applicable": 1}
    assert _headline(run.out) == f'ok">{line}'
    assert _junit_marks(run.out / "junit.xml") == {"protocol.version": [],
                                                   SKIPPING: [("skipped", "binder-harness.not_applicable")]}
    assert _valid_kcidb(kcidb_file) == {"binder.protocol.version": "PASS", "binder.notjudged.missing_offset": "SKIP"}


def test_pytest_with_a_case_declared_not_applicable_is_green(tmp_path):
    proc = _pytest(tmp_path, "--target", "qemu:x86_64", "-rs", "-k", "protocol.version or compat.version",
                   "--not-applicable", "compat.version")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 skipped" in proc.stdout, proc.stdout
    assert "not applicable: declared with --not-applicable compat.version" in proc.stdout, proc.stdout
    assert "binder-harness: 1 passed, 0 failed, 0 error, 0 skipped, 1 not applicable" in proc.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {c["id"]: c["outcome"] for c in report["cases"]} == {"protocol.version": "passed",
                                                                "compat.version": "not_applicable"}
