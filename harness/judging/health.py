"""A case's health, judged after its body from its files: the kernel log (WARNING/BUG/Oops, and
on a pristine guest every binder line declared), binder's accounting back at its baseline, and
the failed-transaction log against the failures the probe read.
"""
from __future__ import annotations

from harness.judging.accounting import (FAILED_LOG_AFTER, FAILED_LOG_BEFORE, FAILED_LOG_REF, STATS_AFTER,
                                        STATS_BEFORE, Accounting, FailedLogComparison, compare_failed_log,
                                        compare_stats, describe_counts, probe_ext_errors)
from harness.judging.context import CaseContext
from harness.judging.coverage import probe_seen
from harness.judging.verdicts import (UNCHECKED, HealthReport, Outcome, scan_dmesg,
                                      without_timestamp)


# The names of the health checks judged only on a pristine guest begin with these: the kernel-log
# rule (_check_binder_lines) and binder's accounting (check_accounting).
KERNEL_LOG_CHECK, ACCOUNTING_CHECK = "kernel log: ", "driver accounting: "
PRISTINE_ONLY_CHECKS = (KERNEL_LOG_CHECK, ACCOUNTING_CHECK)


def check_health(ctx: CaseContext, delta: str) -> HealthReport:
    """DESIGN §4 health, on a case's dmesg delta: WARNING/BUG/Oops/... fail the case, and an
    unknown dmesg window errors it. On a pristine guest (the case's own restore or boot) a binder
    line the case did not declare fails it, with the line as the reason, and each declared line
    with a count must appear exactly that often; on a shared boot (earlier cases used up printk's
    rate limits) they are evidence only. The same for a live run (harness/running/runner.py) and a
    replayed one (harness/judging/replay.py)."""
    result = ctx.result
    health = scan_dmesg(delta, ctx.spec.expected_dmesg, ctx.kernel, ctx.driver.name)
    result.evidence["dmesg_bad_lines"] = health.bad_lines[:20]
    if health.unexpected_binder_lines:
        result.evidence["unexpected_binder_messages"] = health.unexpected_binder_lines[:20]
    window = str(result.evidence.get("dmesg_window", ""))
    if window.startswith("unknown") and result.outcome not in UNCHECKED:
        result.outcome, result.reason = Outcome.ERROR, f"kernel health not judged: dmesg window {window}"
    if result.outcome not in UNCHECKED:
        ctx.check_that("kernel health: dmesg delta free of WARNING/BUG/Oops/KASAN/Call Trace",
                       not health.bad_lines, health.bad_lines[0] if health.bad_lines else "none",
                       "none", "dmesg (WARN/BUG/oops handlers)")
        if ctx.pristine:
            _check_binder_lines(ctx, health)
        check_accounting(ctx)
        check_failed_log(ctx, delta)
    return health


def check_accounting(ctx: CaseContext) -> Accounting | None:
    """Binder's own accounting is back to its baseline after the case (cases/<id>/stats-before.txt
    and stats-after.txt, read around it; accounting.py): every active count of `stats` as before
    the case, and no proc entry the case made. Checked on a pristine guest, where nothing but the
    case uses binder; evidence `binder_accounting` elsewhere. None when the files are missing
    (no debugfs, or the case never reached its end)."""
    before, after = (ctx.case_dir / STATS_BEFORE, ctx.case_dir / STATS_AFTER)
    if not (before.exists() and after.exists()):
        return None
    acct = compare_stats(before.read_text(errors="replace"), after.read_text(errors="replace"), ctx.driver)
    ctx.evidence["binder_accounting"] = acct.problem or {
        "active": acct.not_counted or {kind: list(counts) for kind, counts in acct.active.items()},
        "procs_left": acct.procs_left}
    if ctx.pristine and not acct.problem:
        ref = "binder_stats_created / binder_stats_deleted (print_binder_stats: KIND: active N)"
        if not acct.not_counted:  # else not judged: evidence binder_accounting.active says why
            ctx.check_that(f"{ACCOUNTING_CHECK}binder stats active counts back to their values before the case",
                           not acct.changed, acct.describe_changed(), "none changed", ref)
        ctx.check(f"{ACCOUNTING_CHECK}binder procs the case left in stats", acct.procs_left, [],
                  "binder_deferred_release -> binder_free_proc (print_binder_proc_stats: proc PID)")
    return acct


def check_failed_log(ctx: CaseContext, delta: str = "") -> FailedLogComparison | None:
    """binder's failed_transaction_log holds exactly the failures the probe saw: its entries new
    since the case began (cases/<id>/failed-log-before.txt, failed-log-after.txt), counted by
    return, equal the BR_FAILED_REPLY / BR_DEAD_REPLY / BR_FROZEN_REPLY the probe read (its
    {"ev":"commands"} record, all processes), as the case declares (CaseSpec.failed_transactions),
    and each extended error the probe read names a new entry with the same return and errno, and each
    failure line of the case's kernel log (`delta`) the same return, errno and binder.c line.
    Checked on a pristine guest; evidence `failed_transaction_log` elsewhere. None when the files
    are missing (no debugfs, or the case never reached its end)."""
    before, after = (ctx.case_dir / FAILED_LOG_BEFORE, ctx.case_dir / FAILED_LOG_AFTER)
    if not ctx.driver.failed_transaction_log:
        ctx.evidence["failed_transaction_log"] = f"not judged: the {ctx.driver.name} driver keeps no such log ({ctx.driver.source})"
        return None
    if not (before.exists() and after.exists()):
        return None
    probes = [p.read_text(errors="replace") for p in sorted(ctx.case_dir.glob("probe-*.jsonl"))]
    declared = ctx.spec.failed_transactions
    cmp = compare_failed_log(before.read_text(errors="replace"), after.read_text(errors="replace"),
                             probe_seen(probes)["br"], declared, probe_ext_errors(probes), delta)
    ctx.evidence["failed_transaction_log"] = cmp.problem or {
        "new": [e.describe() for e in cmp.new], "logged": cmp.logged, "probe_saw": cmp.seen,
        "expected": cmp.expected, "wrapped": cmp.wrapped, "extended_errors_unmatched": list(cmp.ext_mismatches),
        "kernel_log_lines_unmatched": list(cmp.line_mismatches)}
    if not ctx.pristine or cmp.problem:
        return cmp
    why = f" ({declared.ref})" if declared is not None and declared.ref else ""
    extra = cmp.differing()
    if declared is not None and declared.uncounted:
        ctx.evidence["failed_transaction_log_uncounted"] = declared.uncounted
    else:
        ctx.check_that(f"{ACCOUNTING_CHECK}failed_transaction_log entries of the case, by return"
                       + (" (ring of 32 wrapped: at most)" if cmp.wrapped else ""),
                       cmp.matches, cmp.describe() + (f" [{extra}]" if extra and not cmp.matches else ""),
                       describe_counts(cmp.expected) + why, FAILED_LOG_REF)
    ctx.check_that(f"{ACCOUNTING_CHECK}extended errors the probe read, as the failed log holds them",
                   not cmp.ext_mismatches, "; ".join(cmp.ext_mismatches[:3]) or f"all {cmp.ext_read} match",
                   f"all {cmp.ext_read} match",
                   "binder_transaction: binder_set_extended_error(t_debug_id, return_error, return_error_param) "
                   "and binder_transaction_log_failed entry")
    ctx.check_that(f"{ACCOUNTING_CHECK}failed_transaction_log entries as the kernel log's failure lines give them "
                   "(debug id, return, errno, line)", not cmp.line_mismatches,
                   "; ".join(cmp.line_mismatches[:3]) or f"all {cmp.lines_read} match", f"all {cmp.lines_read} match",
                   "binder_transaction: binder_debug(BINDER_DEBUG_FAILED_TRANSACTION, ... failed %d/%d/%d ... line %d) "
                   "and binder_transaction_log_failed entry (return_error_line)")
    return cmp


def _check_binder_lines(ctx: CaseContext, health: HealthReport) -> None:
    """On a pristine guest: no binder line the case did not declare, and each counted one as often
    as declared."""
    counted = {line.pattern: n for line, n in health.line_counts if line.count is not None}
    if counted:
        ctx.evidence["binder_line_counts"] = counted
    unexpected = health.unexpected_binder_lines
    first = without_timestamp(unexpected[0]) if unexpected else "none"
    more = f" (+{len(unexpected) - 1} more in evidence unexpected_binder_messages)" if len(unexpected) > 1 else ""
    ctx.check_that(f"{KERNEL_LOG_CHECK}binder lines the case does not declare", not unexpected, first + more, "none",
                   ctx.driver.loggers)
    for line, n in health.line_counts:
        if line.count is not None:
            ctx.check(f"{KERNEL_LOG_CHECK}lines {line.describe()}", n, line.count, line.ref or ctx.driver.loggers)
