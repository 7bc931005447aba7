"""Binder's own accounting around a case: its debugfs `stats` before the case and after the
case's processes are gone and binder's deferred release is done (debugfs.settle_script).

binder.c counts every object it creates and deletes (binder_stats_created /
binder_stats_deleted) and print_binder_stats shows each kind as "KIND: active N total M":
proc, thread, node, ref, death, transaction, transaction_complete on 6.1, and whatever
kinds a newer kernel adds (each is read from the file, none is listed here). After a case,
every active count is back to its value before it, and `stats` lists no proc the case made
(print_binder_proc_stats, one "proc PID" section per binder_proc still alive). This is a
pure function over the two texts.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.evidence.debugfs import parse_binder_debugfs

STATS_BEFORE = "stats-before.txt"  # cases/<id>/: binder's debugfs stats as the case began
STATS_AFTER = "stats-after.txt"  # and once its work had settled, beside its kernel log


@dataclass(frozen=True)
class Accounting:
    """What differs between binder's `stats` before a case and after it."""

    active: dict[str, tuple[int, int]]  # every kind either file counts: (active before, active after)
    procs_left: list[int]  # procs listed after that were not listed before
    problem: str = ""  # why the files cannot be compared ("" when they can)

    @property
    def changed(self) -> dict[str, tuple[int, int]]:
        return {kind: counts for kind, counts in self.active.items() if counts[0] != counts[1]}

    def describe_changed(self) -> str:
        """'node: active 1 -> 2; ref: active 0 -> 1', or 'none'."""
        return "; ".join(f"{kind}: active {a} -> {b}" for kind, (a, b) in self.changed.items()) or "none"


def compare_stats(before: str, after: str) -> Accounting:
    """binder's `stats` before and after a case, compared."""
    first, last = parse_binder_debugfs(before), parse_binder_debugfs(after)
    for name, doc, text in (("before", first, before), ("after", last, after)):
        if doc.kind != "stats":
            what = text.strip().splitlines()[0][:80] if text.strip() else "empty"
            return Accounting({}, [], f"binder stats {name} the case not readable ({what})")
    kinds = list(dict.fromkeys([*first.objects, *last.objects]))
    active = {k: (first.objects.get(k, (0, 0))[0], last.objects.get(k, (0, 0))[0]) for k in kinds}
    known = {p.pid for p in first.procs}
    return Accounting(active, [p.pid for p in last.procs if p.pid not in known])
