"""The C-against-Rust table (harness/reports/driver_compare.py), on two real runs of Debian's 7.3.4
source captured in tests/data/driver-compare-7.3-x86_64/: c/ is `binder-harness run --image
qemu-x86_64-7.3 --target qemu:x86_64` (the C driver as a module), rust/ is `--image
qemu-x86_64-7.3-rust` (the Rust driver built in), each report.json with its evidence left out.

The captured outcomes are those of the day they were captured; what is asserted here is how the
table is made from any two reports (agreement counted from the outcomes, each kind of difference
found and explained), checked against values read from the files themselves, never against
today's catalog."""
from __future__ import annotations

import copy
import html.parser
import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.judging.verdicts import Check
from harness.reports import driver_compare as dc
from harness.reports import comparison_html
from harness.reports import html as html_report
from harness.reports import model
from harness.reports.model import Report
from tests.helpers import REPO, cli, one_error_line

DATA = REPO / "tests" / "data" / "driver-compare-7.3-x86_64"
C_RUN, RUST_RUN = DATA / "c", DATA / "rust"


def _raw(run: Path) -> dict:
    return json.loads((run / "report.json").read_text())


@pytest.fixture
def c_report() -> Report:
    return model.load_run(C_RUN)


@pytest.fixture
def rust_report() -> Report:
    return model.load_run(RUST_RUN)


@pytest.fixture
def table(c_report, rust_report) -> dc.DriverComparison:
    return dc.compare(c_report, rust_report, "c/report.json", "rust/report.json")


def _case(table: dc.DriverComparison, case_id: str) -> dc.CaseComparison:
    return next(c for c in table.cases if c.id == case_id)


def _with_check(report: Report, case_id: str, name: str, **change) -> Report:
    """The report with one check of one case changed (a copy)."""
    out = copy.deepcopy(report)
    case = next(c for c in out.cases if c.id == case_id)
    case.checks = [replace(k, **change) if k.name == name else k for k in case.checks]
    return out


def test_the_captured_runs_are_one_c_and_one_rust_run_of_one_kernel():
    c, rust = _raw(C_RUN)["target"], _raw(RUST_RUN)["target"]
    assert (c["driver"], rust["driver"]) == ("c", "rust")
    assert dc.kernel_version(c["kernel_release"]) == dc.kernel_version(rust["kernel_release"]) == "7.3.4"


def test_every_case_is_paired_once_and_agreement_is_the_same_outcome(table):
    c_cases = {k["id"]: k["outcome"] for k in _raw(C_RUN)["cases"]}
    rust_cases = {k["id"]: k["outcome"] for k in _raw(RUST_RUN)["cases"]}
    assert [c.id for c in table.cases] == list(c_cases) + [i for i in rust_cases if i not in c_cases]
    for case in table.cases:
        assert (case.c_outcome, case.rust_outcome) == (c_cases[case.id], rust_cases[case.id])
        assert case.agree == (c_cases[case.id] == rust_cases[case.id])
    assert table.agreeing == sum(c_cases[i] == rust_cases.get(i) for i in c_cases)
    assert f"{table.agreeing} of {len(c_cases)} cases agree" in table.summary_line()


def test_the_two_runs_compare_alike_in_either_order(c_report, rust_report, table):
    assert dc.compare(rust_report, c_report, "rust/report.json", "c/report.json") == table


def test_a_check_that_passes_on_one_driver_only_shows_both_measured_values_and_its_ref(table):
    c_checks = {k["name"]: k for k in next(c for c in _raw(C_RUN)["cases"] if c["id"] == "protocol.null_args")["checks"]}
    diff = next(d for d in _case(table, "protocol.null_args").differences if d.name == "BINDER_SET_MAX_THREADS(NULL)")
    assert diff.kinds == (dc.VERDICT,)
    assert diff.c is not None and diff.rust is not None and diff.c.passed and not diff.rust.passed
    line = dc.explained(diff)
    assert line == (f"passes on C, fails on Rust: measured C {diff.c.measured}, Rust {diff.rust.measured}, "
                    f"expected {diff.c.expected} ({c_checks['BINDER_SET_MAX_THREADS(NULL)']['ref']})")


def test_every_check_failing_on_one_side_only_is_a_verdict_difference(table):
    for case in table.cases:
        c_raw = next(c for c in _raw(C_RUN)["cases"] if c["id"] == case.id)
        r_raw = next(c for c in _raw(RUST_RUN)["cases"] if c["id"] == case.id)
        c_failing = {k["name"] for k in c_raw["checks"] if not k["passed"]}
        r_failing = {k["name"] for k in r_raw["checks"] if not k["passed"]}
        both = {k["name"] for k in c_raw["checks"]} & {k["name"] for k in r_raw["checks"]}
        verdicts = {d.name for d in case.of_kind(dc.VERDICT)}
        assert verdicts == (c_failing ^ r_failing) & both, case.id


def test_a_declared_expectation_shows_both_values_and_both_refs(c_report, rust_report):
    name = "BINDER_SET_MAX_THREADS(NULL)"
    ref = "drivers/android/binder/rust_binder_main.rs: rust_binder_ioctl (UserSlice read fails -> EFAULT)"
    declared = _with_check(rust_report, "protocol.null_args", name, expected="EFAULT", passed=True, ref=ref)
    diff = next(d for d in _case(dc.compare(c_report, declared), "protocol.null_args").differences if d.name == name)
    assert diff.kinds == (dc.DECLARED,)
    assert diff.c is not None
    assert dc.explained(diff) == f"expected C {diff.c.expected}, Rust EFAULT; refs C ({diff.c.ref}), Rust ({ref})"


def test_an_expected_value_taken_from_the_run_under_one_ref_is_told_apart(table):
    """objects.fd expects the sender's file's inode: each run's own, under the same ref."""
    same_ref = _case(table, "objects.fd").of_kind(dc.SAME_REF)
    assert same_ref
    for d in same_ref:
        assert d.c is not None and d.rust is not None
        assert d.c.ref == d.rust.ref and d.c.expected != d.rust.expected
        assert dc.DECLARED not in d.kinds


def test_checks_only_one_driver_makes_are_listed_with_their_side(table):
    case = _case(table, "loopers.poll_epoll")
    c_names = {k["name"] for k in next(c for c in _raw(C_RUN)["cases"] if c["id"] == case.id)["checks"]}
    r_names = {k["name"] for k in next(c for c in _raw(RUST_RUN)["cases"] if c["id"] == case.id)["checks"]}
    assert {d.name for d in case.of_kind(dc.ONLY_C)} == c_names - r_names
    assert {d.name for d in case.of_kind(dc.ONLY_RUST)} == r_names - c_names
    assert all(d.rust is None for d in case.of_kind(dc.ONLY_C))


def test_checks_of_one_name_pair_in_order(c_report, rust_report):
    """A case that makes a name twice is paired n-th with n-th: a third on one side is one-sided."""
    base = next(c for c in rust_report.cases if c.id == "protocol.version")
    extra = Check("made twice", 1, 1, True, "binder_ioctl")
    c = copy.deepcopy(c_report)
    next(k for k in c.cases if k.id == base.id).checks += [extra, extra]
    rust = copy.deepcopy(rust_report)
    next(k for k in rust.cases if k.id == base.id).checks += [extra]
    case = _case(dc.compare(c, rust), base.id)
    assert [d.kinds for d in case.differences if d.name == "made twice"] == [(dc.ONLY_C,)]


def test_a_case_not_judged_on_one_side_gives_that_sides_reason(table):
    for case in table.cases:
        if case.rust_outcome == "skipped":
            raw = next(c for c in _raw(RUST_RUN)["cases"] if c["id"] == case.id)
            assert (dc.RUST, raw["reason"]) in case.reasons()
            assert not case.agree


def test_a_case_absent_from_one_run_does_not_agree(c_report, rust_report):
    rust = replace(rust_report, cases=rust_report.cases[1:])
    first = dc.compare(c_report, rust).cases[0]
    assert first.rust_outcome == dc.ABSENT and not first.agree
    assert (dc.RUST, "not in this run") in first.reasons()


@pytest.mark.parametrize("change, says", [
    (lambda r: replace(r, target=replace(r.target, driver="c")), "target.driver is 'c', as in"),
    (lambda r: replace(r, target=replace(r.target, driver=None)), "target.driver is not recorded"),
    (lambda r: replace(r, target=replace(r.target, kernel_release="6.1.0-56-amd64")), "is not c/report.json's"),
    (lambda r: replace(r, target=replace(r.target, arch="arm64")), "target.arch is arm64"),
    (lambda r: replace(r, target=replace(r.target, kernel_source="built from linux-source-7.3=7.3.5-1")),
     "source version 7.3.5-1"),
])
def test_reports_that_are_not_one_c_and_one_rust_run_of_one_kernel_are_refused(c_report, rust_report, change, says):
    with pytest.raises(dc.CompareError) as err:
        dc.compare(c_report, change(rust_report), "c/report.json", "rust/report.json")
    line = str(err.value)
    assert "\n" not in line and says in line
    assert line.startswith(("rust/report.json:", "c/report.json:"))
    assert "binder-harness run --image" in line or "re-run" in line


def test_markdown_has_one_row_per_case_and_the_count_that_agree(table):
    text = dc.markdown(table)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == [c.id for c in table.cases]
    assert f"**{table.agreeing} of {len(table.cases)} cases agree**" in text
    for case in table.cases:
        row = next(r for r in rows if r.startswith(f"| `{case.id}` |"))
        assert row.split(" | ")[1:4] == [case.c_outcome, case.rust_outcome, "yes" if case.agree else "**no**"]
        if not case.agree:  # each case that differs is explained below the table
            assert f"**`{case.id}`**: C {case.c_outcome}, Rust {case.rust_outcome} (they differ)" in text


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.mismatched = 0

    def handle_starttag(self, tag, attrs):
        if tag not in ("meta", "br"):
            self.open.append(tag)

    def handle_endtag(self, tag):
        if self.open and self.open[-1] == tag:
            self.open.pop()
        else:
            self.mismatched += 1


def test_the_page_is_well_formed_and_holds_every_case(table):
    page = comparison_html.page(table)
    tags = _Tags()
    tags.feed(page)
    assert tags.open == [] and tags.mismatched == 0
    assert f"note {html_report.DEGRADED}" not in page
    for case in table.cases:
        assert f'<td class="mono">{case.id}</td>' in page
    assert f"<b>{table.agreeing} of {len(table.cases)} cases agree</b>" in page
    assert "http://" not in page and "https://" not in page  # self-contained


def test_compare_verb_writes_html_and_markdown(tmp_path):
    run = cli("compare", str(C_RUN), str(RUST_RUN), "--out", str(tmp_path / "t.html"), "--md", str(tmp_path / "t.md"))
    assert run.status == 0, run.stderr
    table = dc.compare(model.load_run(C_RUN), model.load_run(RUST_RUN), str(C_RUN / "report.json"),
                       str(RUST_RUN / "report.json"))
    assert (tmp_path / "t.md").read_text() == dc.markdown(table)
    assert "cases agree" in (tmp_path / "t.html").read_text()
    assert f"compare: {table.summary_line()}" in run.stderr


def test_compare_verb_refuses_two_c_runs_in_one_line():
    line = one_error_line(cli("compare", str(C_RUN), str(C_RUN)))
    assert line.startswith(f"binder-harness: {C_RUN / 'report.json'}: target.driver is 'c'")


def test_compare_verb_refuses_a_run_without_a_driver():
    line = one_error_line(cli("compare", str(C_RUN), str(REPO / "tests" / "data" / "run-sync_sizes-x86_64")))
    assert "target.driver is not recorded" in line


def test_report_compare_adds_the_table_to_report_html(tmp_path):
    run_dir = tmp_path / "rust"
    run_dir.mkdir()
    (run_dir / "report.json").write_text((RUST_RUN / "report.json").read_text())
    run = cli("report", str(run_dir), "--compare", str(C_RUN))
    assert run.status == 0, run.stderr
    page = (run_dir / "report.html").read_text()
    assert "<h2>C driver against Rust driver</h2>" in page and f"note {html_report.DEGRADED}" not in page
    assert cli("report", str(run_dir)).status == 0
    assert "<h2>C driver against Rust driver</h2>" not in (run_dir / "report.html").read_text()


def test_a_matrix_with_a_c_and_a_rust_cell_of_one_kernel_writes_the_table(tmp_path, c_report, rust_report):
    from harness.building.recipes import find_recipe, load_recipe
    from harness.running.matrix import Cell, CellOutcome, Matrix, write_combined
    from harness.targets.spec import TargetSpec

    target = TargetSpec.parse("qemu:x86_64")
    cells = [CellOutcome(Cell(target, load_recipe(find_recipe(name))), "done", report=report)
             for name, report in (("qemu-x86_64-7.3", c_report), ("qemu-x86_64-7.3-rust", rust_report),
                                  ("qemu-x86_64-6.1.0-56", replace(c_report, target=replace(
                                      c_report.target, kernel_release="6.1.0-56-amd64"))))]
    write_combined(Matrix(REPO / "cases" / "nightly.yaml", tuple(o.cell for o in cells), ()), cells, tmp_path, "", 1.0)
    listed = json.loads((tmp_path / "matrix.json").read_text())["driver_comparisons"]
    table = dc.compare(c_report, rust_report)
    assert listed == [{"c_cell": "x86_64/qemu-x86_64-7.3", "rust_cell": "x86_64/qemu-x86_64-7.3-rust",
                       "arch": "x86_64", "kernel_version": "7.3.4", "cases": len(table.cases),
                       "agree": table.agreeing, "html": "rust-vs-c-x86_64-7.3.4.html",
                       "md": "rust-vs-c-x86_64-7.3.4.md"}]
    assert "cases agree" in (tmp_path / "rust-vs-c-x86_64-7.3.4.md").read_text()
    assert "cases agree" in (tmp_path / "rust-vs-c-x86_64-7.3.4.html").read_text()
