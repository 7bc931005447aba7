"""binder's failed_transaction_log against the failures the probe saw (harness/judging/accounting.py
compare_failed_log, harness/evidence/debugfs.py parse_transaction_log), on output captured from real
runs (Debian 6.1.0-57, x86_64, tests/data/failed_log/): the probe's {"ev":"commands"} lines and
debugfs failed_transaction_log after protocol.bad_buffer_ptr, limits.munmap_dead and
stress.random_commands (a ring that wrapped). No guest; the seeded modules failed_log_skip and
failed_log_param show the check failing on one (tests/seeded_bugs/README.md)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

from harness.evidence.debugfs import TRANSACTION_LOG_SLOTS, parse_transaction_log
from harness.judging.accounting import (FAILED_LOG_AFTER, FAILED_LOG_BEFORE, FailedTransactions, compare_failed_log,
                                        failure_lines, probe_ext_errors)
from harness.judging.catalog import load_cases
from harness.judging.context import CaseContext
from harness.judging.health import check_failed_log
from harness.judging.coverage import probe_seen
from harness.judging.verdicts import Outcome, judge
from harness.targets.base import Target

DATA = Path(__file__).parent / "data" / "failed_log"


def text(name: str) -> str:
    return (DATA / name).read_text()


def probe(name: str) -> tuple[dict[int, int], list[tuple[int, int, int]]]:
    lines = [text(f"{name}-commands-x86_64.jsonl")]
    return probe_seen(lines)["br"], probe_ext_errors(lines)


def test_parse_munmap_dead_entries() -> None:
    log = parse_transaction_log(text("munmap_dead-after-x86_64.txt"))
    assert not log.bad_lines
    assert [(e.debug_id, e.call_type, e.to_proc, e.to_node, e.return_error, e.return_error_param, e.return_error_line)
            for e in log.entries] == [(2, "call", 126, 1, 0x7205, -3, 3248), (3, "async", 126, 1, 0x7205, -3, 3248),
                                      (4, "call", 126, 1, 0x7205, -3, 3248)]
    assert not log.full and all(e.context == "binder" and not e.incomplete for e in log.entries)


def test_munmap_dead_matches_what_the_probe_read() -> None:
    br, ext = probe("munmap_dead")
    cmp = compare_failed_log("", text("munmap_dead-after-x86_64.txt"), br, None, ext)
    assert cmp.logged == {"BR_DEAD_REPLY": 3} == cmp.expected == cmp.seen
    assert cmp.passed and cmp.ext_read == 3 and not cmp.wrapped


def test_entries_before_the_case_are_not_its_own() -> None:
    after = text("bad_buffer_ptr-after-x86_64.txt")
    lines = after.splitlines(keepends=True)
    br, ext = probe("bad_buffer_ptr")
    cmp = compare_failed_log("".join(lines[:2]), after, br, None, ext)
    assert [e.debug_id for e in cmp.new] == [4, 5, 6, 7, 8]
    assert cmp.logged == {"BR_FAILED_REPLY": 5} and cmp.expected == {"BR_FAILED_REPLY": 7} and not cmp.matches


def test_a_missing_entry_is_caught_and_named() -> None:
    after = text("bad_buffer_ptr-after-x86_64.txt").splitlines(keepends=True)
    br, ext = probe("bad_buffer_ptr")
    cmp = compare_failed_log("", "".join(after[:-1]), br, None, ext)
    assert cmp.describe() == "BR_FAILED_REPLY 6" and not cmp.matches


def test_an_entry_with_another_errno_is_caught_by_the_extended_error() -> None:
    after = text("munmap_dead-after-x86_64.txt").replace("ret 29189/-3 l=3248", "ret 29189/-22 l=3248", 1)
    br, ext = probe("munmap_dead")
    cmp = compare_failed_log("", after, br, None, ext)
    assert cmp.matches and not cmp.passed
    assert cmp.ext_mismatches == ("extended error {id 2, BR_DEAD_REPLY, -3}: the log says BR_DEAD_REPLY -22 (l=3248)",)


def test_declared_unlogged_failures_are_subtracted() -> None:
    br, ext = probe("munmap_dead")
    declared = FailedTransactions(unlogged=(("BR_DEAD_REPLY", 1),), ref="binder_send_failed_reply")
    assert compare_failed_log("", text("munmap_dead-after-x86_64.txt"), br, declared, ext).expected == \
        {"BR_DEAD_REPLY": 2}


def test_a_wrapped_ring_is_judged_as_at_most() -> None:
    after = text("random_commands-after-x86_64.txt")
    assert len(parse_transaction_log(after).entries) == TRANSACTION_LOG_SLOTS
    br, ext = probe("random_commands")
    cmp = compare_failed_log("", after, br, None, ext)
    assert cmp.wrapped and cmp.logged == {"BR_FAILED_REPLY": 31, "BR_FROZEN_REPLY": 1}
    # measured: the random stream read no BR_FROZEN_REPLY though one was logged (declared uncounted)
    assert "BR_FROZEN_REPLY" not in cmp.seen and not cmp.matches
    assert not cmp.ext_mismatches  # every extended error it read is still in the ring, alike


def test_unreadable_lines_are_kept_not_raised() -> None:
    log = parse_transaction_log("garbage\n1: call  from 1:1 to 0:0 context binder node 0 handle 5 size 8:0 "
                                "ret 29201/-22 l=3063 (incomplete)\n")
    assert log.bad_lines == ["garbage"] and log.entries[0].incomplete
    assert compare_failed_log("", "garbage\n", {}).problem


def test_the_kernel_logs_failure_lines_agree_with_the_entries() -> None:
    br, ext = probe("munmap_dead")
    dmesg = text("munmap_dead-dmesg-x86_64.txt")
    assert failure_lines(dmesg) == {2: (0x7205, -3, 3248), 3: (0x7205, -3, 3248), 4: (0x7205, -3, 3248)}
    cmp = compare_failed_log("", text("munmap_dead-after-x86_64.txt"), br, None, ext, dmesg)
    assert cmp.passed and cmp.lines_read == 3


def test_a_failure_line_of_another_binder_line_is_caught() -> None:
    br, ext = probe("munmap_dead")
    dmesg = text("munmap_dead-dmesg-x86_64.txt").replace("failed 3/29189/-3, size 64-0 line 3248",
                                                         "failed 3/29189/-3, size 64-0 line 3249")
    cmp = compare_failed_log("", text("munmap_dead-after-x86_64.txt"), br, None, ext, dmesg)
    assert cmp.matches and not cmp.passed
    assert cmp.line_mismatches == ("entry 3 says BR_DEAD_REPLY -3 l=3248, the kernel log BR_DEAD_REPLY -3 line 3249",)


def test_7_2_failure_lines_carry_the_code() -> None:
    # measured on 7.2.13: "... failed 2/29189/-3, code 1 size 64-0 line 3409"
    assert failure_lines(text("munmap_dead-dmesg-7.2-x86_64.txt")) == {
        2: (0x7205, -3, 3409), 3: (0x7205, -3, 3409), 4: (0x7205, -3, 3409)}


# -- judged as a case's health check (harness/judging/health.py check_failed_log) --------------------
class Recorded:
    def info(self) -> SimpleNamespace:
        return SimpleNamespace(kernel_release="6.1.0-57-amd64")


def judged(case_id: str, tmp_path: Path, after: str, pristine: bool = True, dmesg: str = "") -> CaseContext:
    """check_failed_log and judge on the captured munmap_dead probe record and the log `after`."""
    (tmp_path / FAILED_LOG_BEFORE).write_text("")
    (tmp_path / FAILED_LOG_AFTER).write_text(after)
    (tmp_path / "probe-1.jsonl").write_text(text("munmap_dead-commands-x86_64.jsonl"))
    ctx = CaseContext(load_cases()[case_id], cast(Target, Recorded()), "", tmp_path, "", None, None, pristine=pristine)
    ctx.check("the case's own check", 1, 1, "probe")
    check_failed_log(ctx, dmesg)
    judge(ctx.result)
    return ctx


COUNT = "driver accounting: failed_transaction_log entries of the case, by return"


def test_a_case_whose_log_matches_passes_with_three_checks(tmp_path: Path) -> None:
    ctx = judged("limits.munmap_dead", tmp_path, text("munmap_dead-after-x86_64.txt"),
                 dmesg=text("munmap_dead-dmesg-x86_64.txt"))
    assert ctx.result.outcome == Outcome.PASSED, ctx.result.reason
    assert [c.measured for c in ctx.result.checks[1:]] == ["BR_DEAD_REPLY 3", "all 3 match", "all 3 match"]
    assert ctx.evidence["failed_transaction_log"]["probe_saw"] == {"BR_DEAD_REPLY": 3}


def test_a_missing_entry_fails_the_case_naming_the_counts(tmp_path: Path) -> None:
    lines = text("munmap_dead-after-x86_64.txt").splitlines(keepends=True)
    ctx = judged("limits.munmap_dead", tmp_path, "".join(lines[:2]))
    assert ctx.result.outcome == Outcome.FAILED
    assert ctx.result.reason.startswith(f"{COUNT}: expected BR_DEAD_REPLY 3, measured BR_DEAD_REPLY 2")


def test_on_a_shared_guest_it_is_evidence_only(tmp_path: Path) -> None:
    ctx = judged("limits.munmap_dead", tmp_path, "", pristine=False)
    assert ctx.result.outcome == Outcome.PASSED and len(ctx.result.checks) == 1
    assert ctx.evidence["failed_transaction_log"]["logged"] == {}


def test_a_case_declaring_its_failures_uncounted_keeps_the_per_entry_checks(tmp_path: Path) -> None:
    """stress.random_commands declares its count unknowable; the extended errors are still matched."""
    ctx = judged("stress.random_commands", tmp_path, "")
    assert ctx.evidence["failed_transaction_log_uncounted"].startswith("a random stream's processes exit")
    assert COUNT not in {c.name for c in ctx.result.checks}
    assert ctx.result.outcome == Outcome.FAILED  # the three extended errors name no entry of an empty log
    assert "no failed-log entry 2" in ctx.result.reason


def test_no_files_no_judgement(tmp_path: Path) -> None:
    ctx = CaseContext(load_cases()["limits.munmap_dead"], cast(Target, Recorded()), "", tmp_path, "", None, None,
                      pristine=True)
    assert check_failed_log(ctx) is None and "failed_transaction_log" not in ctx.evidence
