"""report.json through its one model (harness/reports/model.py): a report written and read back is
the same report; a schema-1 report.json captured from a real run before the model existed loads,
renders and re-judges; a malformed one is one line naming the file and the field."""
from __future__ import annotations

import copy
import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from harness.errors import ConfigError
from harness.judging.verdicts import Check
from harness.reports import kcidb, model
from harness.reports.model import (REPORT_SCHEMA, DeviceNote, Guest, GuestStart, Judged, LavaResult, Report, ReportCase,
                                   ReportError, Target, Timings)
from harness.reports.report import junit_xml
from tests.helpers import DATA, cli, one_error_line
from tests.report_html import assert_full_page

# binder-harness run 'protocol.*' --target qemu:x86_64: Debian 6.1.0-57-amd64 under TCG, 15 passed.
# Its cases/, uapi.json and console.log as written; its report.json written back in schema 1
# (schema 2 less each case's `dir` and `target.driver`, the only fields schema 2 added). Captured
# again whenever the catalog's probe output changes, since judge replays today's cases on it
# (last: the proc-view checkpoints of issue 22).
SCHEMA_1_RUN = DATA / "run-protocol-schema1-x86_64"


@pytest.fixture
def schema_1_run(tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(SCHEMA_1_RUN, dest)
    return dest


def _every_part() -> Report:
    """A report with every part the model knows, and fields it does not (a newer harness's)."""
    checks = [Check("BINDER_VERSION errno", "0", "0", True, "binder_ioctl"),
              Check("size 4096: user->buffer bytes", 4096, 4097, False, "binder_alloc_copy_user_to_buffer"),
              Check("procs left", [], [1234], False, "binder_deferred_release"),
              Check("odd values", {"a": [1, 2.5, None]}, True, False, "print_binder_stats")]
    return Report(
        Target("qemu:x86_64", "x86_64", "6.1.0-57-amd64", "tcg", "QEMU aborted under KVM at boot, fell back",
               "stock", "96049cad", "ab" * 32, "qemu-x86_64", "debian linux-image-6.1.0-57-amd64=6.1.192-3",
               driver="c", extra={"future_target_field": {"x": 1}}),
        [ReportCase("protocol.version", "passed", "1 checks passed", 2.059, {"binder_device": {"path": "/dev/binder"}},
                    checks[:1], None, GuestStart("restored", "e3d80b9f9a2bee61", True)),
         ReportCase("one_copy.sync_sizes", "failed", "size 4096: ...", 0.4, {"transactions": [{"size": 8}]},
                    checks[1:], 1, GuestStart("booted", None, False), "gw1/cases/one_copy.sync_sizes", "replayed",
                    extra={"future_case_field": "kept"}),
         ReportCase("compat.version", "not_applicable", "no CONFIG_COMPAT"),
         ReportCase("protocol.ping", "flaky", "an outcome from elsewhere", judged="pending")],
        Timings(1.5, 16.296, 1, 9.459, 15, {"startup": 0.57, "probe": 8.154}, extra={"future": 1}),
        "binder-harness run 'protocol.*' --target qemu:x86_64 --out /tmp/r1", 4242,
        coverage={"error": "no header"}, jobs=2,
        guests=[Guest(0, ["protocol.version"], "guests/0/console.log", 1, 7, 1.5, 3.2),
                Guest(1, ["one_copy.sync_sizes"], "gw1/console.log", 0, 8, dir="gw1")],
        resident_context_manager={"device": "/dev/binder", "pid": 77, "started": True},
        lava=LavaResult("pass", "output/lava-run.log", {"protocol.version": "pass"}),
        judged=Judged("binder-harness judge", "2026-12-07T05:00:00+00:00", {"compat.version": "recorded"},
                      {"one_copy.sync_sizes": "1 checks made live, not in this replay: x"}),
        extra={"future_top_level": [1, 2]})


def test_round_trip_write_then_read_is_equal(tmp_path):
    report = _every_part()
    path = model.write(report, tmp_path)
    assert path == tmp_path / "report.json"
    again = model.read(path)
    assert again == report
    assert model.read(model.write(again, tmp_path)) == report
    written = json.loads(path.read_text())
    assert written["schema"] == REPORT_SCHEMA == 2
    assert written["summary"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 0, "not_applicable": 1,
                                  "flaky": 1}
    assert written["target"]["driver"] == "c" and written["target"]["future_target_field"] == {"x": 1}
    assert written["cases"][0]["dir"] == "cases/protocol.version"  # schema 2: every case names its files


def test_a_case_result_reads_back_as_it_was_written():
    report = _every_part()
    for case in report.cases[:3]:
        assert ReportCase.of(case.result(), case.dir) == ReportCase(
            case.id, case.outcome, case.reason, case.duration_s, case.evidence, case.checks, case.guest,
            case.guest_start, case.dir)
    assert report.cases[3].known_outcome is None  # "flaky": never turned into a pass, nor lost on rewrite


def test_schema_1_run_loads_as_written(schema_1_run):
    written = json.loads((schema_1_run / "report.json").read_text())
    assert written["schema"] == 1 and all("dir" not in c for c in written["cases"])
    report = model.load_run(schema_1_run)
    assert report.schema == 1
    assert report.target == Target("qemu:x86_64", "x86_64", "6.1.0-57-amd64", "tcg",
                                   "QEMU aborted under KVM at boot, fell back", "stock", "96049cad33f7096bafe3ae1e",
                                   None, "qemu-x86_64", "debian linux-image-6.1.0-57-amd64=6.1.192-3")
    assert [c.id for c in report.cases] == [c["id"] for c in written["cases"]] and len(report.cases) == 15
    assert report.summary == written["summary"] == {"passed": 15, "failed": 0, "error": 0, "skipped": 0,
                                                    "not_applicable": 0}
    assert report.timings.restores == 15 and report.timings.phases == written["timings"]["phases"]
    assert report.cases[0].guest_start == GuestStart("restored", "e3d80b9f9a2bee61", True)
    assert report.cases[0].files(schema_1_run) == schema_1_run / "cases" / "protocol.version"
    assert {c.binder_device for c in report.cases} == {  # the envelope's device, read by judge
        DeviceNote("/dev/binder", "the kernel's default device (CONFIG_ANDROID_BINDER_DEVICES)")}
    # written again it is schema 2: the same fields, each case naming its files, nothing else changed
    again = report.to_json()
    assert again == {**written, "schema": 2,
                     "cases": [{**c, "dir": f"cases/{c['id']}"} for c in written["cases"]]}


def test_schema_1_run_renders(schema_1_run, tmp_path):
    import kcidb_io

    rendered = cli("report", str(schema_1_run))
    assert rendered.status == 0, rendered.stderr
    page = assert_full_page(schema_1_run)
    assert [r[1][1] for r in page.tables["verdicts"][1:]] == ["passed"] * 15
    assert "(schema 1)" in page.text
    report = model.load_run(schema_1_run)
    suite = ET.fromstring(junit_xml(report)).find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("15", "0", "0")
    document = kcidb.document([report])
    kcidb_io.schema.LATEST.validate(document)
    assert {t["status"] for t in document["tests"]} == {"PASS"} and len(document["tests"]) == 15


def test_schema_1_run_judges_to_the_same_verdicts(schema_1_run):
    before = model.load_run(schema_1_run)
    judged = cli("judge", str(schema_1_run))
    assert judged.status == 0, judged.stderr
    after = model.load_run(schema_1_run)
    assert after.schema == 2
    # the same outcome for every case, and every check the run recorded judged the same again (the
    # catalog has grown since the capture: its new checks and refs are judged from the same files)
    assert [(c.id, c.outcome) for c in after.cases] == [(c.id, c.outcome) for c in before.cases]
    for was, now in zip(before.cases, after.cases):
        again = {(k.name, str(k.expected)): (k.measured, k.passed) for k in now.checks}
        kept = [(k.name, str(k.expected)) for k in was.checks if (k.name, str(k.expected)) in again]
        assert len(kept) >= len(was.checks) - 2, (was.id, len(kept), len(was.checks))
        assert {key: again[key] for key in kept} == \
            {(k.name, str(k.expected)): (k.measured, k.passed) for k in was.checks if (k.name, str(k.expected)) in again}
    assert after.judged is not None and after.judged.kept_as_recorded == {}
    # the one check added since the capture is named as made in the replay, not live
    assert after.judged.notes == {"protocol.death_notification": "1 checks made in this replay, not live: call to "
                                  "the dead server: BINDER_GET_EXTENDED_ERROR command"}
    assert {c.judged for c in after.cases} == {"replayed", "replayed; " + after.judged.notes["protocol.death_notification"]}


def _broken(path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _set(where: str, value):
    """An edit of the report.json at a field path like 'cases.3.outcome'."""
    def edit(data):
        *parents, last = where.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is KeyError:
            del node[int(last) if isinstance(node, list) else last]
        else:
            node[int(last) if isinstance(node, list) else last] = value
    return edit


@pytest.mark.parametrize("edit, problem", [
    (_set("cases.3.outcome", 7), "field 'cases[3].outcome' is 7, expected a string"),
    (_set("cases.0.checks.2.passed", "yes"), "field 'cases[0].checks[2].passed' is \"yes\", expected true or false"),
    (_set("cases.0.checks.1.ref", KeyError), "field 'cases[0].checks[1].ref' is missing"),
    (_set("cases.1", 5), "field 'cases[1]' is 5, expected a JSON object"),
    (_set("cases.2.guest_start.fresh", "no"), "field 'cases[2].guest_start.fresh' is \"no\", expected true or false"),
    (_set("target.spec", KeyError), "field 'target.spec' is missing"),
    (_set("target.kernel_release", 6), "field 'target.kernel_release' is 6, expected a string or null"),
    (_set("timings.total_s", "fast"), "field 'timings.total_s' is \"fast\", expected a number"),
    (_set("timings", []), "field 'timings' is a JSON list, expected a JSON object"),
    (_set("schema", "2"), "field 'schema' is \"2\", expected 1 or 2"),
    (_set("schema", KeyError), "field 'schema' is missing, expected 1 or 2"),
])
def test_a_malformed_report_is_one_line_naming_file_and_field(schema_1_run, edit, problem):
    path = schema_1_run / "report.json"
    _broken(path, edit)
    with pytest.raises(ReportError) as caught:
        model.read(path)
    assert isinstance(caught.value, ConfigError)
    assert str(caught.value).startswith(f"{path}: {problem}; ")
    for command in ("report", "judge"):
        assert one_error_line(cli(command, str(schema_1_run))) == f"binder-harness: {caught.value}"


def test_a_malformed_report_read_in_memory_names_what_was_given():
    data = copy.deepcopy(_every_part().to_json())
    data["cases"][1]["checks"] = {"not": "a list"}
    with pytest.raises(ReportError, match=r"^cell x86_64/qemu-x86_64: field 'cases\[1\]\.checks' is a JSON object, "
                                          r"expected a JSON list; "):
        model.from_json(data, "cell x86_64/qemu-x86_64")
