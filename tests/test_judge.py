"""`binder-harness judge RUN_DIR`: the verdicts of a real run, reproduced from its recorded
evidence with no target, and flipped by an edit to that evidence."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from cases._expect import LOG_LINE_CHECK
from harness.judging.health import PRISTINE_ONLY_CHECKS
from tests.helpers import CliRun, assert_judge_reproduces, cli, one_error_line
from tests.seeded_bugs import build

CASES = ("one_copy.sync_sizes", "limits.mmap_twice", "limits.free_reuse", "stress.random_commands")


def _verdicts(report: dict) -> dict:
    return {c["id"]: (c["outcome"], c["reason"], c["checks"]) for c in report["cases"]}


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory):
    """One real run on the stock driver (no --seed: the stress case draws one and records it)."""
    out = tmp_path_factory.mktemp("run")
    run = cli("run", *CASES, "--target", "qemu:x86_64", out=out, timeout=600)
    assert run.status == 0, run.stderr
    return out


def test_judge_reproduces_every_verdict_and_check(recorded_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(recorded_run, run_dir)
    before = json.loads((run_dir / "report.json").read_text())
    (run_dir / "report.html").unlink()
    judged = cli("judge", str(run_dir))
    assert judged.status == 0, judged.stderr
    after = json.loads((run_dir / "report.json").read_text())
    assert _verdicts(after) == _verdicts(before)
    assert [c["evidence"] for c in after["cases"]] == [c["evidence"] for c in before["cases"]]
    assert after["judged"]["kept_as_recorded"] == {}
    assert after["target"] == before["target"]
    assert [c["guest_start"] for c in after["cases"]] == [c["guest_start"] for c in before["cases"]]
    assert (run_dir / "report.html").exists() and "one_copy.sync_sizes" in (run_dir / "junit.xml").read_text()


def test_an_edited_byte_count_flips_the_verdict_naming_the_value(recorded_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(recorded_run, run_dir)
    trace = run_dir / "cases" / "one_copy.sync_sizes" / "trace.txt"
    text, edits = re.subn(r"bytes=65536 ", "bytes=65537 ", trace.read_text(), count=1)
    assert edits == 1
    trace.write_text(text)
    judged = cli("judge", str(run_dir))
    assert judged.status == 1
    case = next(c for c in json.loads((run_dir / "report.json").read_text())["cases"]
                if c["id"] == "one_copy.sync_sizes")
    assert case["outcome"] == "failed"
    assert "size 65536: user->buffer bytes: expected 65536, measured 65537" in case["reason"], case["reason"]
    junit = (run_dir / "junit.xml").read_text()
    assert "measured 65537" in junit


def test_a_case_asking_for_what_was_not_recorded_needs_a_live_target(recorded_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(recorded_run, run_dir)
    path = run_dir / "cases" / "limits.free_reuse" / "recording.json"
    recording = json.loads(path.read_text())
    recording["steps"] = [s for s in recording["steps"] if s["step"] != "probe" or s["run"] == 1]
    path.write_text(json.dumps(recording))
    judged = cli("judge", str(run_dir))
    assert judged.status == 1
    case = next(c for c in json.loads((run_dir / "report.json").read_text())["cases"]
                if c["id"] == "limits.free_reuse")
    assert case["outcome"] == "error"
    assert case["reason"].startswith("needs a live target: probe run 2 "), case["reason"]


def test_judge_keeps_the_verdict_of_a_double_copy_module(tmp_path):
    build.ensure_build_deps(build.DEFAULT_RELEASE)
    module = build.build_module("double_copy")
    run = cli("run", "one_copy.sync_sizes", "--target", "qemu:x86_64", "--binder-module", str(module),
              out=tmp_path, timeout=600)
    assert run.status == 1
    assert_judge_reproduces(run)
    before = run.report
    judged = cli("judge", str(tmp_path))
    assert judged.status == 1
    assert _verdicts(json.loads((tmp_path / "report.json").read_text())) == _verdicts(before)
    assert "measured 2.0" in before["cases"][0]["reason"]


# The cases that check the driver's rate-limited log line, on a pristine guest only (note_dmesg).
LOG_LINE_CASES = ("limits.mmap_clamp_4m", "limits.mmap_readonly", "limits.oneway_spam", "limits.munmap_dead")


def _log_line_checks(case: dict) -> list[tuple[str, bool]]:
    return [(c["name"], c["passed"]) for c in case["checks"] if c["name"].startswith(LOG_LINE_CHECK)]


@pytest.fixture(scope="module")
def log_line_run(tmp_path_factory) -> CliRun:
    """The log-line cases on one shared boot with a module that does not clamp the area to 4 MiB:
    the first case (its guest pristine) fails its log-line check, as the "no address space" line
    never comes; the later ones (not pristine) make no log-line check."""
    build.ensure_build_deps(build.DEFAULT_RELEASE)
    module = build.build_module("no_mmap_clamp")
    out = tmp_path_factory.mktemp("log_lines")
    run = cli("run", *LOG_LINE_CASES, "--shared-boot", "--binder-module", str(module), "--target", "qemu:x86_64",
              out=out, timeout=600)
    assert run.status == 1, run.stderr
    assert _log_line_checks(run.case("limits.mmap_clamp_4m")) == [
        (f"{LOG_LINE_CHECK}binder_alloc_buf size 4194312 failed, no address space)", False)]
    assert [_log_line_checks(run.case(c)) for c in LOG_LINE_CASES[1:]] == [[], [], []]
    return run


def test_judge_keeps_a_failed_log_line_check_failed(log_line_run):
    """Unedited, judge makes the checks the live run made, pristine guest or not: the failed
    log-line check stays failed, and the cases of a shared guest make none."""
    judged = assert_judge_reproduces(log_line_run)
    clamp = next(c for c in judged["cases"] if c["id"] == "limits.mmap_clamp_4m")
    assert clamp["outcome"] == "failed", clamp["reason"]
    assert (f"{LOG_LINE_CHECK}binder_alloc_buf size 4194312 failed, no address space)", False) in \
        _log_line_checks(clamp), clamp["checks"]
    assert [c["guest_start"]["fresh"] for c in judged["cases"]] == [True, False, False, False]


def _as_schema_1(run_dir) -> None:
    """Rewrite every recording as a harness before recording_schema 2 wrote it: no `pristine`."""
    for path in run_dir.glob("cases/*/recording.json"):
        recording = json.loads(path.read_text())
        assert recording.pop("pristine") is (path.parent.name == LOG_LINE_CASES[0]), path
        path.write_text(json.dumps({**recording, "recording_schema": 1}))


def test_judge_derives_pristine_of_an_older_recording_from_guest_start(log_line_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(log_line_run.out, run_dir)
    _as_schema_1(run_dir)
    judged = cli("judge", str(run_dir))
    assert judged.status == 1, judged.stderr
    after = json.loads((run_dir / "report.json").read_text())
    assert _verdicts(after) == _verdicts(log_line_run.report)
    assert after["judged"]["notes"] == {}


def test_judge_says_which_checks_an_older_recording_cannot_replay(log_line_run, tmp_path):
    """Neither the recording nor report.json says whether the guest was pristine: the case is
    replayed as on a shared guest, and its judged note says that, naming each check the live run
    made that the replay could not."""
    run_dir = tmp_path / "run"
    shutil.copytree(log_line_run.out, run_dir)
    _as_schema_1(run_dir)
    report = json.loads((run_dir / "report.json").read_text())
    for case in report["cases"]:
        del case["guest_start"]
    (run_dir / "report.json").write_text(json.dumps(report))
    cli("judge", str(run_dir))
    after = json.loads((run_dir / "report.json").read_text())
    clamp = next(c for c in after["cases"] if c["id"] == "limits.mmap_clamp_4m")
    assert _log_line_checks(clamp) == []
    assert clamp["outcome"] == "failed"  # on its other failed check: the 4 MiB + 8 transaction went through
    note = after["judged"]["notes"]["limits.mmap_clamp_4m"]
    assert note.startswith("checks a case makes only on a pristine guest could not be replayed"), note
    live = log_line_run.case("limits.mmap_clamp_4m")["checks"]
    pristine_only = [c["name"] for c in live if c["name"].startswith((LOG_LINE_CHECK, *PRISTINE_ONLY_CHECKS))]
    assert f"{LOG_LINE_CHECK}binder_alloc_buf size 4194312 failed, no address space)" in pristine_only
    assert f"{len(pristine_only)} checks made live, not in this replay: " in note, note
    assert sorted(c["name"] for c in clamp["checks"]) == sorted(c["name"] for c in live
                                                                 if c["name"] not in pristine_only)
    assert clamp["judged"] == f"replayed; {note}"
    assert set(after["judged"]["notes"]) == set(LOG_LINE_CASES)  # none says whether its guest was pristine
    assert "guest_start" not in clamp


@pytest.mark.parametrize("setup, needle", [
    (lambda d: None, "not a directory"),
    (lambda d: d.mkdir(), "report.json: missing"),
    (lambda d: (d.mkdir(), (d / "report.json").write_text("{")), "not valid JSON"),
])
def test_judge_bad_run_dir_is_one_line(tmp_path, setup, needle):
    run_dir = tmp_path / "nope"
    setup(run_dir)
    assert needle in one_error_line(cli("judge", str(run_dir)))


def test_judge_unreadable_recording_is_one_line(recorded_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(recorded_run, run_dir)
    (run_dir / "cases" / "limits.mmap_twice" / "recording.json").write_text("not json")
    line = one_error_line(cli("judge", str(run_dir)))
    assert "limits.mmap_twice/recording.json: not readable JSON" in line


# -- KernelCI KCIDB -----------------------------------------------------------------------
def _valid_kcidb(path) -> dict:
    import kcidb_io

    data = json.loads(path.read_text())
    kcidb_io.schema.LATEST.validate(data)
    return data


def test_kcidb_from_run_and_judge_validates_with_kcidb_io(recorded_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(recorded_run, run_dir)
    trace = run_dir / "cases" / "one_copy.sync_sizes" / "trace.txt"
    trace.write_text(trace.read_text().replace("bytes=65536 ", "bytes=65537 ", 1))
    judged = cli("judge", str(run_dir), "--kcidb", str(tmp_path / "kcidb.json"))
    assert judged.status == 1
    data = _valid_kcidb(tmp_path / "kcidb.json")
    assert len(data["checkouts"]) == 1 and len(data["builds"]) == 1
    assert data["builds"][0]["architecture"] == "x86_64"
    status = {t["path"]: t["status"] for t in data["tests"]}
    assert status == {"binder.one_copy.sync_sizes": "FAIL", "binder.limits.mmap_twice": "PASS",
                      "binder.limits.free_reuse": "PASS", "binder.stress.random_commands": "PASS"}
    assert "measured 65537" in next(t["comment"] for t in data["tests"] if t["status"] == "FAIL")


def test_kcidb_from_a_matrix_validates_with_kcidb_io(tmp_path):
    matrix = tmp_path / "m.yaml"
    matrix.write_text("targets: [qemu:x86_64]\nkernels: [default]\ncases: [limits.mmap_twice, protocol.version]\n")
    run = cli("matrix", str(matrix), "--kcidb", str(tmp_path / "kcidb.json"), out=tmp_path / "out")
    assert run.status == 0, run.stderr
    data = _valid_kcidb(tmp_path / "kcidb.json")
    assert [t["status"] for t in data["tests"]] == ["PASS", "PASS"]
    assert data["builds"][0]["config_name"] == "qemu-x86_64"


def test_kcidb_to_a_missing_directory_is_one_line(tmp_path):
    line = one_error_line(cli("run", "protocol.version", "--kcidb", str(tmp_path / "no" / "k.json"),
                              out=tmp_path / "out"))
    assert "--kcidb" in line and "does not exist" in line


def test_judge_on_faults_keeps_errors_replays_timeouts_and_names_live_calls(tmp_path):
    """A panicked case keeps its recorded error; a probe killed by the time limit fails again from
    its recording; a case that ran a command on its target says it needs a live target."""
    from tests.helpers import REPO, cli_env

    env = cli_env(BINDER_HARNESS_EXTRA_CASES=str(REPO / "tests" / "fault_cases"))
    cases = ["fault.panic", "fault.probe_hang", "fault.sleep", "protocol.version"]
    run = cli("run", *cases, "--target", "qemu:x86_64", "--timeout", "1", out=tmp_path, env=env, timeout=600)
    before = {c["id"]: c for c in run.report["cases"]}
    assert before["fault.panic"]["outcome"] == "error"
    assert before["fault.probe_hang"]["reason"].startswith("probe run 1 (random) ends within the case time limit")
    judged = cli("judge", str(tmp_path), env=env)
    assert "Traceback" not in judged.stderr
    after = json.loads((tmp_path / "report.json").read_text())
    got = {c["id"]: c for c in after["cases"]}
    for case_id in ("fault.panic", "fault.probe_hang", "protocol.version"):
        assert (got[case_id]["outcome"], got[case_id]["reason"]) == \
            (before[case_id]["outcome"], before[case_id]["reason"]), case_id
    assert list(after["judged"]["kept_as_recorded"]) == ["fault.panic"]
    assert got["fault.sleep"]["outcome"] == "error"
    assert got["fault.sleep"]["reason"] == ("needs a live target: the case runs 'sleep 8' on its target, "
                                            "which a recording cannot answer")
