"""The undeclared-binder-line rule (DESIGN §4 health): each case declares the binder lines it
provokes (harness.judging.verdicts.Line: a whole-message pattern, a count where printk's rate
limits allow, the function that prints it); on a pristine guest any other binder line fails the
case with the line as the reason, and a counted line must appear exactly that often. Judged here
on kernel-log windows captured from real runs of the catalog (Debian 6.1.0-57, stock driver,
tests/data/dmesg/ARCH-CASE.txt), with no guest."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from harness.judging.catalog import CaseSpec, load_cases
from harness.judging.context import CaseContext
from harness.judging.health import check_health
from harness.judging.verdicts import BINDER_LOGGERS, Line, Outcome, expected_lines, judge, scan_dmesg
from harness.targets.base import Target

DATA = Path(__file__).parent / "data" / "dmesg"
CAPTURED = sorted(DATA.glob("*.txt"))
UNDECLARED = "kernel log: binder lines the case does not declare"
# What a revert of a real upstream binder fix made protocol.refs_after_thread_exit log (issue 22)
REVERT_LINES = ("[   10.101010] binder_linux: invalid inc weak node for 7\n"
                "[   10.101020] binder_linux: 123:123 IncRefs 0 refcount change on invalid ref 1 ret -22\n")


def captured(name: str) -> str:
    return (DATA / name).read_text()


# tests/data/dmesg/ARCH-VERSION-CASE.txt, e.g. x86_64-6.1.0-57-limits.free_reuse.txt
CAPTURED_NAME = re.compile(r"^(x86_64|arm64)-(\d+\.\d+\.\d+(?:-\d+)?)-([a-z_]+\.[a-z_0-9]+)$")


def case_of(path: Path) -> str:
    m = CAPTURED_NAME.match(path.stem)
    assert m, f"{path.name}: name it ARCH-VERSION-CASE.txt"
    return m.group(3)


def release_of(path: Path) -> str:
    """The kernel release the window was captured on (only its major.minor is judged)."""
    m = CAPTURED_NAME.match(path.stem)
    assert m, f"{path.name}: name it ARCH-VERSION-CASE.txt"
    return f"{m.group(2)}-{'amd64' if m.group(1) == 'x86_64' else m.group(1)}"


class Recorded:
    """Stands for the target the window was captured on: only its kernel release is asked for."""

    def __init__(self, release: str) -> None:
        self.release = release

    def info(self) -> SimpleNamespace:
        return SimpleNamespace(kernel_release=self.release)


def judged(case_id: str, dmesg: str, tmp_path: Path, pristine: bool = True,
           release: str = "6.1.0-57-amd64") -> CaseContext:
    """check_health and judge on `dmesg` as a case's window, after one passing check of its own."""
    ctx = CaseContext(load_cases()[case_id], cast(Target, Recorded(release)), "", tmp_path, "", None, None,
                      pristine=pristine)
    ctx.check("the case's own check", 1, 1, "probe")
    check_health(ctx, dmesg)
    judge(ctx.result)
    return ctx


@pytest.mark.parametrize("path", CAPTURED, ids=lambda p: p.stem)
def test_each_captured_window_is_exactly_what_its_case_declares(path, tmp_path):
    ctx = judged(case_of(path), path.read_text(), tmp_path, release=release_of(path))
    assert ctx.result.outcome == Outcome.PASSED, ctx.result.reason
    assert "unexpected_binder_messages" not in ctx.evidence
    counted = [c for c in ctx.result.checks if c.name.startswith("kernel log: lines /")]
    declared = expected_lines(ctx.spec.expected_dmesg, ctx.kernel, ctx.driver.name)
    assert len(counted) == len([line for line in declared if line.count is not None])
    assert all(c.passed for c in counted)


def test_an_undeclared_line_fails_a_pristine_case_with_the_line_as_the_reason(tmp_path):
    window = captured("x86_64-6.1.0-57-protocol.refs_after_thread_exit.txt") + REVERT_LINES
    ctx = judged("protocol.refs_after_thread_exit", window, tmp_path)
    assert ctx.result.outcome == Outcome.FAILED
    assert ctx.result.reason == (f"{UNDECLARED}: expected none, measured binder_linux: invalid inc weak node for 7 "
                                 f"(+1 more in evidence unexpected_binder_messages) ({BINDER_LOGGERS})")
    assert ctx.evidence["unexpected_binder_messages"] == [line.strip() for line in REVERT_LINES.splitlines()]


def test_on_a_shared_boot_an_undeclared_line_is_evidence_only(tmp_path):
    window = captured("x86_64-6.1.0-57-protocol.refs_after_thread_exit.txt") + REVERT_LINES
    ctx = judged("protocol.refs_after_thread_exit", window, tmp_path, pristine=False)
    assert ctx.result.outcome == Outcome.PASSED, ctx.result.reason
    assert len(ctx.evidence["unexpected_binder_messages"]) == 2
    assert not [c for c in ctx.result.checks if c.name.startswith("kernel log:")]


def test_a_counted_line_missing_once_fails_with_the_count(tmp_path):
    lines = captured("x86_64-6.1.0-57-protocol.invalid_handle.txt").splitlines(keepends=True)
    dropped = next(i for i, line in enumerate(lines) if "got transaction to invalid handle" in line)
    ctx = judged("protocol.invalid_handle", "".join(lines[:dropped] + lines[dropped + 1:]), tmp_path)
    assert ctx.result.outcome == Outcome.FAILED
    assert ctx.result.reason == (r"kernel log: lines /\d+:\d+ got transaction to invalid handle, 12345/: expected 2, "
                                 "measured 1 (binder_transaction (binder_get_ref_olocked fails) (binder_user_error))")


def test_a_line_one_case_declares_is_undeclared_in_another(tmp_path):
    """Declarations are per case: protocol.invalid_handle's lines fail protocol.refcounts (whose
    invalid handle is 1, not 12345)."""
    ctx = judged("protocol.refcounts", captured("x86_64-6.1.0-57-protocol.invalid_handle.txt"), tmp_path)
    assert ctx.result.outcome == Outcome.FAILED
    assert "got transaction to invalid handle, 12345" in ctx.result.reason


def test_lines_the_driver_changed_are_declared_per_kernel(tmp_path):
    """debug_low_async_space_locked counts the new buffer on 6.1 (26 to 32), not on 6.12 (25 to
    31): each kernel's window passes with its own entry and fails with the other's."""
    old, new = captured("x86_64-6.1.0-57-limits.async_half.txt"), captured("x86_64-6.12.117-limits.async_half.txt")
    assert judged("limits.async_half", old, tmp_path).result.outcome == Outcome.PASSED
    assert judged("limits.async_half", new, tmp_path, release="6.12.117+deb13-amd64").result.outcome == Outcome.PASSED
    crossed = judged("limits.async_half", new, tmp_path)
    assert crossed.result.outcome == Outcome.FAILED
    assert "spamming oneway? 25 buffers allocated for a total size of 1638400" in crossed.result.reason


def test_rate_limited_lines_declare_no_count_and_any_number_passes(tmp_path):
    window = captured("x86_64-6.1.0-57-limits.free_reuse.txt")
    health = scan_dmesg(window, load_cases()["limits.free_reuse"].expected_dmesg)
    assert health.unexpected_binder_lines == []
    assert all(line.count is None for line, _ in health.line_counts)
    assert sorted(n for _, n in health.line_counts) == [5, 5, 10, 10]  # 10 per 5 s: binder_alloc_debug per site,
    half = "".join(window.splitlines(keepends=True)[:12])              # binder_debug for all its callers
    assert judged("limits.free_reuse", half, tmp_path).result.outcome == Outcome.PASSED


def test_patterns_match_the_whole_message_after_the_prefix():
    line = Line(r"\d+:\d+ got transaction to invalid handle, 1", 1)
    assert line.matches("121:121 got transaction to invalid handle, 1")
    assert not line.matches("121:121 got transaction to invalid handle, 12345")  # anchored at the end
    assert not line.matches("x 121:121 got transaction to invalid handle, 1")  # and at the start
    health = scan_dmesg("[    9.9] binder_linux: 121:121 got transaction to invalid handle, 1\n"
                        "[    9.9] binder_linux: 132 callbacks suppressed\n"
                        "[    9.9] some other driver: 121:121 got transaction to invalid handle, 1\n", (line,))
    assert health.line_counts == ((line, 1),) and health.unexpected_binder_lines == []


def test_a_plain_string_stays_a_loose_pattern():
    """The old form, searched anywhere in the message: kept for a case that cannot know its lines."""
    health = scan_dmesg("[ 1.0] binder_linux: 121:121 unknown command 42\n", (r"unknown command",))
    assert health.unexpected_binder_lines == [] and health.line_counts[0][0].loose


@pytest.mark.parametrize("pattern, problem", [
    (".", "matches any message"), (".*", "matches any message"), (r"\d*", "matches any message"),
    ("got transaction (", "is not a regular expression")])
def test_a_loose_or_broken_pattern_is_refused_in_one_line(pattern, problem):
    with pytest.raises(ValueError, match=problem) as exc:
        Line(pattern, 1)
    assert "\n" not in str(exc.value)


def test_a_count_below_one_is_refused():
    with pytest.raises(ValueError, match="count 0 must be at least 1"):
        Line("undelivered TRANSACTION_COMPLETE", 0)


def test_every_catalog_case_declares_exact_lines_with_their_function():
    """stress.random_commands too: every line its operations can provoke, each with its function."""
    for spec in load_cases().values():
        assert isinstance(spec, CaseSpec)
        for line in expected_lines(spec.expected_dmesg):  # every kernel's
            assert not line.loose, (spec.id, line.pattern)
            assert line.ref, (spec.id, line.pattern)
