"""Reports from real runs on a guest: report.html, trace.txt and junit.xml, for a passing
run, a run failed by a seeded double-copy driver, and the same case through pytest."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.helpers import REPO, cli
from tests.report_html import external_references, read_page
from tests.seeded_bugs import build
from tests.test_trace_format import assert_perfetto_ready

SIZES = (8, 4096, 10000, 65536, 1040384)


def _page(run_dir):
    html = (run_dir / "report.html").read_text()
    page = read_page(html)
    assert external_references(html, page) == []
    return page


def test_passing_run_reports(tmp_path):
    run = cli("run", "one_copy.sync_sizes", "--target", "qemu:x86_64", out=tmp_path)
    assert run.status == 0, run.stderr
    assert f"report: {tmp_path / 'report.html'}" in run.stderr
    page = _page(tmp_path)
    assert page.tables["verdicts"][1][1][1] == "passed"
    assert len(page.svgs) == 3
    assert run.report["command"] in page.text
    assert_perfetto_ready((tmp_path / "trace.txt").read_text())
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "0"
    case = suite.find("testcase")
    assert case.get("name") == "one_copy.sync_sizes" and case.find("failure") is None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert [t["size"] for t in json.loads(props["transactions"])] == list(SIZES)


@pytest.fixture(scope="module")
def double_copy():
    build.ensure_build_deps(build.DEFAULT_RELEASE)
    return build.build_module("double_copy")


def test_double_copy_run_shows_expected_against_measured(tmp_path, double_copy):
    run = cli("run", "one_copy.sync_sizes", "--binder-module", str(double_copy), out=tmp_path)
    assert run.status == 1, run.stderr
    page = _page(tmp_path)
    verdict = page.tables["verdicts"][1]
    assert [c[1] for c in verdict[1:2]] == ["failed"]
    assert "expected 1.0, measured 2.0" in verdict[2][1]
    bad = [r for r in page.tables["checks"] if r[0][1] == "✘"]
    per_byte = [r for r in bad if "kernel copies per payload byte" in r[1][1]]
    assert len(per_byte) == len(SIZES)
    for row in per_byte:
        assert [(c[0], c[1]) for c in row[2:5]] == [("exp mono", "1.0"), ("meas mono", "2.0"),
                                                    ("mono", "binder_transaction")]
    sha = run.report["target"]["binder_module_sha256"]
    assert sha in page.text and str(double_copy) in page.text
    assert any(label.startswith("binder: kernel copies per payload byte") for label in page.svgs)
    testcase = ET.parse(tmp_path / "junit.xml").getroot().find(".//testcase")
    failure = testcase.find("failure")
    assert failure.get("message") == run.case("one_copy.sync_sizes")["reason"]
    assert failure.text.splitlines()[0].startswith("FAIL size 8: kernel copies per payload byte")
    assert "expected 1.0, measured 2.0 (binder_transaction)" in failure.text


def test_same_case_through_pytest_writes_html_and_junit(tmp_path):
    """pytest cases/ --target runs the case on a real guest, with the same report files."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "cases/", "-q", "-p", "no:cacheprovider", "--target", "qemu:x86_64",
         "--bh-out", str(out), "--junitxml", str(tmp_path / "junit.xml"), "-k", "sync_sizes"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert [c["outcome"] for c in json.loads((out / "report.json").read_text())["cases"]] == ["passed"]
    assert _page(out).tables["verdicts"][1][0][1] == "one_copy.sync_sizes"
    testcase = ET.parse(tmp_path / "junit.xml").getroot().find(".//testcase")
    assert testcase.get("name") == "one_copy.sync_sizes"
    props = {p.get("name"): p.get("value") for p in testcase.iter("property")}
    # 50 (its own and the WARNING/BUG health check), then no undeclared binder line, accounting x2,
    # and the failed-transaction log x3
    assert props["reason"] == "56 checks passed"  # 53 + the failed-transaction log's three (issue 22)
    assert [t["copies_per_byte"] for t in json.loads(props["transactions"])] == [1.0] * len(SIZES)
