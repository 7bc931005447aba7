"""Binder's own accounting around a case: its debugfs `stats` before the case and after the
case's processes are gone and binder's deferred release is done (debugfs.settle_script).

binder.c counts every object it creates and deletes (binder_stats_created /
binder_stats_deleted) and print_binder_stats shows each kind as "KIND: active N total M":
proc, thread, node, ref, death, transaction, transaction_complete on 6.1, and whatever
kinds a newer kernel adds (each is read from the file, none is listed here). After a case,
every active count is back to its value before it, and `stats` lists no proc the case made
(print_binder_proc_stats, one "proc PID" section per binder_proc still alive). This is a
pure function over the two texts.

binder's failed_transaction_log is read at the same two moments (failed-log-before/after.txt): the
entries binder_transaction's error exit added during the case (binder_transaction_log_add into
binder_transaction_log_failed, a ring of 32) are exactly the failures the probe read, counted by
return (BR_FAILED_REPLY, BR_DEAD_REPLY, BR_FROZEN_REPLY), unless the case declares otherwise
(FailedTransactions: failures no transaction logs, logged ones no probe reads, or a count it cannot
know); each extended error the probe read (same debug id, return and errno) and each failure line of
the case's kernel log (same debug id, return, errno and binder.c line) names its entry.
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from harness.evidence.contract import CONTRACT
from harness.evidence.debugfs import LogEntry, parse_binder_debugfs, parse_transaction_log
from harness.evidence.drivers import C_DRIVER, NOT_COUNTED, DriverFacts

COMMANDS_EVENT = CONTRACT.event_macros["EV_COMMANDS"]  # the probe's record of what it sent and got back

STATS_BEFORE = "stats-before.txt"  # cases/<id>/: binder's debugfs stats as the case began
STATS_AFTER = "stats-after.txt"  # and once its work had settled, beside its kernel log
# binder's debugfs failed_transaction_log (binder_transaction_log_failed) at the same two moments
FAILED_LOG_BEFORE = "failed-log-before.txt"
FAILED_LOG_AFTER = "failed-log-after.txt"
# debugfs file -> (its copy before the case, after it): what snapshot_script saves and the runner pulls
SNAPSHOTS = {"stats": (STATS_BEFORE, STATS_AFTER), "failed_transaction_log": (FAILED_LOG_BEFORE, FAILED_LOG_AFTER)}
ACCOUNTING_FILES = tuple(name for pair in SNAPSHOTS.values() for name in pair)


def snapshot_script(binder_dir: str, case_dir: str, when: str) -> str:
    """Shell that copies binder's accounting files from `binder_dir` (debugfs binder/, or
    binderfs binder_logs/) into the case's directory on the target, as they stand `when`
    ("before" or "after" the case). A file the kernel lacks is simply not written."""
    index = {"before": 0, "after": 1}[when]
    out = []
    for src, pair in SNAPSHOTS.items():
        path, dest = shlex.quote(f"{binder_dir}/{src}"), shlex.quote(f"{case_dir}/{pair[index]}")
        # stats: an empty copy says "not readable" (compare_stats); the failed log: an empty one is a log
        # with no failure yet, so a kernel without the file leaves no copy (check_failed_log: not judged)
        out.append(f"cat {path} > {dest} 2> /dev/null" if src == "stats" else
                   f"[ ! -r {path} ] || cat {path} > {dest} 2> /dev/null")
    return "; ".join(out)


@dataclass(frozen=True)
class Accounting:
    """What differs between binder's `stats` before a case and after it."""

    active: dict[str, tuple[int, int]]  # every kind either file counts: (active before, active after)
    procs_left: list[int]  # procs listed after that were not listed before
    problem: str = ""  # why the files cannot be compared ("" when they can)
    not_counted: str = ""  # why `active` is empty: the driver's stats count no objects ("" when they do)

    @property
    def changed(self) -> dict[str, tuple[int, int]]:
        return {kind: counts for kind, counts in self.active.items() if counts[0] != counts[1]}

    def describe_changed(self) -> str:
        """'node: active 1 -> 2; ref: active 0 -> 1', or 'none'."""
        return "; ".join(f"{kind}: active {a} -> {b}" for kind, (a, b) in self.changed.items()) or "none"


def compare_stats(before: str, after: str, driver: DriverFacts = C_DRIVER) -> Accounting:
    """binder's `stats` before and after a case, compared. A driver whose stats count no objects
    (the Rust driver) gets no active counts, and `not_counted` says why."""
    first, last = parse_binder_debugfs(before), parse_binder_debugfs(after)
    for name, doc, text in (("before", first, before), ("after", last, after)):
        if doc.kind != "stats":
            what = text.strip().splitlines()[0][:80] if text.strip() else "empty"
            return Accounting({}, [], f"binder stats {name} the case not readable ({what})")
    kinds = list(dict.fromkeys([*first.objects, *last.objects]))
    active = {k: (first.objects.get(k, (0, 0))[0], last.objects.get(k, (0, 0))[0]) for k in kinds}
    known = {p.pid for p in first.procs}
    not_counted = "" if driver.counts_objects else \
        f"{NOT_COUNTED} ({driver.name}: {driver.source} print no 'KIND: active N total M')"
    return Accounting(active, [p.pid for p in last.procs if p.pid not in known], not_counted=not_counted)


# -- the failed-transaction log against the failures the probe saw ---------------------------------
# The returns binder_transaction fails a transaction with (its return_error, printed by
# print_binder_transaction_log_entry as "ret CODE/PARAM"), by their uapi codes: _IO('r', 5), _IO('r', 17)
# and _IO('r', 18) of include/uapi/linux/android/binder.h.
FAILURE_RETURNS: dict[int, str] = {0x7205: "BR_DEAD_REPLY", 0x7211: "BR_FAILED_REPLY", 0x7212: "BR_FROZEN_REPLY"}
FAILED_LOG_REF = ("binder_transaction err path: binder_transaction_log_add(&binder_transaction_log_failed) "
                  "(print_binder_transaction_log_entry), one entry per failed transaction, whose "
                  "thread->return_error / binder_send_failed_reply hands the BR to user space")


@dataclass(frozen=True)
class FailedTransactions:
    """A case's declaration of the failed transactions it causes, where they differ from what its
    probe sees. By default (no declaration) the case's new failed_transaction_log entries, counted by
    their return, equal the BR_FAILED_REPLY / BR_DEAD_REPLY / BR_FROZEN_REPLY the probe read.

    - `unlogged`: failure returns the probe reads that no transaction failed for, by name and
      count: binder_send_failed_reply(t, BR_DEAD_REPLY) from binder_thread_release or
      binder_release_work when the thread or process that owed a reply exits is never logged.
    - `unread`: logged failures whose BR no probe process reads (it exits first, or the failure
      is a reply's, which binder_send_failed_reply hands to a caller that is gone).
    - `uncounted`: the case cannot know how many of its transactions fail (a random stream); the
      reason says why, and the log is then evidence only.
    """

    unlogged: tuple[tuple[str, int], ...] = ()
    unread: tuple[tuple[str, int], ...] = ()
    uncounted: str = ""
    ref: str = ""  # the kernel function behind the difference


@dataclass(frozen=True)
class FailedLogComparison:
    new: list[LogEntry]  # the entries after the case that were not in the log before it
    logged: dict[str, int]  # new entries by their return (FAILURE_RETURNS name, or the code)
    expected: dict[str, int]  # what the probe saw, adjusted by the case's declaration
    seen: dict[str, int]  # failure returns the probe read, by name
    wrapped: bool  # every slot of the ring is new: entries of the case may have been overwritten
    problem: str = ""
    ext_mismatches: tuple[str, ...] = ()  # extended errors the probe read that the log does not hold alike
    ext_read: int = 0  # failure extended errors the probe read (BINDER_GET_EXTENDED_ERROR)
    line_mismatches: tuple[str, ...] = ()  # new entries the kernel log's failure lines describe otherwise
    lines_read: int = 0  # the case's failure lines in the kernel log that name a new entry

    @property
    def matches(self) -> bool:
        if self.wrapped:  # only the last 32 survive: each return's count is at most what the probe saw
            return sum(self.logged.values()) <= sum(self.expected.values()) and \
                all(n <= self.expected.get(k, 0) for k, n in self.logged.items())
        return self.logged == self.expected

    @property
    def passed(self) -> bool:
        return self.matches and not self.ext_mismatches and not self.line_mismatches

    def describe(self) -> str:
        """'BR_FAILED_REPLY 2' per return, or 'none'."""
        return describe_counts(self.logged)

    def differing(self) -> str:
        """The new entries whose return the probe did not see as often, for the reason."""
        extra = {k: n - self.expected.get(k, 0) for k, n in self.logged.items() if n > self.expected.get(k, 0)}
        shown = [e.describe() for e in self.new if _name(e.return_error) in extra][:3]
        return "; ".join(shown)


def _name(code: int) -> str:
    return FAILURE_RETURNS.get(code, f"ret {code}")


def describe_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items()) if n) or "none"


# binder_transaction's error exit also prints each failure (binder_debug BINDER_DEBUG_FAILED_TRANSACTION,
# on by default): "P:T transaction KIND to P:T failed DEBUG_ID/RETURN/PARAM, [code C ]size D-O line L" (the
# code from 7.2), from the same t_debug_id, return_error, return_error_param and return_error_line it logs.
_FAILED_LINE = re.compile(r"transaction (?:call|async|reply) to \d+:\d+ failed (\d+)/(\d+)/(-?\d+),(?: code \d+)? "
                          r"size \d+-\d+ line (\d+)")


def failure_lines(dmesg: str) -> dict[int, tuple[int, int, int]]:
    """{debug id: (return, errno, line)} of binder_transaction's failure lines in a kernel log."""
    return {int(m.group(1)): (int(m.group(2)), int(m.group(3)), int(m.group(4))) for m in _FAILED_LINE.finditer(dmesg)}


def compare_failed_log(before: str, after: str, probe_br: dict[int, int],
                       declared: FailedTransactions | None = None,
                       probe_ext: list[tuple[int, int, int]] | None = None,
                       dmesg: str | None = None) -> FailedLogComparison:
    """The failed-transaction log's entries new since `before`, against the failure returns the
    probe read (`probe_br`: {BR code: count}, native_probe/seen.c), adjusted by the case's
    declaration. An entry is new when its debug_id was not in the log before (debug ids grow with
    every transaction, binder_last_id, and the ring keeps the last 32).

    `probe_ext`: each failure BINDER_GET_EXTENDED_ERROR gave the probe, (id, command, param).
    binder_transaction sets it (binder_set_extended_error, or binder_set_txn_from_error for a
    failed reply's caller) from the same debug id, return and errno it logs, so each must be a new
    entry with that debug_id, return and param (unless the ring wrapped past it).

    `dmesg`: the case's kernel log; each failure line it holds for a new entry's debug id must say the
    entry's return, errno and binder.c line (rate limits may drop lines: only those present count)."""
    declared = declared or FailedTransactions()
    first, last = parse_transaction_log(before), parse_transaction_log(after)
    if last.bad_lines:
        return FailedLogComparison([], {}, {}, {}, False, f"failed_transaction_log after the case has lines it "
                                                           f"cannot read: {last.bad_lines[0][:80]!r}")
    known = {e.debug_id for e in first.entries}
    top = max(known, default=0)
    new = [e for e in last.entries if e.debug_id not in known and e.debug_id > top]
    logged: dict[str, int] = {}
    for e in new:
        logged[_name(e.return_error)] = logged.get(_name(e.return_error), 0) + 1
    seen = {name: probe_br.get(code, 0) for code, name in FAILURE_RETURNS.items() if probe_br.get(code, 0)}
    expected = dict(seen)
    for name, n in declared.unlogged:
        expected[name] = expected.get(name, 0) - n
    for name, n in declared.unread:
        expected[name] = expected.get(name, 0) + n
    expected = {k: n for k, n in expected.items() if n}
    wrapped = last.full and len(new) == len(last.entries)
    by_id = {e.debug_id: e for e in new}
    oldest = min(by_id, default=0)
    mismatches = []
    for ee_id, command, param in probe_ext or []:
        entry = by_id.get(ee_id)
        if entry is None and wrapped and ee_id < oldest:
            continue  # overwritten in the ring
        if entry is None:
            mismatches.append(f"extended error {{id {ee_id}, {_name(command)}, {param}}}: no failed-log entry {ee_id}")
        elif (entry.return_error, entry.return_error_param) != (command, param):
            mismatches.append(f"extended error {{id {ee_id}, {_name(command)}, {param}}}: the log says "
                              f"{_name(entry.return_error)} {entry.return_error_param} (l={entry.return_error_line})")
    printed = {i: v for i, v in failure_lines(dmesg or "").items() if i in by_id}
    lines = [f"entry {i} says {_name(e.return_error)} {e.return_error_param} l={e.return_error_line}, "
             f"the kernel log {_name(ret)} {param} line {line}" for i, (ret, param, line) in sorted(printed.items())
             if ((e := by_id[i]).return_error, e.return_error_param, e.return_error_line) != (ret, param, line)]
    return FailedLogComparison(new, logged, expected, seen, wrapped, ext_mismatches=tuple(mismatches),
                               ext_read=len(probe_ext or []), line_mismatches=tuple(lines), lines_read=len(printed))


def probe_ext_errors(jsonl_texts: list[str]) -> list[tuple[int, int, int]]:
    """Each failure BINDER_GET_EXTENDED_ERROR gave the probe, (id, command, param), from the "ext"
    field of its {"ev":"commands"} lines (native_probe/seen.c)."""
    out: list[tuple[int, int, int]] = []
    for text in jsonl_texts:
        for line in text.splitlines():
            if f'"ev":"{COMMANDS_EVENT}"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            out += [(int(i), int(c), int(p)) for i, c, p in record.get("ext") or []]
    return out
