"""Binder's own accounting after every case (DESIGN §4 health): its debugfs `stats` read as the
case begins and once its work has settled (cases/<id>/stats-before.txt, stats-after.txt) give
the same "active" count of every kind, and list no proc the case made. Judged here on `stats`
captured from real runs (Debian 6.1.0-57, x86_64), with no guest; the seeded module
transaction_leak shows it failing on a guest (tests/test_catalog.py CAUGHT)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

from harness.judging.accounting import STATS_AFTER, STATS_BEFORE, compare_stats
from harness.judging.catalog import load_cases
from harness.judging.context import CaseContext
from harness.judging.health import check_accounting
from harness.judging.verdicts import Outcome, judge
from harness.targets.base import Target

DATA = Path(__file__).parent / "data"
STATS = DATA / "stats"
CHANGED = "driver accounting: binder stats active counts back to their values before the case"
LEFT = "driver accounting: binder procs the case left in stats"


def stats(name: str) -> str:
    return (STATS / name).read_text()


class Recorded:
    def info(self) -> SimpleNamespace:
        return SimpleNamespace(kernel_release="6.1.0-57-amd64")


def judged(before: str, after: str, tmp_path: Path, pristine: bool = True) -> CaseContext:
    """check_accounting and judge on the two files, after one passing check of the case's own."""
    (tmp_path / STATS_BEFORE).write_text(before)
    (tmp_path / STATS_AFTER).write_text(after)
    ctx = CaseContext(load_cases()["protocol.ping"], cast(Target, Recorded()), "", tmp_path, "", None, None,
                      pristine=pristine)
    ctx.check("the case's own check", 1, 1, "probe")
    check_accounting(ctx)
    judge(ctx.result)
    return ctx


def test_a_case_that_gives_everything_back_passes(tmp_path):
    ctx = judged(stats("x86_64-6.1.0-57-protocol.ping-before.txt"), stats("x86_64-6.1.0-57-protocol.ping-after.txt"),
                 tmp_path)
    assert ctx.result.outcome == Outcome.PASSED, ctx.result.reason
    assert {c.name for c in ctx.result.checks} >= {CHANGED, LEFT}
    assert ctx.evidence["binder_accounting"] == {
        "active": {"proc": [0, 0], "thread": [0, 0], "node": [0, 0], "transaction": [0, 0],
                   "transaction_complete": [0, 0]}, "procs_left": []}


def test_a_leaked_transaction_fails_with_the_count_that_differs(tmp_path):
    """Measured with the seeded module transaction_leak (binder_free_transaction never frees)."""
    ctx = judged(stats("x86_64-6.1.0-57-protocol.ping-before.txt"),
                 stats("x86_64-6.1.0-57-protocol.ping-after-transaction_leak.txt"), tmp_path)
    assert ctx.result.outcome == Outcome.FAILED
    assert ctx.result.reason == (f"{CHANGED}: expected none changed, measured transaction: active 0 -> 2 "
                                 "(binder_stats_created / binder_stats_deleted (print_binder_stats: KIND: active N))")


def test_procs_left_in_stats_fail_and_are_named(tmp_path):
    """A `stats` read while binder_procs were open (tests/data/debugfs-stats-x86_64.txt: 20 proc
    sections, 19 of them one process's opens) against the empty one of a pristine guest: every
    active count that moved, and each proc by pid, once per binder_proc."""
    after = (DATA / "debugfs-stats-x86_64.txt").read_text()
    acct = compare_stats(stats("x86_64-6.1.0-57-protocol.ping-before.txt"), after)
    assert acct.changed["proc"] == (0, 21) and acct.changed["ref"] == (0, 11)
    assert "transaction" not in acct.changed  # active 0 in both
    assert len(acct.procs_left) == 20 and sorted(set(acct.procs_left)) == [118, 120]
    ctx = judged(stats("x86_64-6.1.0-57-protocol.ping-before.txt"), after, tmp_path)
    failed = {c.name: c.measured for c in ctx.result.checks if not c.passed}
    assert failed[LEFT][:1] == [118] and failed[CHANGED].startswith("proc: active 0 -> 21; thread: active 0 -> 20")


def test_a_kind_only_one_file_lists_counts_as_zero_in_the_other():
    """print_binder_stats prints a kind only once it was ever created; kinds newer kernels add are
    read from the file, not from a list."""
    before = "binder stats:\nproc: active 1 total 1\n"
    after = "binder stats:\nproc: active 1 total 3\nfreeze: active 1 total 1\n"
    assert compare_stats(before, after).changed == {"freeze": (0, 1)}
    assert compare_stats(after, before).changed == {"freeze": (1, 0)}


def test_on_a_shared_guest_it_is_evidence_only(tmp_path):
    ctx = judged(stats("x86_64-6.1.0-57-protocol.ping-before.txt"),
                 stats("x86_64-6.1.0-57-protocol.ping-after-transaction_leak.txt"), tmp_path, pristine=False)
    assert ctx.result.outcome == Outcome.PASSED
    assert ctx.evidence["binder_accounting"]["active"]["transaction"] == [0, 2]


def test_unreadable_stats_are_evidence_not_a_verdict(tmp_path):
    ctx = judged("cat: can't open '/sys/kernel/debug/binder/stats'\n", stats("x86_64-6.1.0-57-protocol.ping-after.txt"),
                 tmp_path)
    assert ctx.result.outcome == Outcome.PASSED
    assert ctx.evidence["binder_accounting"].startswith("binder stats before the case not readable (cat: can't open")


def test_no_files_no_judgement(tmp_path):
    ctx = CaseContext(load_cases()["protocol.ping"], cast(Target, Recorded()), "", tmp_path, "", None, None,
                      pristine=True)
    assert check_accounting(ctx) is None and "binder_accounting" not in ctx.evidence
